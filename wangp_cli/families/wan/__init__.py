"""Wan 2.1 (text-, image-, first-last-frame-to-video and VACE) and Wan 2.2 (A14B with two transformers, VACE on
both, TI2V 5B), and the Wan variants with a diffusers pipeline (SkyReels-V2 Diffusion Forcing, Fun InP, Lucy Edit,
ChronoEdit):
``convert.py`` (config from shapes, keys), ``layout.py`` (the diffusers -> original key tables), ``pipeline.py``
(scheduler, transformer switch, call), ``tiny.py``."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

_T2V = Generated("WanPipeline")
_I2V = Generated("WanImageToVideoPipeline", needs=("image",))
_VACE = Generated("WanVACEPipeline", takes=("control_video", "mask", "reference_images"))
#: TI2V 5B: text only through WanPipeline, with a start image through WanImageToVideoPipeline (both
#: ``expand_timesteps``).
_TI2V = Generated("WanPipeline", takes=("image",))
_TI2V_IMAGE = "WanImageToVideoPipeline"

#: The variants. SkyReels-V2 DF and Fun InP are in the July table (its components repo and shape); Lucy Edit and
#: ChronoEdit take theirs from here. ``transformer_class``: the diffusers class when it is not Wan's own (the
#: tensors are in Wan's layout either way; read by ``convert.config``).
_WAN_T2V_PARTS = ("text_encoder", "tokenizer", "vae", "scheduler")
_WAN_I2V_PARTS = _WAN_T2V_PARTS + ("image_encoder", "image_processor")
_WAN_SHAPE = {"kind": "wan", "head_dim": 128, "patch_size": [1, 2, 2], "text_dim": 4096, "freq_dim": 256}
SKYREELS_CLASS = "SkyReelsV2Transformer3DModel"
CHRONO_CLASS = "ChronoEditTransformer3DModel"
_SKY_DF = Generated("SkyReelsV2DiffusionForcingPipeline")
#: Fun InP: a Wan 2.1 image-to-video transformer (CLIP) that also takes an end image
_FUN_INP = Generated("WanImageToVideoPipeline", needs=("image",), takes=("last_image",))
#: Lucy Edit: the video to edit is the control video (``takes`` too: the request checks let only what an
#: architecture takes through)
_LUCY = Generated("LucyEditPipeline", needs=("control_video",), takes=("control_video",),
                  repo="decart-ai/Lucy-Edit-Dev", components=_WAN_T2V_PARTS,
                  # TI2V 5B with the edited video's latents concatenated to the noise (48 + 48 input channels)
                  shape={**_WAN_SHAPE, "dim": 3072, "num_heads": 24, "ffn_dim": 14336, "num_layers": 30,
                         "in_channels": 96, "out_channels": 48})
_CHRONO = Generated("ChronoEditPipeline", needs=("image",), repo="nvidia/ChronoEdit-14B-Diffusers",
                    components=_WAN_I2V_PARTS,
                    shape={**_WAN_SHAPE, "dim": 5120, "num_heads": 40, "ffn_dim": 13824, "num_layers": 40,
                           "in_channels": 36, "out_channels": 16, "image_dim": 1280, "added_kv_proj_dim": 5120,
                           "transformer_class": CHRONO_CLASS})
SKY_DF = ("sky_df_1.3B", "sky_df_14B")
FUN_INP = ("fun_inp", "fun_inp_1.3B")
#: SkyReels-V2 DF's frame counts (WanGP rounds ``video_length`` to 17 + 20k) and its ``model_mode`` values
#: (0 synchronous, 5 asynchronous: diffusers' ``ar_step``).
SKY_DF_FRAMES = (17, 20)
SKY_DF_MODES = (0, 5)
#: ChronoEdit's ``model_mode`` -> frames as WanGP sets them (``wan_handler``): 0 fast (5 frames), 1 long (29
#: frames, temporal reasoning, the edited image is the last); 2 writes a video, which an image architecture cannot.
CHRONO_FRAMES = {0: 5, 1: 29}

#: The transformer slots of a pipeline and the definition list that fills each (WanGP's submodels 1 and 2).
ONE_TRANSFORMER = {"transformer": "URLs"}
TWO_TRANSFORMERS = {"transformer": "URLs", "transformer_2": "URLs2"}
#: Wan 2.2 A14B: a high-noise transformer (URLs) and a low-noise one (URLs2); VACE 2.2: the t2v pair, the VACE
#: module in both (WanGP's ``load_models`` gives a plain module list to each submodel).
DUAL = ("t2v_2_2", "i2v_2_2", "vace_14B_2_2")
#: Settings diffusers cannot follow: (which models: "all", "dual" or "single" transformer, test, why).
_PHASE_REFUSALS = (
    ("all", lambda s: _int(s.get("guidance_phases"), 1) >= 3,
     "guidance_phases 3 (a third guidance phase at switch_threshold2) has no diffusers equivalent: use 1 or 2"),
    ("dual", lambda s: _int(s.get("guidance_phases"), 1) == 2 and _int(s.get("model_switch_phase"), 1) != 1,
     "model_switch_phase other than 1 (the transformer switch at switch_threshold) has no diffusers equivalent"),
    ("single", lambda s: _int(s.get("guidance_phases"), 1) >= 2 and _scale(s, "guidance2_scale") != _scale(
        s, "guidance_scale"),
     ("guidance_phases {guidance_phases} with guidance2_scale {guidance2_scale} different from guidance_scale "
      "{guidance_scale}: WanGP switches guidance at switch_threshold, diffusers' one-transformer pipelines cannot; "
      "set guidance_phases 1, or guidance2_scale equal to guidance_scale")),
)
#: WanGP's default guidance (``models/_settings.json``), for a setting the merged settings lack.
_DEFAULT_GUIDANCE = 5.0


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _scale(settings: dict, key: str):
    """A guidance value as a float (as it reaches the pipeline), or as given when it is not a number (the request
    checks report those)."""
    value = settings.get(key, _DEFAULT_GUIDANCE)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


class WanFamily(Family):
    """Wan: two transformers for the A14B architectures, and TI2V's pipeline chosen by whether an image is given."""

    def transformers(self, arch_id: str) -> dict[str, str]:
        """Pipeline slot -> the definition list that fills it (``transformer_2`` <- ``URLs2`` for Wan 2.2 A14B)."""
        return TWO_TRANSFORMERS if arch_id in DUAL else ONE_TRANSFORMER

    def pipeline_class(self, arch_id: str, image: bool = False):
        import diffusers

        if arch_id in FUN_INP:  # WanImageToVideoPipeline with WanGP's CLIP conditioning (the start image's)
            return self.part("pipeline").fun_inp_pipeline()
        name = _TI2V_IMAGE if image and arch_id == "ti2v_2_2" else self.architectures[arch_id].pipeline
        return getattr(diffusers, name)

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        """3-phase guidance, a model switch outside phase 2, and a guidance switch without a model switch (WanGP
        allows them, diffusers has none); two phases of equal guidance on one transformer are one phase."""
        models = "dual" if arch_id in DUAL else "single"
        values = {key: _shown(_scale(settings, key)) for key in ("guidance_scale", "guidance2_scale")}
        found = [f"'{model_id}': " + message.format(guidance_phases=settings.get("guidance_phases"), **values)
                 for which, test, message in _PHASE_REFUSALS if which in ("all", models) and test(settings)]
        return found + [f"'{model_id}': {message}" for message in _variant_refusals(arch_id, settings)]


