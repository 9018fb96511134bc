"""The files WanGP downloads into ``ckpts/`` by itself, which no definition names: ``wangp gc`` never removes them.

Besides what a definition lists (``URLs``, ``preload_URLs``, ``modules``, ...), WanGP fetches shared files of its
own: VAEs (``Wan2.1_VAE.safetensors``), tokenizers (``umt5-xxl/``, ``xlm-roberta-large/``), the text encoders
its model handlers choose, preprocessors (``pose/``, ``depth/``, ``flow/``, ``mask/``, ``sam3/``), audio models
(wav2vec, whisper, mmaudio, pyannote, SeedVC), upsamplers (RIFE, FlashVSR, SeedVR2, PiD, Chain-of-Zoom) and the
prompt enhancers. :data:`WANGP_OWN_FILES` lists them as home-relative POSIX globs; :func:`is_wangp_own` says
whether a path is one of them.

Read from WanGP's source (github.com/deepbeepmeep/Wan2GP) at commit 8681e9f777f9f847f74a0bdefd13d5b9a6efe12d.

Where a file lands: WanGP hands each download list ``{"repoId", "sourceFolderList", "fileList",
"targetFolderList"?}`` to ``shared/utils/download.py: process_files_def``. For the i-th entry, with
``source = sourceFolderList[i]`` and ``target = targetFolderList[i]`` (``None`` or ``""`` when absent), every name
of ``fileList[i]`` goes to ``ckpts/[target/][source/]name``: the target folder does NOT replace the source folder,
it is put in front of it (``hf_hub_download(local_dir=ckpts/target, subfolder=source)``); a ``""`` source is
ckpts/ (or ckpts/target/) itself, and a name may hold a ``/`` of its own (``seed-vc/v2/ar_base.pth``). An empty
``fileList[i]`` fetches the whole ``source`` folder (``snapshot_download(allow_patterns=source + "/*")``) into
``ckpts/[target/]source/``: those are listed as ``folder/**``. A text encoder of ``text_encoder_URLs`` lands in
``ckpts/<text_encoder_folder>/<file name>``. (``_download_relpath`` beside it, and the Models Manager plugin's
``_collect_download_def_file_paths``, compute the same paths.)

Values a definition may change are taken at their defaults, plus every value WanGP's own ``defaults/*.json`` set
(``text_encoder_folder`` of ACE-Step 1.5, ``heartmula_codec_version``, the kiwi_edit variants); names computed in
code are resolved for every branch (each PiD backbone and version, each LTX-2 architecture, each server option:
depth variant, MatAnyone version, MMAudio mode, SeedVC mode, RIFE version). A few folders are filled at run time
by a library or a cache whose file names cannot be known (audio-separator's ``roformer/``, rembg's ``rembg/``,
SeedVC's Hugging Face cache): those are listed whole.

To refresh, read at WanGP's new commit (``git grep -n "sourceFolderList\\|process_files_def\\|hf_hub_download\\|
snapshot_download\\|text_encoder_URLs" -- '*.py'``):

* ``query_model_files(computeList, base_model_type, model_def)`` of every ``models/**/*_handler.py``, and the
  helpers they call (``_get_*_download_def``, ``get_qwen3_download_def``, ``seedvc.query_download_def``,
  ``magic_mask.query_download_def``, the ``_ARCH_SPECS`` of ltx2_handler.py, ``KIWI_VARIANT_MAP``);
* ``query_model_def`` of the same handlers: the ``text_encoder_URLs`` / ``text_encoder_folder`` / ``preload_URLs``
  they build with ``build_hf_url``;
* wgp.py ``query_core_shared_model_files``, ``query_global_shared_model_files`` and ``download_models``;
  ``preprocessing/matanyone/utils/model_assets.py: query_matanyone_download_def``;
* the ``query_download_def(s)`` / ``download`` methods of ``postprocessing/*/wgp_bridge.py``,
  ``postprocessing/*/audio_processor.py`` and ``postprocessing/rife/temporal_upsampler.py`` (the handlers
  registered in ``spatial_upsamplers.py``, ``temporal_upsamplers.py`` and ``audio_processors.py``),
  ``postprocessing/pid/runtime.py: get_pid_download_def``, ``postprocessing/seedvc/__init__.py``;
* ``preprocessing/speaker_separator/assets.py``, ``shared/deepy/assets.py``, ``shared/prompt_enhancer/assets.py``
  (with ``loader.py`` and ``qwen35_vl.py``), ``shared/utils/download.py``;
* the folders handed to third-party code: ``preprocessing/extract_vocals.py`` (``model_file_dir``),
  ``shared/utils/utils.py: resolve_rembg_home``, ``HF_HUB_CACHE`` in ``postprocessing/seedvc/__init__.py``.

The other ``hf_hub_download`` / ``snapshot_download`` calls in WanGP (chatterbox, index_tts2, bigvgan, kokoro,
sam3, stable_audio3, kandinsky5 ``utils.py``, the kiwi MLLM encoder, videoprism) write to the Hugging Face cache
or to paths outside ckpts/, or are not reached from WanGP; its LoRA downloads go to loras/.

Patterns: a pattern and a path are split on ``/``; a ``**`` segment matches any number of folders (one or more
names when it ends the pattern: ``ckpts/pose/**`` is everything below ``ckpts/pose/``), any other segment is
matched to one name with :func:`fnmatch.fnmatchcase` (``*``, ``?``, ``[...]`` never cross a ``/``; case-sensitive).
It is ``pathlib.PurePosixPath.full_match`` of Python 3.13 (written out here for 3.10), except that a closing
``**`` needs at least one name. Paths with ``.``, ``..`` or empty segments, or absolute, match nothing. Standard
library only (fnmatch, functools): no torch, no huggingface_hub.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache

__all__ = ["WANGP_OWN_FILES", "check_pattern", "is_wangp_own", "matches"]

#: Home-relative POSIX globs of the files WanGP downloads into ckpts/ by itself (see the module docstring). A file
#: several sources fetch is listed once, under the first of them.
WANGP_OWN_FILES: tuple[str, ...] = (
    # wgp.py query_core_shared_model_files() (also shared/utils/download.py, speaker_separator)
    "ckpts/chinese-wav2vec2-base/config.json",
    "ckpts/chinese-wav2vec2-base/preprocessor_config.json",
    "ckpts/chinese-wav2vec2-base/pytorch_model.bin",
    "ckpts/depth/depth_anything_v2_vitb.pth",
    "ckpts/depth/depth_anything_v2_vitl.pth",
    "ckpts/depth/depth_anything_v3_metric_large_bf16.safetensors",
    "ckpts/det_align/detface.pt",
    "ckpts/flow/raft-things.pth",
    "ckpts/pose/dw-ll_ucoco_384.onnx",
    "ckpts/pose/yolox_l.onnx",
    "ckpts/pyannote/pyannote_model_wespeaker-voxceleb-resnet34-LM.bin",
    "ckpts/pyannote/pytorch_model_segmentation-3.0.bin",
    "ckpts/roformer/download_checks.json",
    "ckpts/roformer/model_bs_roformer_ep_317_sdr_12.9755.ckpt",
    "ckpts/roformer/model_bs_roformer_ep_317_sdr_12.9755.yaml",
    "ckpts/scribble/netG_A_latest.pth",
    "ckpts/wav2vec/config.json",
    "ckpts/wav2vec/feature_extractor_config.json",
    "ckpts/wav2vec/model.safetensors",
    "ckpts/wav2vec/preprocessor_config.json",
    "ckpts/wav2vec/special_tokens_map.json",
    "ckpts/wav2vec/tokenizer_config.json",
    "ckpts/wav2vec/vocab.json",
    # preprocessing/matanyone/utils/model_assets.py (query_matanyone_download_def)
    "ckpts/mask/config.json",
    "ckpts/mask/matanyone.safetensors",
    "ckpts/mask/matanyone2.safetensors",
    "ckpts/mask/model.safetensors",
    "ckpts/mask/sam_vit_h_4b8939_fp16.safetensors",
    "ckpts/sam3/bpe_simple_vocab_16e6.txt.gz",
    "ckpts/sam3/sam3.1_multiplex_bf16.safetensors",
    # models/TTS/ace_step_handler.py
    "ckpts/ace_step/ace_step_v1_dcae_config.json",
    "ckpts/ace_step/ace_step_v1_music_dcae_f8c8_bf16.safetensors",
    "ckpts/ace_step/ace_step_v1_music_vocoder_bf16.safetensors",
    "ckpts/ace_step/ace_step_v1_transformer_config.json",
    "ckpts/ace_step/ace_step_v1_vocoder_config.json",
    "ckpts/ace_step15/ace_step_v1_5_audio_vae_bf16.safetensors",
    "ckpts/ace_step15/silence_latent.pt",
    "ckpts/acestep-5Hz-lm-0.6B/added_tokens.json",
    "ckpts/acestep-5Hz-lm-0.6B/chat_template.jinja",
    "ckpts/acestep-5Hz-lm-0.6B/config.json",
    "ckpts/acestep-5Hz-lm-0.6B/merges.txt",
    "ckpts/acestep-5Hz-lm-0.6B/special_tokens_map.json",
    "ckpts/acestep-5Hz-lm-0.6B/tokenizer.json",
    "ckpts/acestep-5Hz-lm-0.6B/tokenizer_config.json",
    "ckpts/acestep-5Hz-lm-0.6B/vocab.json",
    "ckpts/acestep-5Hz-lm-1.7B/added_tokens.json",
    "ckpts/acestep-5Hz-lm-1.7B/chat_template.jinja",
    "ckpts/acestep-5Hz-lm-1.7B/config.json",
    "ckpts/acestep-5Hz-lm-1.7B/merges.txt",
    "ckpts/acestep-5Hz-lm-1.7B/special_tokens_map.json",
    "ckpts/acestep-5Hz-lm-1.7B/tokenizer.json",
    "ckpts/acestep-5Hz-lm-1.7B/tokenizer_config.json",
    "ckpts/acestep-5Hz-lm-1.7B/vocab.json",
    "ckpts/acestep-5Hz-lm-4B/added_tokens.json",
    "ckpts/acestep-5Hz-lm-4B/chat_template.jinja",
    "ckpts/acestep-5Hz-lm-4B/config.json",
    "ckpts/acestep-5Hz-lm-4B/merges.txt",
    "ckpts/acestep-5Hz-lm-4B/special_tokens_map.json",
    "ckpts/acestep-5Hz-lm-4B/tokenizer.json",
    "ckpts/acestep-5Hz-lm-4B/tokenizer_config.json",
    "ckpts/acestep-5Hz-lm-4B/vocab.json",
    "ckpts/Qwen3-Embedding-0.6B/config.json",
    "ckpts/Qwen3-Embedding-0.6B/model.safetensors",
    "ckpts/Qwen3-Embedding-0.6B/special_tokens_map.json",
    "ckpts/Qwen3-Embedding-0.6B/tokenizer.json",
    "ckpts/Qwen3-Embedding-0.6B/tokenizer_config.json",
    "ckpts/umt5_base/config.json",
    "ckpts/umt5_base/special_tokens_map.json",
    "ckpts/umt5_base/tokenizer.json",
    "ckpts/umt5_base/tokenizer_config.json",
    # models/TTS/chatterbox_handler.py
    "ckpts/chatterbox/Cangjie5_TC.json",
    "ckpts/chatterbox/conds.pt",
    "ckpts/chatterbox/grapheme_mtl_merged_expanded_v1.json",
    "ckpts/chatterbox/s3gen.pt",
    "ckpts/chatterbox/ve.safetensors",
    # models/TTS/heartmula_handler.py
    "ckpts/HeartMula/codec_config.json",
    "ckpts/HeartMula/codec_config_20260123.json",
    "ckpts/HeartMula/gen_config.json",
    "ckpts/HeartMula/HeartMula_codec.safetensors",
    "ckpts/HeartMula/HeartMula_codec_20260123.safetensors",
    "ckpts/HeartMula/tokenizer.json",
    # models/TTS/index_tts2_handler.py
    "ckpts/bigvgan_v2_22khz_80band_256x/bigvgan_generator.pt",
    "ckpts/bigvgan_v2_22khz_80band_256x/config.json",
    "ckpts/index_tts2/bpe.model",
    "ckpts/index_tts2/campplus_cn_common.bin",
    "ckpts/index_tts2/feat1.pt",
    "ckpts/index_tts2/feat2.pt",
    "ckpts/index_tts2/index_tts2_semantic_codec.safetensors",
    "ckpts/index_tts2/s2mel.safetensors",
    "ckpts/index_tts2/wav2vec2bert_stats.pt",
    "ckpts/index_tts25/campplus_cn_common.bin",
    "ckpts/index_tts25/feat1.pt",
    "ckpts/index_tts25/feat2.pt",
    "ckpts/index_tts25/index_tts25_codec_fp32.safetensors",
    "ckpts/index_tts25/index_tts25_s2mel_fp32.safetensors",
    "ckpts/index_tts25/multilingual_zh_ja_yue_char_del.tiktoken",
    "ckpts/index_tts25/wav2vec2bert_stats.pt",
    "ckpts/qwen0.6bemo4-merge/added_tokens.json",
    "ckpts/qwen0.6bemo4-merge/chat_template.jinja",
    "ckpts/qwen0.6bemo4-merge/config.json",
    "ckpts/qwen0.6bemo4-merge/generation_config.json",
    "ckpts/qwen0.6bemo4-merge/merges.txt",
    "ckpts/qwen0.6bemo4-merge/model.safetensors",
    "ckpts/qwen0.6bemo4-merge/model_int8_convrot.safetensors",
    "ckpts/qwen0.6bemo4-merge/Modelfile",
    "ckpts/qwen0.6bemo4-merge/special_tokens_map.json",
    "ckpts/qwen0.6bemo4-merge/tokenizer.json",
    "ckpts/qwen0.6bemo4-merge/tokenizer_config.json",
    "ckpts/qwen0.6bemo4-merge/vocab.json",
    "ckpts/w2v-bert-2.0/config.json",
    "ckpts/w2v-bert-2.0/model_fp16.safetensors",
    "ckpts/w2v-bert-2.0/preprocessor_config.json",
    # models/TTS/kugelaudio_handler.py
    "ckpts/kugelaudio_text_tokenizer/merges.txt",
    "ckpts/kugelaudio_text_tokenizer/preprocessor_config.json",
    "ckpts/kugelaudio_text_tokenizer/tokenizer.json",
    "ckpts/kugelaudio_text_tokenizer/tokenizer_config.json",
    "ckpts/kugelaudio_text_tokenizer/vocab.json",
    # models/TTS/minimax_music3/minimax_music3_handler.py
    "ckpts/MiniMax-Music3/condition_encoder_config.json",
    "ckpts/MiniMax-Music3/condition_encoder_fp32.safetensors",
    "ckpts/MiniMax-Music3/rvq_depth_decoder_bf16.safetensors",
    "ckpts/MiniMax-Music3/rvq_depth_decoder_config.json",
    "ckpts/MiniMax-Music3/rvq_depth_decoder_int8_convrot.safetensors",
    "ckpts/MiniMax-Music3/scheduler_config.json",
    "ckpts/MiniMax-Music3/vocoder_config.json",
    "ckpts/MiniMax-Music3/vocoder_fp32.safetensors",
    "ckpts/MiniMaxMusic3-Qwen3/chat_template.jinja",
    "ckpts/MiniMaxMusic3-Qwen3/tokenizer.json",
    "ckpts/MiniMaxMusic3-Qwen3/tokenizer_config.json",
    # models/TTS/omnivoice_handler.py (also shared/deepy/assets.py, ltx_audio_tts_handler.py)
    "ckpts/omnivoice/audio_tokenizer/audio_tokenizer_bf16.safetensors",
    "ckpts/omnivoice/audio_tokenizer/config.json",
    "ckpts/omnivoice/audio_tokenizer/preprocessor_config.json",
    "ckpts/omnivoice/chat_template.jinja",
    "ckpts/omnivoice/config.json",
    "ckpts/omnivoice/tokenizer.json",
    "ckpts/omnivoice/tokenizer_config.json",
    "ckpts/whisper_medium/config.json",
    "ckpts/whisper_medium/model.safetensors",
    # models/TTS/qwen3_handler.py
    "ckpts/qwen3_tts_text_tokenizer/merges.txt",
    "ckpts/qwen3_tts_text_tokenizer/preprocessor_config.json",
    "ckpts/qwen3_tts_text_tokenizer/tokenizer_config.json",
    "ckpts/qwen3_tts_text_tokenizer/vocab.json",
    "ckpts/qwen3_tts_tokenizer_12hz/config.json",
    "ckpts/qwen3_tts_tokenizer_12hz/configuration.json",
    "ckpts/qwen3_tts_tokenizer_12hz/preprocessor_config.json",
    "ckpts/qwen3_tts_tokenizer_12hz/qwen3_tts_tokenizer_12hz.safetensors",
    # models/TTS/stable_audio3_handler.py
    "ckpts/stable_audio3_same_l_bf16.safetensors",
    "ckpts/stable_audio3_same_s_bf16.safetensors",
    "ckpts/t5gemma-b-b-ul2/config.json",
    "ckpts/t5gemma-b-b-ul2/special_tokens_map.json",
    "ckpts/t5gemma-b-b-ul2/tokenizer.json",
    "ckpts/t5gemma-b-b-ul2/tokenizer.model",
    "ckpts/t5gemma-b-b-ul2/tokenizer_config.json",
    # models/TTS/yue_handler.py
    "ckpts/mm_tokenizer_v0.2_hf/tokenizer.model",
    "ckpts/xcodec_mini_infer/decoders/config.yaml",
    "ckpts/xcodec_mini_infer/decoders/decoder_131000.pth",
    "ckpts/xcodec_mini_infer/decoders/decoder_151000.pth",
    "ckpts/xcodec_mini_infer/descriptaudiocodec/**",
    "ckpts/xcodec_mini_infer/final_ckpt/ckpt_00360000.pth",
    "ckpts/xcodec_mini_infer/final_ckpt/config.yaml",
    "ckpts/xcodec_mini_infer/models/**",
    "ckpts/xcodec_mini_infer/modules/**",
    "ckpts/xcodec_mini_infer/post_process_audio.py",
    "ckpts/xcodec_mini_infer/quantization/**",
    "ckpts/xcodec_mini_infer/RepCodec/**",
    "ckpts/xcodec_mini_infer/semantic_ckpts/hf_1_325000/**",
    "ckpts/xcodec_mini_infer/vocoder.py",
    "ckpts/xcodec_mini_infer/vocos/**",
    "ckpts/YuE-s1-7B-anneal-en-cot/config.json",
    "ckpts/YuE-s1-7B-anneal-en-icl/config.json",
    "ckpts/YuE-s2-1B-general/config.json",
    # models/flux/flux_handler.py
    "ckpts/clip_vit_large_patch14/merges.txt",
    "ckpts/clip_vit_large_patch14/model.safetensors",
    "ckpts/clip_vit_large_patch14/preprocessor_config.json",
    "ckpts/clip_vit_large_patch14/special_tokens_map.json",
    "ckpts/clip_vit_large_patch14/text_config.json",
    "ckpts/clip_vit_large_patch14/tokenizer.json",
    "ckpts/clip_vit_large_patch14/tokenizer_config.json",
    "ckpts/clip_vit_large_patch14/vocab.json",
    "ckpts/flux2_vae.safetensors",
    "ckpts/flux_vae.safetensors",
    "ckpts/mistral3small/chat_template.jinja",
    "ckpts/mistral3small/config.json",
    "ckpts/mistral3small/preprocessor_config.json",
    "ckpts/mistral3small/processor_config.json",
    "ckpts/mistral3small/special_tokens_map.json",
    "ckpts/mistral3small/tokenizer.json",
    "ckpts/mistral3small/tokenizer_config.json",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/chat_template.jinja",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/config.json",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/merges.txt",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/preprocessor_config.json",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/Qwen2.5-VL-7B-DreamOmni2_quanto_bf16_int8.safetensors",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/tokenizer_config.json",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/video_preprocessor_config.json",
    "ckpts/Qwen2.5-VL-7B-DreamOmni2/vocab.json",
    "ckpts/Qwen3/added_tokens.json",
    "ckpts/Qwen3/chat_template.jinja",
    "ckpts/Qwen3/config.json",
    "ckpts/Qwen3/generation_config.json",
    "ckpts/Qwen3/merges.txt",
    "ckpts/Qwen3/special_tokens_map.json",
    "ckpts/Qwen3/tokenizer.json",
    "ckpts/Qwen3/tokenizer_config.json",
    "ckpts/Qwen3/vocab.json",
    "ckpts/qwen3_8b/added_tokens.json",
    "ckpts/qwen3_8b/chat_template.jinja",
    "ckpts/qwen3_8b/config.json",
    "ckpts/qwen3_8b/generation_config.json",
    "ckpts/qwen3_8b/merges.txt",
    "ckpts/qwen3_8b/special_tokens_map.json",
    "ckpts/qwen3_8b/tokenizer.json",
    "ckpts/qwen3_8b/tokenizer_config.json",
    "ckpts/qwen3_8b/vocab.json",
    "ckpts/siglip-so400m-patch14-384/model.safetensors",
    "ckpts/siglip-so400m-patch14-384/preprocessor_config.json",
    "ckpts/siglip-so400m-patch14-384/vision_config.json",
    "ckpts/T5_xxl_1.1/added_tokens.json",
    "ckpts/T5_xxl_1.1/special_tokens_map.json",
    "ckpts/T5_xxl_1.1/spiece.model",
    "ckpts/T5_xxl_1.1/tokenizer_config.json",
    # models/hidream/hidream_handler.py
    "ckpts/hidream_o1/chat_template.json",
    "ckpts/hidream_o1/config.json",
    "ckpts/hidream_o1/configuration.json",
    "ckpts/hidream_o1/generation_config.json",
    "ckpts/hidream_o1/merges.txt",
    "ckpts/hidream_o1/preprocessor_config.json",
    "ckpts/hidream_o1/tokenizer.json",
    "ckpts/hidream_o1/tokenizer_config.json",
    "ckpts/hidream_o1/video_preprocessor_config.json",
    "ckpts/hidream_o1/vocab.json",
    # models/hyvideo/hunyuan_handler.py (also kandinsky5_handler.py, qwen_handler.py)
    "ckpts/Glyph-SDXL-v2/byt5-small/byt5_model.safetensors",
    "ckpts/Glyph-SDXL-v2/byt5-small/config.json",
    "ckpts/Glyph-SDXL-v2/byt5-small/model.safetensors",
    "ckpts/Glyph-SDXL-v2/color_idx.json",
    "ckpts/Glyph-SDXL-v2/multilingual_10-lang_idx.json",
    "ckpts/hunyuan_video_1_5_VAE.json",
    "ckpts/hunyuan_video_1_5_VAE_fp32.safetensors",
    "ckpts/hunyuan_video_720_quanto_int8_map.json",
    "ckpts/hunyuan_video_custom_VAE_config.json",
    "ckpts/hunyuan_video_custom_VAE_fp32.safetensors",
    "ckpts/hunyuan_video_VAE_config.json",
    "ckpts/hunyuan_video_VAE_fp32.safetensors",
    "ckpts/llava-llama-3-8b/config.json",
    "ckpts/llava-llama-3-8b/preprocessor_config.json",
    "ckpts/llava-llama-3-8b/special_tokens_map.json",
    "ckpts/llava-llama-3-8b/tokenizer.json",
    "ckpts/llava-llama-3-8b/tokenizer_config.json",
    "ckpts/Qwen2.5-VL-7B-Instruct/chat_template.json",
    "ckpts/Qwen2.5-VL-7B-Instruct/config.json",
    "ckpts/Qwen2.5-VL-7B-Instruct/merges.txt",
    "ckpts/Qwen2.5-VL-7B-Instruct/preprocessor_config.json",
    "ckpts/Qwen2.5-VL-7B-Instruct/tokenizer_config.json",
    "ckpts/Qwen2.5-VL-7B-Instruct/video_preprocessor_config.json",
    "ckpts/Qwen2.5-VL-7B-Instruct/vocab.json",
    "ckpts/qwen_vae.safetensors",
    "ckpts/qwen_vae_config.json",
    "ckpts/siglip_vision_model/config.json",
    "ckpts/siglip_vision_model/model.safetensors",
    "ckpts/siglip_vision_model/preprocessor_config.json",
    "ckpts/whisper-tiny/config.json",
    "ckpts/whisper-tiny/model.safetensors",
    "ckpts/whisper-tiny/preprocessor_config.json",
    "ckpts/whisper-tiny/special_tokens_map.json",
    "ckpts/whisper-tiny/tokenizer_config.json",
    # models/ideogram4/ideogram4_handler.py
    "ckpts/ideogram4/ideogram4_transformer_config.json",
    "ckpts/ideogram4/ideogram4_unconditional_transformer_config.json",
    "ckpts/Qwen3-VL-8B-Instruct/chat_template.jinja",
    "ckpts/Qwen3-VL-8B-Instruct/config.json",
    "ckpts/Qwen3-VL-8B-Instruct/tokenizer.json",
    "ckpts/Qwen3-VL-8B-Instruct/tokenizer_config.json",
    # models/krea2/krea2_handler.py
    "ckpts/Qwen3-VL-4B-Instruct/chat_template.jinja",
    "ckpts/Qwen3-VL-4B-Instruct/config.json",
    "ckpts/Qwen3-VL-4B-Instruct/preprocessor_config.json",
    "ckpts/Qwen3-VL-4B-Instruct/tokenizer.json",
    "ckpts/Qwen3-VL-4B-Instruct/tokenizer_config.json",
    "ckpts/Wan2.1_VAE_upscale2x_imageonly_real_v1.safetensors",
    # models/longcat/longcat_handler.py
    "ckpts/chinese-wav2vec2-base/readme.txt",
    "ckpts/umt5-xxl/special_tokens_map.json",
    "ckpts/umt5-xxl/spiece.model",
    "ckpts/umt5-xxl/tokenizer.json",
    "ckpts/umt5-xxl/tokenizer_config.json",
    "ckpts/Wan2.1_VAE_bf16.safetensors",
    "ckpts/whisper-large-v3/config.json",
    "ckpts/whisper-large-v3/generation_config.json",
    "ckpts/whisper-large-v3/model.safetensors",
    "ckpts/whisper-large-v3/preprocessor_config.json",
    # models/ltx2/ltx2_handler.py
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/added_tokens.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/chat_template.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/config_light.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/generation_config.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/preprocessor_config.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/processor_config.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/special_tokens_map.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/tokenizer.json",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/tokenizer.model",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/tokenizer_config.json",
    "ckpts/gemma4-12b-ltx-v1/chat_template.jinja",
    "ckpts/gemma4-12b-ltx-v1/config.json",
    "ckpts/gemma4-12b-ltx-v1/tokenizer.json",
    "ckpts/gemma4-12b-ltx-v1/tokenizer_config.json",
    "ckpts/ltx-2-19b-dev_embeddings_connector.safetensors",
    "ckpts/ltx-2-19b-distilled_embeddings_connector.safetensors",
    "ckpts/ltx-2-19b_audio_vae.safetensors",
    "ckpts/ltx-2-19b_text_embedding_projection.safetensors",
    "ckpts/ltx-2-19b_vae.safetensors",
    "ckpts/ltx-2-19b_vocoder.safetensors",
    "ckpts/ltx-2-spatial-upscaler-x2-1.0.safetensors",
    "ckpts/ltx-2-temporal-upscaler-x2-1.0.safetensors",
    "ckpts/ltx-2.3-22b_audio_vae.safetensors",
    "ckpts/ltx-2.3-22b_embeddings_connector.safetensors",
    "ckpts/ltx-2.3-22b_PrunaAI_vae.safetensors",
    "ckpts/ltx-2.3-22b_text_embedding_projection.safetensors",
    "ckpts/ltx-2.3-22b_vae.safetensors",
    "ckpts/ltx-2.3-22b_vocoder.safetensors",
    "ckpts/ltx-2.3-spatial-upscaler-x2-1.1.safetensors",
    "ckpts/ltx-2.3-temporal-upscaler-x2-1.0.safetensors",
    "ckpts/ltx-2.5-22b_audio_embeddings_connector_bf16.safetensors",
    "ckpts/ltx-2.5-22b_audio_embeddings_connector_int8_convrot.safetensors",
    "ckpts/ltx-2.5-22b_audio_embeddings_connector_nvfp4_bf16.safetensors",
    "ckpts/ltx-2.5-22b_audio_vae_bf16.safetensors",
    "ckpts/ltx-2.5-22b_diffusion_video_vae_bf16.safetensors",
    "ckpts/ltx-2.5-22b_text_embedding_projection_bf16.safetensors",
    "ckpts/ltx-2.5-22b_video_embeddings_connector_bf16.safetensors",
    "ckpts/ltx-2.5-22b_video_embeddings_connector_int8_convrot.safetensors",
    "ckpts/ltx-2.5-22b_video_embeddings_connector_nvfp4_bf16.safetensors",
    "ckpts/ltx-2.5-22b_video_vae_bf16.safetensors",
    "ckpts/ltx-2.5-22b_vocoder_bf16.safetensors",
    "ckpts/ltx-2.5-spatial-upscaler-x2-1.0_bf16.safetensors",
    "ckpts/ltx-2.5-temporal-upscaler-x2-1.0_bf16.safetensors",
    # models/ltx2/ltx_audio_tts_handler.py
    "ckpts/kokoro/config.json",
    "ckpts/kokoro/kokoro-v1_0.pth",
    "ckpts/kokoro/voices/af_heart.pt",
    # models/ltx_video/ltxv_handler.py
    "ckpts/ltxv_0.9.7_spatial_upscaler.safetensors",
    "ckpts/ltxv_0.9.7_VAE.safetensors",
    "ckpts/ltxv_scheduler.json",
    # models/magi_human/magi_human_handler.py
    "ckpts/stable-audio-open-1.0/model.safetensors",
    "ckpts/stable-audio-open-1.0/model_config.json",
    "ckpts/t5gemma-9b-9b-ul2/config.json",
    "ckpts/t5gemma-9b-9b-ul2/generation_config.json",
    "ckpts/t5gemma-9b-9b-ul2/special_tokens_map.json",
    "ckpts/t5gemma-9b-9b-ul2/tokenizer.json",
    "ckpts/t5gemma-9b-9b-ul2/tokenizer.model",
    "ckpts/t5gemma-9b-9b-ul2/tokenizer_config.json",
    "ckpts/turbo_vae/TurboV3-Wan22-TinyShallow_7_7.json",
    "ckpts/turbo_vae/TurboV3-Wan22-TinyShallow_7_7.safetensors",
    "ckpts/Wan2.2_VAE.safetensors",
    # models/minimax_h3/minimax_h3_handler.py
    "ckpts/MiniMax-H3-audio_vae_fp32.safetensors",
    "ckpts/MiniMax-H3-video_vae_fp16.safetensors",
    "ckpts/minimax_h3_video_vae_fp8mix.safetensors",
    "ckpts/Qwen3-VL-32B-Instruct/config.json",
    "ckpts/Qwen3-VL-32B-Instruct/preprocessor_config.json",
    "ckpts/Qwen3-VL-32B-Instruct/tokenizer.json",
    "ckpts/Qwen3-VL-32B-Instruct/tokenizer_config.json",
    "ckpts/Qwen3-VL-32B-Instruct/vocab.json",
    # models/qwen/qwen_handler.py
    "ckpts/qwen_image_layered_vae_bf16.safetensors",
    # models/wan/ovi_handler.py
    "ckpts/bigvgan_v2_44khz_128band_512x/bigvgan_generator.pt",
    "ckpts/bigvgan_v2_44khz_128band_512x/config.json",
    "ckpts/mmaudio/best_netG.pt",
    "ckpts/mmaudio/v1-16.pth",
    # models/wan/wan_handler.py
    "ckpts/depth/depth_anything_v3_vitl_bf16.safetensors",
    "ckpts/fantasy_proj_model.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_only/added_tokens.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/chat_template.jinja",
    "ckpts/kiwi_mllm_encoder_instruct_only/config.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/diffusion_pytorch_model.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_only/merges.txt",
    "ckpts/kiwi_mllm_encoder_instruct_only/preprocessor_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/qwen_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/special_tokens_map.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/tokenizer.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/tokenizer_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/video_preprocessor_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_only/vocab.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/added_tokens.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/chat_template.jinja",
    "ckpts/kiwi_mllm_encoder_instruct_reference/config.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/diffusion_pytorch_model.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_reference/merges.txt",
    "ckpts/kiwi_mllm_encoder_instruct_reference/preprocessor_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/qwen_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/special_tokens_map.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/tokenizer.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/tokenizer_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/video_preprocessor_config.json",
    "ckpts/kiwi_mllm_encoder_instruct_reference/vocab.json",
    "ckpts/kiwi_mllm_encoder_reference_only/added_tokens.json",
    "ckpts/kiwi_mllm_encoder_reference_only/chat_template.jinja",
    "ckpts/kiwi_mllm_encoder_reference_only/config.json",
    "ckpts/kiwi_mllm_encoder_reference_only/diffusion_pytorch_model.safetensors",
    "ckpts/kiwi_mllm_encoder_reference_only/merges.txt",
    "ckpts/kiwi_mllm_encoder_reference_only/preprocessor_config.json",
    "ckpts/kiwi_mllm_encoder_reference_only/qwen_config.json",
    "ckpts/kiwi_mllm_encoder_reference_only/special_tokens_map.json",
    "ckpts/kiwi_mllm_encoder_reference_only/tokenizer.json",
    "ckpts/kiwi_mllm_encoder_reference_only/tokenizer_config.json",
    "ckpts/kiwi_mllm_encoder_reference_only/video_preprocessor_config.json",
    "ckpts/kiwi_mllm_encoder_reference_only/vocab.json",
    "ckpts/pose/nlf_l_multi_0.3.2.eager.meta.json",
    "ckpts/pose/nlf_l_multi_0.3.2.eager.safetensors",
    "ckpts/Wan2.1_VAE.safetensors",
    "ckpts/wan2.2_kiwi_edit_5B_instruct_only_source_embedder.safetensors",
    "ckpts/wan2.2_kiwi_edit_5B_instruct_reference_ref_embedder.safetensors",
    "ckpts/wan2.2_kiwi_edit_5B_instruct_reference_source_embedder.safetensors",
    "ckpts/wan2.2_kiwi_edit_5B_reference_only_ref_embedder.safetensors",
    "ckpts/wan2.2_kiwi_edit_5B_reference_only_source_embedder.safetensors",
    "ckpts/xlm-roberta-large/models_clip_open-clip-xlm-roberta-large-vit-huge-14-bf16.safetensors",
    "ckpts/xlm-roberta-large/sentencepiece.bpe.model",
    "ckpts/xlm-roberta-large/special_tokens_map.json",
    "ckpts/xlm-roberta-large/tokenizer.json",
    "ckpts/xlm-roberta-large/tokenizer_config.json",
    # models/z_image/z_image_handler.py
    "ckpts/ZImageTurbo_scheduler_config.json",
    "ckpts/ZImageTurbo_VAE_bf16.safetensors",
    "ckpts/ZImageTurbo_VAE_bf16_config.json",
    # postprocessing/chain_of_zoom/wgp_bridge.py
    "ckpts/chain_of_zoom/chat_template.json",
    "ckpts/chain_of_zoom/config.json",
    "ckpts/chain_of_zoom/CoZ_qwen2.5-vl-3B_srprompt_quanto_bf16_int8.safetensors",
    "ckpts/chain_of_zoom/CoZ_sd3_medium_srlora_bf16.safetensors",
    "ckpts/chain_of_zoom/CoZ_sd3_vae_srlora_bf16.safetensors",
    "ckpts/chain_of_zoom/generation_config.json",
    "ckpts/chain_of_zoom/merges.txt",
    "ckpts/chain_of_zoom/preprocessor_config.json",
    "ckpts/chain_of_zoom/tokenizer.json",
    "ckpts/chain_of_zoom/tokenizer_config.json",
    "ckpts/chain_of_zoom/video_preprocessor_config.json",
    "ckpts/chain_of_zoom/vocab.json",
    "ckpts/clip_vit_bigG_14_text/clip_vit_bigG_14_text_bf16.safetensors",
    "ckpts/clip_vit_bigG_14_text/config.json",
    "ckpts/clip_vit_large_text_with_projection/clip_vit_large_text_with_projection_bf16.safetensors",
    "ckpts/clip_vit_large_text_with_projection/config.json",
    "ckpts/T5_xxl_1.1/T5_xxl_1.1_enc_quanto_bf16_int8.safetensors",
    # postprocessing/flashvsr/wgp_bridge.py
    "ckpts/FlashVSR/FlashVSR_v1.1_lq_proj_bf16.safetensors",
    "ckpts/FlashVSR/FlashVSR_v1.1_posi_prompt_bf16.safetensors",
    "ckpts/FlashVSR/FlashVSR_v1.1_tcdecoder_bf16.safetensors",
    "ckpts/FlashVSR/FlashVSR_v1.1_transformer_bf16.safetensors",
    # postprocessing/mmaudio/audio_processor.py
    "ckpts/DFN5B-CLIP-ViT-H-14-378/open_clip_config.json",
    "ckpts/DFN5B-CLIP-ViT-H-14-378/open_clip_pytorch_model.bin",
    "ckpts/mmaudio/mmaudio_large_44k_gold_8.5k_final_fp16.safetensors",
    "ckpts/mmaudio/mmaudio_large_44k_v2.pth",
    "ckpts/mmaudio/synchformer_state_dict.pth",
    "ckpts/mmaudio/v1-44.pth",
    # postprocessing/pid/runtime.py (get_pid_download_def)
    "ckpts/gemma-2-2b-it/config.json",
    "ckpts/gemma-2-2b-it/gemma-2-2b-it_quanto_bf16_int8.safetensors",
    "ckpts/gemma-2-2b-it/generation_config.json",
    "ckpts/gemma-2-2b-it/special_tokens_map.json",
    "ckpts/gemma-2-2b-it/tokenizer.json",
    "ckpts/gemma-2-2b-it/tokenizer.model",
    "ckpts/gemma-2-2b-it/tokenizer_config.json",
    "ckpts/PiD_res2k_sr4x_official_flux2_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_res2k_sr4x_official_flux_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_res2k_sr4x_official_qwenimage_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_res2kto4k_sr4x_official_flux2_distill_4step_2606_quanto_bf16_int8.safetensors",
    "ckpts/PiD_res2kto4k_sr4x_official_flux_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_res2kto4k_sr4x_official_qwenimage_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_v1pt5_res2kto4k_sr4x_official_flux2_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_v1pt5_res2kto4k_sr4x_official_flux_distill_4step_quanto_bf16_int8.safetensors",
    "ckpts/PiD_v1pt5_res2kto4k_sr4x_official_qwenimage_distill_4step_quanto_bf16_int8.safetensors",
    # postprocessing/prismaudio/audio_processor.py
    "ckpts/prismaudio/prismaudio.ckpt",
    "ckpts/prismaudio/prismaudio_bf16.safetensors",
    "ckpts/prismaudio/prismaudio_synchformer_bf16.safetensors",
    "ckpts/prismaudio/prismaudio_vae_bf16.safetensors",
    "ckpts/prismaudio/synchformer_state_dict.pth",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/chat_template.jinja",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/config.json",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/generation_config.json",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/model.safetensors",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/special_tokens_map.json",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/tokenizer.json",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/tokenizer.model",
    "ckpts/prismaudio/t5gemma-l-l-ul2-it/tokenizer_config.json",
    "ckpts/prismaudio/vae.ckpt",
    "ckpts/prismaudio/videoprism-lvt-large-f8r288/flax_lvt_large_f8r288_repeated.npz",
    "ckpts/prismaudio/videoprism_c4_en/sentencepiece.model",
    # postprocessing/rife/temporal_upsampler.py
    "ckpts/flownet.pkl",
    "ckpts/rife4.26.pkl",
    # postprocessing/seedvc/__init__.py
    "ckpts/hubert-large-ll60k/config.json",
    "ckpts/hubert-large-ll60k/preprocessor_config.json",
    "ckpts/hubert-large-ll60k/pytorch_model.bin",
    "ckpts/seed-vc/bsq2048/bsq2048_light.pth",
    "ckpts/seed-vc/bsq32/bsq32_light.pth",
    "ckpts/seed-vc/campplus_cn_common.bin",
    "ckpts/seed-vc/config_dit_mel_seed_uvit_whisper_base_f0_44k.yml",
    "ckpts/seed-vc/config_dit_mel_seed_uvit_whisper_small_wavenet.yml",
    "ckpts/seed-vc/DiT_seed_v2_uvit_whisper_base_f0_44k_bigvgan_pruned_ft_ema_v2.pth",
    "ckpts/seed-vc/DiT_seed_v2_uvit_whisper_small_wavenet_bigvgan_pruned.pth",
    "ckpts/seed-vc/rmvpe.pt",
    "ckpts/seed-vc/v2/ar_base.pth",
    "ckpts/seed-vc/v2/cfm_small.pth",
    "ckpts/whisper-small/added_tokens.json",
    "ckpts/whisper-small/config.json",
    "ckpts/whisper-small/generation_config.json",
    "ckpts/whisper-small/merges.txt",
    "ckpts/whisper-small/model.safetensors",
    "ckpts/whisper-small/normalizer.json",
    "ckpts/whisper-small/preprocessor_config.json",
    "ckpts/whisper-small/special_tokens_map.json",
    "ckpts/whisper-small/tokenizer.json",
    "ckpts/whisper-small/tokenizer_config.json",
    "ckpts/whisper-small/vocab.json",
    # postprocessing/seedvr2/wgp_bridge.py
    "ckpts/SeedVR2/SeedVR2_3B_bf16.safetensors",
    "ckpts/SeedVR2/SeedVR2_pos_emb_bf16.safetensors",
    "ckpts/SeedVR2/SeedVR2_VAE_bf16.safetensors",
    # preprocessing/speaker_separator/assets.py
    "ckpts/sherpa/3dspeaker_speech_eres2net_base_sv_zh-cn_3dspeaker_16k.onnx",
    "ckpts/sherpa/sherpa-onnx-pyannote-segmentation-3-0/model.onnx",
    # shared/prompt_enhancer/assets.py (+ loader.py, qwen35_vl.py)
    "ckpts/Florence2/config.json",
    "ckpts/Florence2/configuration_florence2.py",
    "ckpts/Florence2/model.safetensors",
    "ckpts/Florence2/preprocessor_config.json",
    "ckpts/Florence2/tokenizer.json",
    "ckpts/Florence2/tokenizer_config.json",
    "ckpts/llama-joycaption-beta-one-hf-llava/config.json",
    "ckpts/llama-joycaption-beta-one-hf-llava/llama_config.json",
    "ckpts/llama-joycaption-beta-one-hf-llava/llama_joycaption_quanto_bf16_int8.safetensors",
    "ckpts/llama-joycaption-beta-one-hf-llava/special_tokens_map.json",
    "ckpts/llama-joycaption-beta-one-hf-llava/tokenizer.json",
    "ckpts/llama-joycaption-beta-one-hf-llava/tokenizer_config.json",
    "ckpts/Llama3_2/config.json",
    "ckpts/Llama3_2/generation_config.json",
    "ckpts/Llama3_2/Llama3_2_quanto_bf16_int8.safetensors",
    "ckpts/Llama3_2/special_tokens_map.json",
    "ckpts/Llama3_2/tokenizer.json",
    "ckpts/Llama3_2/tokenizer_config.json",
    "ckpts/Qwen3_5_4B_Abliterated/chat_template.jinja",
    "ckpts/Qwen3_5_4B_Abliterated/config.json",
    "ckpts/Qwen3_5_4B_Abliterated/generation_config.json",
    "ckpts/Qwen3_5_4B_Abliterated/merges.txt",
    "ckpts/Qwen3_5_4B_Abliterated/Qwen3.5-4B-Abliterated-text-Q4_K_M.gguf",
    "ckpts/Qwen3_5_4B_Abliterated/Qwen3.5-4B-Abliterated_quanto_bf16_int8.safetensors",
    "ckpts/Qwen3_5_4B_Abliterated/Qwen3.5-4B-vision_bf16.safetensors",
    "ckpts/Qwen3_5_4B_Abliterated/tokenizer.json",
    "ckpts/Qwen3_5_4B_Abliterated/tokenizer_config.json",
    "ckpts/Qwen3_5_4B_Abliterated/video_preprocessor_config.json",
    "ckpts/Qwen3_5_4B_Abliterated/vocab.json",
    "ckpts/Qwen3_5_9B_Abliterated/chat_template.jinja",
    "ckpts/Qwen3_5_9B_Abliterated/config.json",
    "ckpts/Qwen3_5_9B_Abliterated/Qwen3.5-9B-Abliterated-text-Q4_K_M_bis.gguf",
    "ckpts/Qwen3_5_9B_Abliterated/Qwen3.5-9B-Abliterated_mtp_int8_convrot.safetensors",
    "ckpts/Qwen3_5_9B_Abliterated/Qwen3.5-9B-Abliterated_quanto_bf16_int8.safetensors",
    "ckpts/Qwen3_5_9B_Abliterated/Qwen3.5-9B-Abliterated_v2_quanto_bf16_int8.safetensors",
    "ckpts/Qwen3_5_9B_Abliterated/Qwen3.5-9B-vision_bf16.safetensors",
    "ckpts/Qwen3_5_9B_Abliterated/tokenizer.json",
    "ckpts/Qwen3_5_9B_Abliterated/tokenizer_config.json",
    "ckpts/Qwen3_5_9B_Abliterated/video_preprocessor_config.json",
    "ckpts/Qwen3_5_9B_Abliterated/vocab.json",
    "ckpts/Qwen3_8_27B_Uncensored/chat_template.jinja",
    "ckpts/Qwen3_8_27B_Uncensored/config.json",
    "ckpts/Qwen3_8_27B_Uncensored/generation_config.json",
    "ckpts/Qwen3_8_27B_Uncensored/merges.txt",
    "ckpts/Qwen3_8_27B_Uncensored/preprocessor_config.json",
    "ckpts/Qwen3_8_27B_Uncensored/Qwen3.8-27B-Uncensored-IQ2_M.gguf",
    "ckpts/Qwen3_8_27B_Uncensored/Qwen3.8-27B-Uncensored-Q4_K_M.gguf",
    "ckpts/Qwen3_8_27B_Uncensored/Qwen3.8-27B-Uncensored-vision-f16.gguf",
    "ckpts/Qwen3_8_27B_Uncensored/tokenizer.json",
    "ckpts/Qwen3_8_27B_Uncensored/tokenizer_config.json",
    "ckpts/Qwen3_8_27B_Uncensored/video_preprocessor_config.json",
    "ckpts/Qwen3_8_27B_Uncensored/vocab.json",
    # the text encoders (and preload_URLs) that query_model_def() of models/**/*_handler.py builds: in
    # ckpts/<text_encoder_folder>/; kiwi_edit's only when a definition gives no text_encoder_URLs
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/gemma-3-12b-it-qat-q4_0-unquantized.safetensors",
    "ckpts/gemma-3-12b-it-qat-q4_0-unquantized/gemma-3-12b-it-qat-q4_0-unquantized_quanto_bf16_int8.safetensors",
    "ckpts/gemma4-12b-ltx-v1/gemma4-12b-ltx-v1_bf16.safetensors",
    "ckpts/gemma4-12b-ltx-v1/gemma4-12b-ltx-v1_int8_convrot.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_only/instruct_only_mllm_encoder_bf16.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_only/instruct_only_mllm_encoder_quanto_bf16_int8.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_reference/instruct_reference_mllm_encoder_bf16.safetensors",
    "ckpts/kiwi_mllm_encoder_instruct_reference/instruct_reference_mllm_encoder_quanto_bf16_int8.safetensors",
    "ckpts/kiwi_mllm_encoder_reference_only/reference_only_mllm_encoder_bf16.safetensors",
    "ckpts/kiwi_mllm_encoder_reference_only/reference_only_mllm_encoder_quanto_bf16_int8.safetensors",
    "ckpts/llava-llama-3-8b/llava-llama-3-8b-v1_1_vlm_fp16.safetensors",
    "ckpts/llava-llama-3-8b/llava-llama-3-8b-v1_1_vlm_quanto_int8.safetensors",
    "ckpts/MiniMaxMusic3-Qwen3/MiniMaxMusic3-Qwen3_bf16.safetensors",
    "ckpts/MiniMaxMusic3-Qwen3/MiniMaxMusic3-Qwen3_int8_convrot.safetensors",
    "ckpts/mistral3small/mistral3_small_bf16.safetensors",
    "ckpts/mistral3small/mistral3_small_quanto_bf16_int8.safetensors",
    "ckpts/Qwen2.5-VL-7B-Instruct/Qwen2.5-VL-7B-Instruct_bf16.safetensors",
    "ckpts/Qwen2.5-VL-7B-Instruct/Qwen2.5-VL-7B-Instruct_quanto_bf16_int8.safetensors",
    "ckpts/Qwen3-VL-32B-Instruct/Qwen3-VL-32B-Instruct-layer50_bf16.safetensors",
    "ckpts/Qwen3-VL-32B-Instruct/Qwen3-VL-32B-Instruct-layer50_quanto_bf16_int8.safetensors",
    "ckpts/Qwen3-VL-32B-Instruct/qwen3vl-32B-MiniMax-H3-Q2_K.gguf",
    "ckpts/Qwen3-VL-32B-Instruct/qwen3vl-32B-MiniMax-H3-Q4_K_M.gguf",
    "ckpts/Qwen3-VL-32B-Instruct/qwen3vl_32b_minimax_h3_nvfp4_awq.safetensors",
    "ckpts/Qwen3-VL-4B-Instruct/Qwen3-VL-4B-Instruct_quanto_bf16_int8.safetensors",
    "ckpts/Qwen3-VL-4B-Instruct/Qwen3-VL-4B-Instruct_text_bf16.safetensors",
    "ckpts/Qwen3-VL-4B-Instruct/Qwen3-VL-4B-Instruct_vision_bf16.safetensors",
    "ckpts/Qwen3-VL-8B-Instruct/Qwen3-VL-8B-Instruct_fp8.safetensors",
    "ckpts/Qwen3-VL-8B-Instruct/Qwen3-VL-8B-Instruct_nf4.safetensors",
    "ckpts/Qwen3/qwen3_bf16.safetensors",
    "ckpts/Qwen3/qwen3_quanto_bf16_int8.safetensors",
    "ckpts/qwen3_8b/qwen3_8b_bf16.safetensors",
    "ckpts/qwen3_8b/qwen3_8b_quanto_bf16_int8.safetensors",
    "ckpts/T5_xxl_1.1/T5_xxl_1.1_enc_bf16.safetensors",
    "ckpts/t5gemma-9b-9b-ul2/t5gemma-9b-9b-ul2_bf16.safetensors",
    "ckpts/t5gemma-9b-9b-ul2/t5gemma-9b-9b-ul2_quanto_bf16_int8.safetensors",
    "ckpts/t5gemma-b-b-ul2/t5gemma-b-b-ul2_bf16.safetensors",
    "ckpts/umt5-xxl/models_t5_umt5-xxl-enc-bf16.safetensors",
    "ckpts/umt5-xxl/models_t5_umt5-xxl-enc-quanto_int8.safetensors",
    "ckpts/umt5_base/umt5_base_bf16.safetensors",
    # folders filled at run time: audio-separator (preprocessing/extract_vocals.py model_file_dir), rembg
    # (shared/utils/utils.py U2NET_HOME), SeedVC's HF_HUB_CACHE (postprocessing/seedvc/__init__.py)
    "ckpts/rembg/**",
    "ckpts/roformer/**",
    "ckpts/seed-vc/hf_cache/**",
    # looked for in these places, placed there by hand (models/wan/scail/nlfpose_extractor.py)
    "ckpts/nlf_l_multi_0.3.2_torch2.7.1.torchscript",
    "ckpts/pose/nlf_l_multi_0.3.2_torch2.7.1.torchscript",
    "ckpts/scail/nlf_l_multi_0.3.2_torch2.7.1.torchscript",
)

_GLOB_CHARS = frozenset("*?[")
_ROOTS = ("ckpts", "loras")  # the folders ``wangp files`` / ``rm`` / ``gc`` manage (download.disk.ROOTS)


def _parts(path: str) -> tuple[str, ...] | None:
    """``path`` split on ``/``; None for what is not a clean home-relative path (absolute, empty, ``.``, ``..``)."""
    if not isinstance(path, str) or not path or path.startswith("/"):
        return None
    parts = tuple(path.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        return None
    return parts


def _match_parts(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return len(parts) > 0
        return any(_match_parts(parts[index:], rest) for index in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_parts(parts[1:], rest)


def matches(path: str, pattern: str) -> bool:
    """Whether the home-relative POSIX ``path`` (``ckpts/pose/yolox_l.onnx``) matches the glob ``pattern``
    (``ckpts/pose/**``, ``loras/mine_*.safetensors``); the rules are in the module docstring. A path that is not
    clean (absolute, with ``.``, ``..`` or empty segments) matches nothing."""
    parts = _parts(path)
    return parts is not None and _match_parts(parts, tuple(pattern.split("/")))


@lru_cache(maxsize=1)
def _table() -> tuple[frozenset[str], tuple[tuple[str, ...], ...]]:
    exact = frozenset(p for p in WANGP_OWN_FILES if not _GLOB_CHARS & set(p))
    globs = tuple(tuple(p.split("/")) for p in WANGP_OWN_FILES if _GLOB_CHARS & set(p))
    return exact, globs


def is_wangp_own(path: str) -> bool:
    """True when the home-relative POSIX ``path`` (``ckpts/pose/dw-ll_ucoco_384.onnx``) is a file WanGP downloads
    by itself (a pattern of :data:`WANGP_OWN_FILES` matches it). Case-sensitive; unclean paths are never own."""
    parts = _parts(path)
    if parts is None:
        return False
    exact, globs = _table()
    return path in exact or any(_match_parts(parts, pattern) for pattern in globs)


def check_pattern(pattern: str, option: str = "--keep") -> None:
    """Refuse (``UsageError`` naming ``option``) a glob that cannot name files of the home: empty, absolute, with
    ``\\``, ``.``, ``..`` or empty segments, ``**`` inside a name, or outside ckpts/ and loras/."""
    from wangp_cli.core.errors import UsageError

    def refuse(why: str) -> None:
        raise UsageError(f"{option} {pattern!r}: {why}", hint="give a glob relative to the home, e.g. "
                         "'ckpts/my_tools/**' or 'loras/mine_*.safetensors'")

    if not isinstance(pattern, str) or not pattern.strip():
        refuse("an empty pattern")
    if pattern.startswith("/") or (len(pattern) > 1 and pattern[1] == ":"):
        refuse("must be relative to the home, not absolute")
    if "\\" in pattern:
        refuse("use '/' between folders")
    parts = pattern.split("/")
    if any(part in ("", ".", "..") for part in parts):
        refuse("no empty, '.' or '..' folder allowed")
    if any("**" in part and part != "**" for part in parts):
        refuse("'**' must be a whole folder name ('dir/**', not 'dir**')")
    if parts[0] != "**" and not any(fnmatchcase(root, parts[0]) for root in _ROOTS):
        refuse(f"only files under {' and '.join(root + '/' for root in _ROOTS)} are ever removed")
