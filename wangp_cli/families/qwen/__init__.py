"""Qwen-Image (text-to-image) and Qwen-Image-Edit (2508, Plus 2509, Plus 2511): ``convert.py`` (config from shapes
and the embedded config, the diffusers-named keys WanGP ships, fused q/k/v split), ``pipeline.py`` (WanGP's two
samplers, true CFG with WanGP's default negative prompt, the edit images), ``tiny.py``. Qwen-Image-Layered is
listed and refused: its output is a stack of RGBA layers, not one image."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The real transformer (WanGP's ``models/qwen/configs/qwen_image_20B.json``): 60 dual-stream blocks, 24 heads of
#: 128, Qwen2.5-VL-7B text states (3584), 16 latent channels packed 2x2 (64 in).
_SHAPE = {"kind": "qwen", "num_layers": 60, "num_attention_heads": 24, "attention_head_dim": 128,
          "joint_attention_dim": 3584, "in_channels": 64, "out_channels": 16, "patch_size": 2,
          "axes_dims_rope": [16, 56, 56], "zero_cond_t": False, "use_additional_t_cond": False,
          "use_layer3d_rope": False}
_TEXT = ("text_encoder", "tokenizer", "vae", "scheduler")
_EDIT = _TEXT + ("processor",)

#: The edit pipelines need transformers' Qwen2-VL processor, which needs torchvision (its video processor).
EDIT_ARCHITECTURES = ("qwen_image_edit_20B", "qwen_image_edit_plus_20B", "qwen_image_edit_plus2_20B")
LAYERED = "qwen_image_layered_20B"
#: WanGP's Qwen samplers (``pipeline.SCHEDULERS``).
SOLVERS = ("default", "lightning")


def _has_torchvision() -> bool:
    import importlib.util  # without importing it

    return importlib.util.find_spec("torchvision") is not None


#: The memory plan's figures (parameters; bytes per parameter as loaded): Qwen2.5-VL 7B text encoder, the VAE.
_SIZES = {"params": 20.4e9, "component_params": {"text_encoder": (8.3e9, 2), "vae": (0.13e9, 2)}}


class QwenFamily(Family):
    """Qwen-Image: refusals for what diffusers' pipelines cannot give as one image."""

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        problems = []
        if arch_id == LAYERED:
            layers = settings.get("batch_size", 4)
            problems.append(f"'{model_id}': Qwen-Image-Layered decomposes an image into {layers} RGBA layers"
                            " (WanGP's batch_size), a stack of images that one image output cannot hold; "
                            "generate it in WanGP")
        solver = settings.get("sample_solver") or "default"
        if solver not in SOLVERS:
            problems.append(f"'{model_id}': sample_solver {solver!r} is not a Qwen-Image sampler: use "
                            + " or ".join(SOLVERS))
        if arch_id in EDIT_ARCHITECTURES and not _has_torchvision():
            problems.append(f"'{model_id}': the Qwen-Image-Edit pipelines need torchvision (transformers' Qwen2-VL "
                            "processor loads a video processor built on it): pip install torchvision (the build "
                            "matching your torch)")
        return problems


FAMILY = QwenFamily(
    name="qwen", title="Qwen-Image", package=__name__,
    architectures={
        "qwen_image_20B": Generated("QwenImagePipeline", repo="Qwen/Qwen-Image", components=_TEXT, shape=_SHAPE,
                                    **_SIZES),
        "qwen_image_edit_20B": Generated("QwenImageEditPipeline", needs=("image",), repo="Qwen/Qwen-Image-Edit",
                                         components=_EDIT, shape=_SHAPE, **_SIZES),
        "qwen_image_edit_plus_20B": Generated("QwenImageEditPlusPipeline", needs=("image",),
                                              takes=("reference_images",), repo="Qwen/Qwen-Image-Edit-2509",
                                              components=_EDIT, shape=_SHAPE, **_SIZES),
        # 2511: the same blocks, timestep 0 for the condition image tokens (WanGP's config: zero_cond_t)
        "qwen_image_edit_plus2_20B": Generated("QwenImageEditPlusPipeline", needs=("image",),
                                               takes=("reference_images",), repo="Qwen/Qwen-Image-Edit-2511",
                                               components=_EDIT, shape={**_SHAPE, "zero_cond_t": True}, **_SIZES),
        LAYERED: Generated("QwenImageLayeredPipeline", needs=("image",), repo="Qwen/Qwen-Image-Layered",
                           components=_EDIT, shape={**_SHAPE, "use_additional_t_cond": True,
                                                    "use_layer3d_rope": True}, **_SIZES),
    },
    quantized_blocks=("transformer_blocks.*",), quantize_checked=True,
)
