"""LTX-2 (2.0 19B, 2.3 22B, 2.5 22B): the original Lightricks key layout of WanGP's files converted by diffusers'
converter, the config from shapes, WanGP's settings as call arguments and refusals, frames and audio equal to the
plain diffusers pipeline (16-bit and quanto int8), the CLI's mp4 with its audio track, the quantized layers against
mmgp's choice."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from typer.testing import CliRunner

from wangp_cli.cli import app
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.home import Home
from wangp_cli.families import family
from wangp_cli.families.ltx2 import settings as ltx2_settings
from wangp_cli.generate import tiny
from wangp_cli.generate.request import build_request
from wangp_cli.generate.runner import Generator
from wangp_cli.generate.video import probe_video

LTX2 = family("ltx2")
runner = CliRunner()

#: Original (Lightricks / WanGP ``ltx_core/model/transformer``) name -> diffusers name, written from WanGP's module
#: attributes (``LTXModel``: patchify_proj, adaln_single, prompt_adaln_single, av_ca_*_adaln_single;
#: ``BasicAVTransformerBlock``: scale_shift_table_a2v_ca_*, ``Attention``: q_norm / k_norm / to_gate_logits), not
#: derived from diffusers' names. Block 3 stands for every block.
ORIGINAL_NAMES = {
    "patchify_proj.weight": "proj_in.weight",
    "audio_patchify_proj.bias": "audio_proj_in.bias",
    "adaln_single.emb.timestep_embedder.linear_1.weight": "time_embed.emb.timestep_embedder.linear_1.weight",
    "adaln_single.linear.weight": "time_embed.linear.weight",
    "audio_adaln_single.emb.timestep_embedder.linear_2.bias": "audio_time_embed.emb.timestep_embedder.linear_2.bias",
    "av_ca_video_scale_shift_adaln_single.linear.weight": "av_cross_attn_video_scale_shift.linear.weight",
    "av_ca_audio_scale_shift_adaln_single.linear.bias": "av_cross_attn_audio_scale_shift.linear.bias",
    "av_ca_a2v_gate_adaln_single.emb.timestep_embedder.linear_1.weight":
        "av_cross_attn_video_a2v_gate.emb.timestep_embedder.linear_1.weight",
    "av_ca_v2a_gate_adaln_single.linear.weight": "av_cross_attn_audio_v2a_gate.linear.weight",
    "scale_shift_table": "scale_shift_table",
    "audio_scale_shift_table": "audio_scale_shift_table",
    "proj_out.weight": "proj_out.weight",
    "audio_proj_out.bias": "audio_proj_out.bias",
    "transformer_blocks.3.attn1.q_norm.weight": "transformer_blocks.3.attn1.norm_q.weight",
    "transformer_blocks.3.attn2.k_norm.weight": "transformer_blocks.3.attn2.norm_k.weight",
    "transformer_blocks.3.audio_to_video_attn.q_norm.weight": "transformer_blocks.3.audio_to_video_attn.norm_q.weight",
    "transformer_blocks.3.video_to_audio_attn.to_v.weight": "transformer_blocks.3.video_to_audio_attn.to_v.weight",
    "transformer_blocks.3.attn1.to_out.0.weight": "transformer_blocks.3.attn1.to_out.0.weight",
    "transformer_blocks.3.ff.net.0.proj.weight": "transformer_blocks.3.ff.net.0.proj.weight",
    "transformer_blocks.3.audio_ff.net.2.bias": "transformer_blocks.3.audio_ff.net.2.bias",
    "transformer_blocks.3.scale_shift_table": "transformer_blocks.3.scale_shift_table",
    "transformer_blocks.3.scale_shift_table_a2v_ca_video": "transformer_blocks.3.video_a2v_cross_attn_scale_shift_table",
    "transformer_blocks.3.scale_shift_table_a2v_ca_audio": "transformer_blocks.3.audio_a2v_cross_attn_scale_shift_table",
}
#: LTX-2.0 only: the caption projections live in the transformer.
ORIGINAL_NAMES_2_0 = {"caption_projection.linear_1.weight": "caption_projection.linear_1.weight",
                      "audio_caption_projection.linear_2.bias": "audio_caption_projection.linear_2.bias"}
#: LTX-2.3 and later: gated attention, prompt modulation (``prompt_adaln_single`` -> diffusers' ``prompt_adaln``).
ORIGINAL_NAMES_2_3 = {
    "prompt_adaln_single.linear.weight": "prompt_adaln.linear.weight",
    "audio_prompt_adaln_single.emb.timestep_embedder.linear_1.bias":
        "audio_prompt_adaln.emb.timestep_embedder.linear_1.bias",
    "transformer_blocks.3.attn1.to_gate_logits.weight": "transformer_blocks.3.attn1.to_gate_logits.weight",
    "transformer_blocks.3.audio_attn2.to_gate_logits.bias": "transformer_blocks.3.audio_attn2.to_gate_logits.bias",
    "transformer_blocks.3.prompt_scale_shift_table": "transformer_blocks.3.prompt_scale_shift_table",
    "transformer_blocks.3.audio_prompt_scale_shift_table": "transformer_blocks.3.audio_prompt_scale_shift_table",
}
TABLES = {"ltx2": {**ORIGINAL_NAMES, **ORIGINAL_NAMES_2_0}, "ltx2_3": {**ORIGINAL_NAMES, **ORIGINAL_NAMES_2_3}}
#: The quiet guidance of a tiny run (no STG, no modality guidance, no rescale: 2 passes a step).
QUIET = {"guidance_scale": 3.0, "audio_guidance_scale": 3.0, "alt_guidance_scale": 1.0, "alt_scale": 0.0,
         "perturbation_switch": 0}


@pytest.fixture(scope="module")
def models():
    return {kind: tiny.make_transformer(kind) for kind in LTX2.tiny_kinds}


# -- the original layout -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ltx2", "ltx2_3"])
def test_the_original_layout_converts_to_diffusers(kind, models):
    model = models[kind]
    state = model.state_dict()
    original = tiny.assert_round_trip(kind, model)  # diffusers' converter undoes the tiny files' layout exactly
    for old, new in TABLES[kind].items():  # the inverse used by the tiny files agrees with WanGP's names
        assert torch.equal(original[old], state[new]), old
    assert not any(name.startswith(("proj_in.", "time_embed.", "prompt_adaln.")) for name in original)
    # WanGP's files may keep the checkpoint prefix; its loader strips it, and so does the conversion
    prefixed = {f"model.diffusion_model.{name}": tensor for name, tensor in original.items()}
    assert LTX2.recognises(dict.fromkeys(prefixed)) and LTX2.recognises(dict.fromkeys(original))
    assert not family("wan").recognises(dict.fromkeys(prefixed))
    qmap = {"model.diffusion_model.transformer_blocks.3.attn1.to_q": {"weights": "qint8"},
            "model.diffusion_model.patchify_proj": {"weights": "qint8"}}
    converted, converted_map = LTX2.to_diffusers(dict(prefixed), qmap, {})
    assert set(converted) == set(state)
    assert all(torch.equal(converted[name], tensor) for name, tensor in state.items())
    assert set(converted_map) == {"transformer_blocks.3.attn1.to_q", "proj_in"}


def test_connector_keys_in_a_transformer_file_are_left_to_the_components(models):
    original = tiny.to_original_layout("ltx2", models["ltx2"])
    original["video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.weight"] = torch.zeros(2, 2)
    qmap = {"video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q": {"weights": "qint8"}}
    converted, converted_map = LTX2.to_diffusers(original, qmap, {})
    assert not any("connector" in name for name in converted) and converted_map == {}


@pytest.mark.parametrize("kind", ["ltx2", "ltx2_3"])
def test_config_from_shapes_and_the_embedded_config(kind, models):
    model = models[kind]
    original = tiny.to_original_layout(kind, model)
    config = LTX2.config(original, tiny.wangp_config(kind, model), {}, "the file")
    built = LTX2.model_class(config).from_config(config)
    assert set(built.state_dict()) == set(model.state_dict())
    for key, value in tiny.TRANSFORMER_CONFIGS[kind].items():
        if key != "caption_channels" or config["use_prompt_embeddings"]:  # unused without caption projections
            assert config[key] == value, key
    if kind == "ltx2_3":  # the attention gates give the head counts without any config
        bare = LTX2.config(original, {}, {}, "the file")
        assert (bare["num_attention_heads"], bare["audio_num_attention_heads"]) == (2, 2)
    arch = "ltx2_22B" if kind == "ltx2" else "ltx2_19B"
    problem = LTX2.mismatch(config, LTX2.architectures[arch].shape)
    assert problem == ("LTX-2.0 weights, the architecture is LTX-2.3" if kind == "ltx2" else
                       "LTX-2.3 weights, the architecture is LTX-2.0")
    assert LTX2.mismatch(config, LTX2.architectures[tiny.ARCHITECTURES[kind]].shape) is None


def test_the_real_shapes_are_their_generation():
    from wangp_cli.families.ltx2.convert import version

    assert [version(LTX2.architectures[a].shape) for a in ("ltx2_19B", "ltx2_22B", "ltx2_25_22B")] == [
        "2.0", "2.3", "2.5"]


# -- settings ----------------------------------------------------------------------------------------------------

def test_wangp_guidance_settings_become_call_arguments():
    settings = {"guidance_scale": 3.0, "audio_guidance_scale": 7.0, "alt_guidance_scale": 3.0, "alt_scale": 0.7,
                "perturbation_switch": 2, "perturbation_layers": [29], "negative_prompt": "blurry"}
    assert ltx2_settings.call_arguments(settings, 24) == {
        "negative_prompt": "blurry", "guidance_scale": 3.0, "audio_guidance_scale": 7.0, "modality_scale": 3.0,
        "audio_modality_scale": 3.0, "guidance_rescale": 0.7, "audio_guidance_rescale": 0.7, "stg_scale": 1.0,
        "audio_stg_scale": 1.0, "spatio_temporal_guidance_blocks": [29], "frame_rate": 24.0}
    quiet = ltx2_settings.call_arguments({"guidance_scale": 1.0}, 25)
    assert quiet["stg_scale"] == 0 and quiet["spatio_temporal_guidance_blocks"] is None
    assert quiet["audio_guidance_scale"] == 1.0 and quiet["negative_prompt"] is None and quiet["frame_rate"] == 25.0


def test_distilled_settings_take_the_distilled_sigmas():
    from types import SimpleNamespace

    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    settings = {"sample_solver": "distilled_8_steps", "num_inference_steps": 8}
    request = SimpleNamespace(settings=settings, family_settings=settings, fps=24, image=None,
                              architecture="ltx2_22B")
    assert LTX2.call_arguments(request)["sigmas"] == list(DISTILLED_SIGMA_VALUES)
    assert ltx2_settings.refusals(request.settings) == []
    assert ltx2_settings.distilled({"ltx2_pipeline": "distilled"})
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = SimpleNamespace(scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, shift_terminal=0.1))
    LTX2.set_scheduler(pipe, request)  # the sigmas as given: no dynamic or terminal shift
    assert not pipe.scheduler.config.use_dynamic_shifting and pipe.scheduler.config.shift_terminal is None
    # the 2.5 repo ships the distilled schedule
    full = SimpleNamespace(settings={}, family_settings={}, architecture="ltx2_25_22B")
    pipe = SimpleNamespace(scheduler=FlowMatchEulerDiscreteScheduler())
    LTX2.set_scheduler(pipe, full)
    assert pipe.scheduler.config.use_dynamic_shifting and pipe.scheduler.config.shift_terminal == 0.1


@pytest.mark.parametrize("settings,words", [
    ({"sample_solver": "res2s"}, "sample_solver 'res2s'"),
    ({"sample_solver": "distilled_8_steps_ancestral", "num_inference_steps": 8}, "'distilled_8_steps_ancestral'"),
    ({"guidance_phases": 2}, "guidance_phases 2"),
    ({"perturbation_switch": 1}, "Skip Layer Guidance"),
    ({"perturbation_switch": 2, "perturbation_end_perc": 50}, "perturbation_end_perc"),
    ({"apg_switch": 1}, "apg_switch"), ({"cfg_star_switch": 1}, "cfg_star_switch"),
    ({"self_refiner_setting": 1}, "self_refiner_setting"), ({"NAG_scale": 2}, "NAG_scale"),
    ({"sample_solver": "distilled_8_steps", "num_inference_steps": 4}, "8 steps"),
])
def test_settings_diffusers_cannot_follow_are_refused(settings, words):
    messages = LTX2.refusals("m", "ltx2_22B", settings)
    assert len(messages) == 1 and words in messages[0] and messages[0].startswith("'m': ")


# -- generation --------------------------------------------------------------------------------------------------

def reference_run(home, request, quantized: bool, image=None):
    """The diffusers docs' recipe by hand on the weights the file was written from."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["transformer_blocks.*"])
        freeze(model)
    cls = diffusers.LTX2ImageToVideoPipeline if image is not None else diffusers.LTX2Pipeline
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=model, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    s = request.settings
    call = {"guidance_scale": s["guidance_scale"], "audio_guidance_scale": s["audio_guidance_scale"],
            "stg_scale": 0.0, "audio_stg_scale": 0.0, "modality_scale": 1.0, "audio_modality_scale": 1.0,
            "guidance_rescale": 0.0, "audio_guidance_rescale": 0.0, "spatio_temporal_guidance_blocks": None}
    if image is not None:
        from PIL import Image

        call.update(image=Image.open(image).convert("RGB"), image_crf=0)
    with torch.inference_mode():
        output = pipe(prompt=s["prompt"], height=request.height, width=request.width, num_frames=request.frames,
                      frame_rate=24.0, num_inference_steps=request.steps,
                      generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np", **call,
                      **home.pipeline_kwargs)
    return output, model


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
def test_frames_and_audio_equal_the_plain_diffusers_pipeline(quantized, components, models, tmp_path):
    home = tiny.make_home(tmp_path / "home", "ltx2", quantized=quantized, components=components("ltx2"),
                          model=models["ltx2"], settings=QUIET)
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 11, "prompt": "a red fox in the forest"},
                            preference=home.preference, pipeline_kwargs=home.pipeline_kwargs)
    generator = Generator(catalog)
    result = generator.render(request).result
    expected, reference_model = reference_run(home, request, quantized)
    assert result.frames.shape == expected.frames[0].shape == (9, 32, 32, 3)
    assert np.isfinite(result.frames).all() and result.frames.std() > 0.01
    np.testing.assert_array_equal(result.frames, expected.frames[0])
    samples, rate = result.audio
    assert rate == 16000 and samples.dtype == np.float32 and samples.shape[0] == 2
    np.testing.assert_array_equal(samples, np.clip(expected.audio[0].float().numpy(), -1, 1))
    loaded = {n for n, m in generator._pipe.transformer.named_modules() if type(m).__name__ == "QLinear"}
    assert loaded == {n for n, m in reference_model.named_modules() if type(m).__name__ == "QLinear"}
    assert bool(loaded) is quantized