def _variant_refusals(arch_id: str, settings: dict) -> list[str]:
    """What SkyReels-V2 DF and ChronoEdit settings diffusers' pipelines cannot follow."""
    problems = []
    mode = settings.get("model_mode") or 0
    if arch_id in SKY_DF:
        first, step = SKY_DF_FRAMES
        frames, window = settings.get("video_length"), settings.get("sliding_window_size")
        if mode not in SKY_DF_MODES:
            problems.append(f"model_mode {mode!r}: SkyReels-V2 DF takes 0 (synchronous) or 5 (asynchronous)")
        if isinstance(frames, int) and (frames < first or (frames - first) % step):
            problems.append(f"video_length {frames}: SkyReels-V2 DF makes {first} + {step}k frames (17, 37, 57, "
                            "...; WanGP rounds to the nearest), set one of those")
        if isinstance(frames, int) and isinstance(window, int) and frames > window:
            problems.append(f"video_length {frames} over sliding_window_size {window}: WanGP's sliding windows "
                            "(re-encoded overlaps) have no diffusers equivalent; generate at most one window")
    if arch_id == "chrono_edit" and mode not in CHRONO_FRAMES:
        problems.append(f"model_mode {mode!r}: ChronoEdit's temporal reasoning video (2) is a video output; wangp "
                        "writes ChronoEdit's edited image: use 0 (fast) or 1 (long, temporal reasoning)")
    return problems


FAMILY = WanFamily(
    name="wan", title="Wan", package=__name__,
    architectures={"t2v": _T2V, "t2v_1.3B": _T2V, "i2v": _I2V, "i2v_720p": _I2V,
                   "flf2v_720p": Generated("WanImageToVideoPipeline", needs=("image", "last_image")),
                   "vace_14B": _VACE, "vace_1.3B": _VACE,
                   "t2v_2_2": _T2V, "i2v_2_2": _I2V, "ti2v_2_2": _TI2V, "vace_14B_2_2": _VACE,
                   "sky_df_1.3B": _SKY_DF, "sky_df_14B": _SKY_DF, "fun_inp": _FUN_INP, "fun_inp_1.3B": _FUN_INP,
                   "lucy_edit": _LUCY, "chrono_edit": _CHRONO},
    quantized_blocks=("blocks.*", "vace_blocks.*"), quantize_checked=True,
    module_architectures={"vace_14B": "vace_14B", "vace_14B_2_2": "vace_14B"},
)
