"""The base architectures per target: WanGP 6.x / July 2025 (the table below) and WanGP 12 (a data file).

v6/july: facts from WanGP's ``wgp.py`` (95727e61 … 64c59c15); see docs/definition-format.md.
v12: ``data/base_types_v12.json``, one row per base type of WanGP 12.60's family handlers, made by
``tools/wangp_base_types.py`` from a WanGP checkout (rerun it when WanGP adds types).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.defaults import default_settings

HF = "https://huggingface.co"
HUB_REPOS = {"wan": "DeepBeepMeep/Wan2.1", "hunyuan": "DeepBeepMeep/HunyuanVideo", "ltxv": "DeepBeepMeep/LTX_Video",
             "flux": "DeepBeepMeep/Flux"}

#: Architectures whose finetunes WanGP's docs list as tested.
DOCUMENTED_FINETUNE_ARCHITECTURES = ("t2v", "i2v", "i2v_720p", "vace_14B", "hunyuan", "hunyuan_i2v")

TARGETS = ("v6", "july", "v12")
DEFAULT_TARGET = "v12"
#: What each target is, for help texts and messages.
TARGET_NAMES = {"v6": "WanGP 6.x, June 2025", "july": "WanGP 6.6-7.0, July 2025", "v12": "WanGP 12.x, 2026"}
_V12_TABLE = Path(__file__).with_name("data") / "base_types_v12.json"
_V12_SHIPPED = Path(__file__).with_name("data") / "definitions_v12.json"


@dataclass(frozen=True)
class Module:
    """An extension merged on top of the main weights (``modules`` in a definition)."""

    id: str
    files: tuple[str, ...]
    family: str = "wan"
    since: str = "v6"

    @property
    def urls(self) -> list[str]:
        return [hub_url(self.family, f) for f in self.files]


@dataclass(frozen=True)
class Architecture:
    """One WanGP base model id."""

    id: str
    name: str
    family: str  # wan | hunyuan | ltxv | flux
    io_class: str  # t2v | i2v (WanGP's test_class_i2v)
    files: tuple[str, ...]  # default checkpoint files, WanGP's order (without the .safetensors suffix)
    diffusers_repo: str | None = None  # where the other components come from
    components: tuple[str, ...] = ()  # diffusers subfolders taken from diffusers_repo (never its transformer)
    weights_from: str | None = None  # base id whose checkpoint files this one uses (vace_14B -> t2v)
    modules: tuple[str, ...] = ()
    loras: tuple[str, ...] = ()
    fps: int = 16
    frames: tuple[int, int, int] = (5, 193, 4)  # UI slider min, max, step
    image_outputs: bool = False  # an image model (WanGP's set_default_model_def)
    transformer: dict = field(default_factory=dict)  # shape of the transformer (for loaders)
    since: str = "v6"  # first target where the id exists
    until: str | None = None  # last target where it is a base id
    note: str = ""
    # WanGP 12 (target v12) only: the row of data/base_types_v12.json
    output: str = "video"  # video | image | audio | image+video
    audio: bool = False  # returns an audio track too
    group: str | None = None  # WanGP's UI group (wan2_2, hunyuan_1_5, ...)
    handler: str = ""  # WanGP's family handler (wan, ovi, df, ltx2, ...)
    lora_dir: str = ""  # the LoRA folder under loras/
    pipeline: str | None = None  # the diffusers pipeline that can run it (None: WanGP only)
    prompt_types: str = ""  # image prompt types allowed (T, S, E, V, L)
    defaults: dict | None = None  # the file keys of WanGP's defaults/<id>.json model subtree
    handler_keys: dict = field(default_factory=dict)  # what WanGP's handler sets (query_model_def)
    task_class: str = ""  # t2v, i2v, t2v+i2v, t2i (text to image), t2a (text to audio)
    urls2_keys: dict = field(default_factory=dict)  # what the handler sets differently when a definition has URLs2

    def keys_for(self, model: dict) -> dict:
        """The handler's keys for a definition of this type (WanGP runs ``query_model_def`` on each one: a second
        transformer, ``URLs2``, changes some of them)."""
        return {**self.handler_keys, **self.urls2_keys} if "URLs2" in model and self.urls2_keys else self.handler_keys

    @property
    def urls(self) -> list[str]:
        """The default checkpoint URLs (a string reference to this id resolves to these)."""
        if self.since == "v12":
            urls = (self.defaults or {}).get("URLs")
            return list(urls) if isinstance(urls, list) else []
        if self.weights_from:
            return ARCHITECTURES[self.weights_from].urls
        return [hub_url(self.family, f) for f in self.files]

    @property
    def default_settings(self) -> dict:
        return default_settings(self)

    def exists_in(self, target: str) -> bool:
        if target == "v12":
            return self.since == "v12"
        order = TARGETS.index
        return self.since != "v12" and order(self.since) <= order(target) and (
            self.until is None or order(target) <= order(self.until))


def hub_url(family: str, file: str) -> str:
    name = file if file.endswith((".safetensors", ".json", ".pth", ".pt", ".onnx", ".pkl")) else file + ".safetensors"
    return f"{HF}/{HUB_REPOS[family]}/resolve/main/{name}"


def _quanto(stem: str, dtype: str = "mbf16") -> tuple[str, str, str]:
    """The usual trio: 16-bit, quanto int8 of bf16 and of fp16 (``_mbf16`` → ``_quanto_mbf16_int8``)."""
    other = {"mbf16": "mfp16", "bf16": "fp16"}[dtype]
    return f"{stem}_{dtype}", f"{stem}_quanto_{dtype}_int8", f"{stem}_quanto_{other}_int8"


_WAN_T2V = ("text_encoder", "tokenizer", "vae", "scheduler")
_WAN_I2V = _WAN_T2V + ("image_encoder", "image_processor")
_HUNYUAN = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae", "scheduler")
_LTXV = ("text_encoder", "tokenizer", "vae", "scheduler")

_WAN_COMMON = {"kind": "wan", "head_dim": 128, "patch_size": [1, 2, 2], "text_dim": 4096, "freq_dim": 256}
_WAN_1_3B = {**_WAN_COMMON, "dim": 1536, "num_heads": 12, "ffn_dim": 8960, "num_layers": 30,
             "in_channels": 16, "out_channels": 16}
_WAN_14B = {**_WAN_COMMON, "dim": 5120, "num_heads": 40, "ffn_dim": 13824, "num_layers": 40,
            "in_channels": 16, "out_channels": 16}
_WAN_14B_I2V = {**_WAN_14B, "in_channels": 36, "image_dim": 1280, "added_kv_proj_dim": 5120}
_WAN_1_3B_I2V = {**_WAN_1_3B, "in_channels": 36, "image_dim": 1280, "added_kv_proj_dim": 1536}
_HUNYUAN_CFG = {"kind": "hunyuan", "num_attention_heads": 24, "attention_head_dim": 128, "num_layers": 20,
                "num_single_layers": 40, "num_refiner_layers": 2, "mlp_ratio": 4.0, "patch_size": 2,
                "patch_size_t": 1, "text_embed_dim": 4096, "pooled_projection_dim": 768, "rope_theta": 256.0,
                "rope_axes_dim": [16, 56, 56], "in_channels": 16, "out_channels": 16, "guidance_embeds": True}


def _arch(id, name, family, io_class, files, **kw) -> Architecture:
    return Architecture(id=id, name=name, family=family, io_class=io_class, files=tuple(files), **kw)


_T2V_14B_REPO = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
#: SkyReels-V2 DF files are Wan t2v files run by diffusers' SkyReels transformer (the tensors cannot tell)
_SKYREELS = "SkyReelsV2Transformer3DModel"
_I2V_480_REPO = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
_I2V_720_REPO = "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers"

_ALL = [
    _arch("t2v_1.3B", "Wan2.1 text2video 1.3B", "wan", "t2v", ["wan2.1_text2video_1.3B_bf16"],
          diffusers_repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", components=_WAN_T2V, transformer=_WAN_1_3B),
    _arch("t2v", "Wan2.1 text2video 14B", "wan", "t2v", _quanto("wan2.1_text2video_14B"),
          diffusers_repo=_T2V_14B_REPO, components=_WAN_T2V, transformer=_WAN_14B),
    _arch("i2v", "Wan2.1 image2video 480p 14B", "wan", "i2v", _quanto("wan2.1_image2video_480p_14B"),
          diffusers_repo=_I2V_480_REPO, components=_WAN_I2V, transformer=_WAN_14B_I2V),
    _arch("i2v_720p", "Wan2.1 image2video 720p 14B", "wan", "i2v", _quanto("wan2.1_image2video_720p_14B"),
          diffusers_repo=_I2V_720_REPO, components=_WAN_I2V, transformer=_WAN_14B_I2V),
    _arch("flf2v_720p", "Wan2.1 FLF2V 720p 14B", "wan", "i2v",
          ["wan2.1_FLF2V_720p_14B_bf16", "wan2.1_FLF2V_720p_14B_quanto_int8", "wan2.1_FLF2V_720p_14B_quanto_fp16_int8"],
          diffusers_repo="Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", components=_WAN_I2V, transformer=_WAN_14B_I2V),
    _arch("vace_1.3B", "Vace ControlNet 1.3B", "wan", "t2v", ["wan2.1_Vace_1.3B_mbf16"],
          diffusers_repo="Wan-AI/Wan2.1-VACE-1.3B-diffusers", components=_WAN_T2V, frames=(17, 737, 4),
          transformer={**_WAN_1_3B, "vace_layers": list(range(0, 30, 2)), "vace_in_channels": 96}),
    _arch("vace_14B", "Vace ControlNet 14B", "wan", "t2v", [], weights_from="t2v", modules=("vace_14B",),
          diffusers_repo="Wan-AI/Wan2.1-VACE-14B-diffusers", components=_WAN_T2V, frames=(17, 737, 4),
          transformer={**_WAN_14B, "vace_layers": list(range(0, 40, 5)), "vace_in_channels": 96}),
    _arch("moviigen", "MoviiGen 1080p 14B", "wan", "t2v", _quanto("wan2.1_moviigen1.1_14B"),
          diffusers_repo=_T2V_14B_REPO, components=_WAN_T2V, transformer=_WAN_14B),
    _arch("phantom_1.3B", "Phantom 1.3B", "wan", "t2v", ["wan2_1_phantom_1.3B_mbf16"],
          diffusers_repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", components=_WAN_T2V, transformer=_WAN_1_3B),
    _arch("phantom_14B", "Phantom 14B", "wan", "t2v", _quanto("wan2.1_phantom_14B"),
          diffusers_repo=_T2V_14B_REPO, components=_WAN_T2V, transformer=_WAN_14B),
    _arch("fantasy", "Fantasy Talking 720p", "wan", "i2v", [], weights_from="i2v_720p", modules=("fantasy",),
          diffusers_repo=_I2V_720_REPO, components=_WAN_I2V, fps=23, transformer=_WAN_14B_I2V),
    # the T2V 1.3B repo has no image encoder: the I2V repo's text encoder, VAE and CLIP are the same
    _arch("fun_inp_1.3B", "Fun InP image2video 1.3B", "wan", "i2v", ["wan2.1_Fun_InP_1.3B_bf16"],
          diffusers_repo=_I2V_480_REPO, components=_WAN_I2V, transformer=_WAN_1_3B_I2V),
    _arch("fun_inp", "Fun InP image2video 14B", "wan", "i2v",
          ["wan2.1_Fun_InP_14B_bf16", "wan2.1_Fun_InP_14B_quanto_int8", "wan2.1_Fun_InP_14B_quanto_fp16_int8"],
          diffusers_repo=_I2V_720_REPO, components=_WAN_I2V, transformer=_WAN_14B_I2V),
    _arch("recam_1.3B", "ReCamMaster 1.3B", "wan", "t2v", ["wan2.1_recammaster_1.3B_bf16"],
          diffusers_repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", components=_WAN_T2V, transformer=_WAN_1_3B),
    _arch("sky_df_1.3B", "SkyReels2 Diffusion Forcing 1.3B", "wan", "t2v",
          ["sky_reels2_diffusion_forcing_1.3B_mbf16"], frames=(17, 737, 20), fps=24,
          diffusers_repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", components=_WAN_T2V,
          transformer={**_WAN_1_3B, "transformer_class": _SKYREELS}),
    _arch("sky_df_14B", "SkyReels2 Diffusion Forcing 540p 14B", "wan", "t2v",
          ["sky_reels2_diffusion_forcing_14B_bf16", "sky_reels2_diffusion_forcing_14B_quanto_int8",
           "sky_reels2_diffusion_forcing_14B_quanto_fp16_int8"], frames=(17, 737, 20), fps=24,
          diffusers_repo=_T2V_14B_REPO, components=_WAN_T2V,
          transformer={**_WAN_14B, "transformer_class": _SKYREELS}),
    _arch("sky_df_720p_14B", "SkyReels2 Diffusion Forcing 720p 14B", "wan", "t2v",
          _quanto("sky_reels2_diffusion_forcing_720p_14B"), frames=(17, 737, 20), fps=24,
          diffusers_repo=_T2V_14B_REPO, components=_WAN_T2V,
          transformer={**_WAN_14B, "transformer_class": _SKYREELS}),
    _arch("ltxv_13B", "LTX Video 0.9.7 13B", "ltxv", "t2v",
          ["ltxv_0.9.7_13B_dev_bf16", "ltxv_0.9.7_13B_dev_quanto_bf16_int8"], fps=30, frames=(17, 737, 8),
          diffusers_repo="Lightricks/LTX-Video-0.9.7-dev", components=_LTXV, transformer={"kind": "ltxv"}),
    _arch("ltxv_13B_distilled", "LTX Video 0.9.7 Distilled 13B", "ltxv", "t2v", [], weights_from="ltxv_13B",
          loras=("ltxv_0.9.7_13B_distilled_lora128_bf16",), fps=30, frames=(17, 737, 8),
          diffusers_repo="Lightricks/LTX-Video-0.9.7-distilled", components=_LTXV, transformer={"kind": "ltxv"}),
    _arch("hunyuan", "Hunyuan Video text2video 720p 13B", "hunyuan", "t2v",
          ["hunyuan_video_720_bf16", "hunyuan_video_720_quanto_int8"], fps=24, frames=(5, 337, 4),
          diffusers_repo="hunyuanvideo-community/HunyuanVideo", components=_HUNYUAN, transformer=_HUNYUAN_CFG),
    _arch("hunyuan_i2v", "Hunyuan Video image2video 720p 13B", "hunyuan", "i2v",
          ["hunyuan_video_i2v_720_bf16v2", "hunyuan_video_i2v_720_quanto_int8v2"], fps=24, frames=(5, 337, 4),
          diffusers_repo="hunyuanvideo-community/HunyuanVideo-I2V", components=_HUNYUAN + ("image_processor",),
          transformer={**_HUNYUAN_CFG, "image_condition_type": "token_replace"}),
    _arch("hunyuan_custom", "Hunyuan Video Custom 720p 13B", "hunyuan", "t2v",
          ["hunyuan_video_custom_720_bf16", "hunyuan_video_custom_720_quanto_bf16_int8"], fps=24,
          frames=(5, 337, 4), diffusers_repo="hunyuanvideo-community/HunyuanVideo", components=_HUNYUAN,
          transformer=_HUNYUAN_CFG),
    _arch("hunyuan_custom_audio", "Hunyuan Video Custom Audio 720p 13B", "hunyuan", "t2v",
          ["hunyuan_video_custom_audio_720_bf16", "hunyuan_video_custom_audio_720_quanto_bf16_int8"], fps=25,
          frames=(5, 401, 4), diffusers_repo="hunyuanvideo-community/HunyuanVideo", components=_HUNYUAN,
          transformer=_HUNYUAN_CFG),
    _arch("hunyuan_custom_edit", "Hunyuan Video Custom Edit 720p 13B", "hunyuan", "t2v",
          ["hunyuan_video_custom_edit_720_bf16", "hunyuan_video_custom_edit_720_quanto_bf16_int8"], fps=24,
          frames=(5, 337, 4), diffusers_repo="hunyuanvideo-community/HunyuanVideo", components=_HUNYUAN,
          transformer=_HUNYUAN_CFG),
    _arch("hunyuan_avatar", "Hunyuan Video Avatar 720p 13B", "hunyuan", "t2v",
          ["hunyuan_video_avatar_720_bf16", "hunyuan_video_avatar_720_quanto_bf16_int8"], fps=25,
          frames=(5, 401, 4), diffusers_repo="hunyuanvideo-community/HunyuanVideo", components=_HUNYUAN,
          transformer=_HUNYUAN_CFG),
    # July 2025 (4908c3c2 / 64c59c15)
    _arch("multitalk", "Multitalk 480p 14B", "wan", "i2v", [], weights_from="i2v", modules=("multitalk",),
          diffusers_repo=_I2V_480_REPO, components=_WAN_I2V, fps=25, transformer=_WAN_14B_I2V, since="july"),
    _arch("vace_multitalk_14B", "Vace Multitalk 14B", "wan", "t2v", [], weights_from="t2v",
          modules=("vace_14B", "multitalk"), diffusers_repo="Wan-AI/Wan2.1-VACE-14B-diffusers",
          components=_WAN_T2V, fps=25, frames=(17, 737, 4), since="july",
          transformer={**_WAN_14B, "vace_layers": list(range(0, 40, 5)), "vace_in_channels": 96}),
    # WanGP 6.7 / 7.0 (eb92f0c1 / 64c59c15): image editing; wangp lists, validates and downloads it, no generation
    _arch("flux_dev_kontext", "Flux Dev Kontext 12B", "flux", "t2v",
          ["flux1_kontext_dev_bf16", "flux1_kontext_dev_quanto_bf16_int8"], frames=(1, 1, 1), image_outputs=True,
          since="july"),
]

ARCHITECTURES: dict[str, Architecture] = {a.id: a for a in _ALL}

MODULES: dict[str, Module] = {
    "vace_14B": Module("vace_14B", _quanto("wan2.1_Vace_14B_module")),
    "fantasy": Module("fantasy", ("wan2.1_fantasy_speaking_14B_bf16",), since="july"),
    "multitalk": Module("multitalk", _quanto("wan2.1_multitalk_14B"), since="july"),
}


#: v12 classes in the words of the July tables (``io_class``): what needs an image, what does not.
_IO_CLASS = {"t2v": "t2v", "i2v": "i2v", "t2v+i2v": "t2v", "t2i": "t2v", "t2a": "t2v"}


#: The generation fields of the WanGP 12 types that July did not have (Wan 2.2): where the components come from
#: (never a transformer: Wan 2.2 A14B's ``transformer_2`` is the definition's ``URLs2``) and the transformer shape.
_WAN_2_2_REPO = "Wan-AI/Wan2.2-{}-Diffusers"
_V12_GENERATION = {
    "t2v_2_2": _arch("t2v_2_2", "", "wan", "t2v", (), diffusers_repo=_WAN_2_2_REPO.format("T2V-A14B"),
                     components=_WAN_T2V, transformer=_WAN_14B),
    "i2v_2_2": _arch("i2v_2_2", "", "wan", "i2v", (), diffusers_repo=_WAN_2_2_REPO.format("I2V-A14B"),
                     components=_WAN_T2V, transformer={**_WAN_14B, "in_channels": 36}),
    "ti2v_2_2": _arch("ti2v_2_2", "", "wan", "t2v", (), diffusers_repo=_WAN_2_2_REPO.format("TI2V-5B"),
                      components=_WAN_T2V, transformer={**_WAN_COMMON, "dim": 3072, "num_heads": 24, "ffn_dim": 14336,
                                                        "num_layers": 30, "in_channels": 48, "out_channels": 48}),
    # VACE 2.2 (WanGP: the t2v_2_2 pair with the Wan 2.1 VACE module in both): WanVACEPipeline takes the same
    # text encoder, tokenizer, Wan 2.1 VAE and scheduler as WanPipeline, so the components are T2V-A14B's (the
    # folder t2v_2_2 already uses; Wan-AI publishes no VACE 2.2 diffusers repo, and its model_index boundary_ratio
    # 0.875 is WanGP's switch_threshold 875)
    "vace_14B_2_2": _arch("vace_14B_2_2", "", "wan", "t2v", (), diffusers_repo=_WAN_2_2_REPO.format("T2V-A14B"),
                          components=_WAN_T2V, frames=(17, 737, 4),
                          transformer={**_WAN_14B, "vace_layers": list(range(0, 40, 5)), "vace_in_channels": 96}),
}


def _v12_architecture(row: dict) -> Architecture:
    """One row of the v12 table; the types wangp generates keep the July generation fields (shapes, repos), the
    Wan 2.2 ones take :data:`_V12_GENERATION`'s."""
    frames = row.get("frames") or [5, 4]
    july = _V12_GENERATION.get(row["id"]) or ARCHITECTURES.get(row["id"])
    base = july if july is not None and (july.exists_in("july") or row["id"] in _V12_GENERATION) else None
    if base is None or base.diffusers_repo is None:  # July knew flux_dev_kontext without generating it
        base = _family_generation(row["id"]) or base
    return Architecture(
        id=row["id"], name=row.get("name") or row["id"], family=row["family"],
        io_class=_IO_CLASS.get(row.get("class", "t2v"), "t2v"), files=(),
        diffusers_repo=base.diffusers_repo if base else None, components=base.components if base else (),
        transformer=base.transformer if base else {}, fps=row.get("fps") or 16,
        frames=(frames[0], base.frames[1] if base else 737, frames[1]), image_outputs=row.get("output") == "image",
        since="v12", output=row.get("output", "video"), audio=bool(row.get("audio")), group=row.get("group"),
        handler=row.get("handler", ""), lora_dir=row.get("lora_dir") or row["family"], pipeline=row.get("pipeline"),
        prompt_types=row.get("prompt_types") or "", defaults=row.get("defaults"),
        handler_keys=row.get("handler_keys") or {}, task_class=row.get("class", ""),
        urls2_keys=row.get("urls2_keys") or {})