def _audio_stream(video: Path) -> str:
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(video)],
                           check=False, capture_output=True, text=True)
    return next((line for line in probe.stderr.splitlines() if "Audio:" in line), "")


def test_the_cli_writes_an_mp4_with_its_audio_track(components, models, tmp_path):
    """LTX-2.3 with a start image (LTX2ImageToVideoPipeline): 9 frames at 24 fps, an AAC stereo track."""
    home = tiny.make_home(tmp_path / "home", "ltx2_3", components=components("ltx2_3"), model=models["ltx2_3"],
                          settings=QUIET)
    start = tmp_path / "start.png"
    tiny.make_image(32, seed=3).save(start)
    args = ["--home", home.root, "generate", "-m", home.model_id, "--seed", 7, "--image", start, "--format", "json"]
    for key, value in home.pipeline_kwargs.items():
        args += ["--pipeline-arg", f"{key}={json.dumps(value)}"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    record = json.loads(result.stdout)
    video = Path(record["path"])
    probe = probe_video(video)
    assert (probe["frames"], probe["width"], probe["height"]) == (9, 32, 32)
    assert probe["fps"] == pytest.approx(24)
    stream = _audio_stream(video)
    assert "aac" in stream and "stereo" in stream, stream
    # the pipeline's audio covers the video's 9 / 24 s in whole audio latents (4 mel frames of 10 ms): 0.33 s
    assert record["audio"]["channels"] == 2 and 0.3 <= record["audio"]["seconds"] <= 9 / 24


def test_an_ltx2_request_is_refused_before_loading(components, models, tmp_path):
    home = tiny.make_home(tmp_path / "home", "ltx2", components=components("ltx2"), model=models["ltx2"],
                          settings={**QUIET, "sample_solver": "res2s"})
    result = runner.invoke(app, ["--home", str(home.root), "generate", "-m", home.model_id, "--dry-run"])
    assert result.exit_code != 0 and "res2s" in result.output and "Traceback" not in result.output


# -- quantize ----------------------------------------------------------------------------------------------------

def _module_tree(original: dict):
    """A module with the original layout's names (Linear for every weight + bias pair), for mmgp to choose from."""
    from torch import nn

    root = nn.Module()

    def child(path: list[str]):
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module

    for name, tensor in original.items():
        *path, leaf = name.split(".")
        if leaf == "weight" and tensor.dim() == 2:
            parent, last = child(path[:-1]), path[-1]
            linear = nn.Linear(tensor.shape[1], tensor.shape[0], bias=f"{'.'.join(path)}.bias" in original)
            with torch.no_grad():
                linear.weight.copy_(tensor)
            parent.add_module(last, linear)  # replaces a placeholder made for a child (``to_out`` of ``to_out.0``)
    for name, tensor in original.items():
        *path, leaf = name.split(".")
        module = child(path)
        if not isinstance(module, nn.Linear) and not hasattr(module, leaf):
            module.register_parameter(leaf, nn.Parameter(tensor.clone()))
    return root


def test_quantized_layers_are_mmgps(tmp_path):
    """mmgp's ``_quantize`` (WanGP's quantizer) over the original names: the blocks' Linears, nothing else (16 blocks,
    so that the rest is under the 20% above which mmgp quantizes everything, as in the real 48-block models)."""
    pytest.importorskip("mmgp")
    import diffusers

    from tests.quantize.test_mmgp_interop import offload

    kind = "ltx2_3"  # every module of 2.0 and the gates, prompt modulation of 2.3
    from wangp_cli.quantize.safetensors_io import decode_metadata, read_header

    model = diffusers.LTX2VideoTransformer3DModel(**{**tiny.TRANSFORMER_CONFIGS[kind], "num_layers": 16})
    original = tiny.to_original_layout(kind, model)
    tree = _module_tree(original)
    offload._quantize(tree, verboseLevel=0)
    chosen = {n for n, m in tree.named_modules() if type(m).__name__ == "QLinear"}
    path = tiny.write_quantized(kind, model, tmp_path / "q.safetensors")
    _, _, metadata = read_header(path)
    written = set(decode_metadata(metadata, path)["quantization_map"])
    assert chosen and written == chosen
    assert all(re.match(r"transformer_blocks\.\d+\.", name) for name in written)
    assert LTX2.quantize_checked