def _family_generation(arch_id: str) -> Architecture | None:
    """The generation fields a family package declares for a WanGP 12 type (``families.<name>`` data: the
    components repository, its folders, the transformer shape), None where no family generates it."""
    from wangp_cli.families import generation  # data only: no torch

    generated = generation(arch_id)
    if generated is None or generated.repo is None:
        return None
    return _arch(arch_id, "", "", "t2v", (), diffusers_repo=generated.repo, components=generated.components,
                 transformer=dict(generated.shape), frames=(1, 737, 1))


@functools.lru_cache(maxsize=1)
def _v12() -> dict[str, Architecture]:
    """The v12 table, read on first use (a few milliseconds; light commands of other targets never read it)."""
    rows = json.loads(_V12_TABLE.read_text(encoding="utf-8")) if _V12_TABLE.is_file() else []
    return {row["id"]: _v12_architecture(row) for row in rows}


@functools.lru_cache(maxsize=None)
def shipped_definitions(target: str = DEFAULT_TARGET) -> frozenset[str]:
    """The ids of the ``defaults/*.json`` files WanGP itself ships (v12: 217 of WanGP 12.60): a reference to one
    resolves in WanGP even when this home folder lacks the file."""
    if target != "v12" or not _V12_SHIPPED.is_file():
        return frozenset(architecture_ids(target))
    return frozenset(json.loads(_V12_SHIPPED.read_text(encoding="utf-8")))


def _table(target: str) -> dict[str, Architecture]:
    return _v12() if target == "v12" else ARCHITECTURES


def get_architecture(arch_id: str, target: str = DEFAULT_TARGET) -> Architecture | None:
    arch = _table(target).get(arch_id)
    return arch if arch is not None and arch.exists_in(target) else None


def known_architecture(arch_id: str) -> Architecture | None:
    """The entry of ``arch_id`` in any target (the newest first): for messages about another target's ids."""
    return _v12().get(arch_id) or ARCHITECTURES.get(arch_id)


def architecture_ids(target: str = DEFAULT_TARGET) -> list[str]:
    return [a.id for a in _table(target).values() if a.exists_in(target)]


def module_ids(target: str = DEFAULT_TARGET) -> list[str]:
    """July's module ids (v12 has no module table: a module id is a definition)."""
    if target == "v12":
        return []
    order = TARGETS.index
    return [m.id for m in MODULES.values() if order(m.since) <= order(target)]


#: WanGP 7's ``get_model_family``: the first token found in the id names the family.
_FAMILY_TOKENS = (("hunyuan", "hunyuan"), ("ltxv", "ltxv"), ("flux", "flux"))


def family_of(arch_id: str) -> str | None:
    """The family of an id wangp does not know, by WanGP's tokens; None where WanGP would only guess "wan"."""
    return next((family for token, family in _FAMILY_TOKENS if token in arch_id), None)
