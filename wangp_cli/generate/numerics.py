"""Numerics: which tensors stay in fp32, and the compute dtype a GPU gets (no torch at import).

- :func:`keeps_fp32` is diffusers' own rule for a model class's ``_keep_in_fp32_modules`` (``from_pretrained``
  with ``torch_dtype``: ``model_loading_utils.load_model_dict_into_meta``): a tensor stays fp32 when one of the
  dotted parts of its name is one of those module names (Wan: ``rope``, ``time_embedder``, ``scale_shift_table``,
  ``norm1``/``norm2``/``norm3``; HunyuanVideo: none). The loader applies it so that wangp's transformer is the one
  diffusers' documented recipe loads.
- :func:`compute_dtype` picks the dtype from the GPU's compute capability and the family (data in
  :data:`CHOICES`): no native bf16 before sm 8.0 (WanGP switches to fp16 there, ``wgp.py``), and HunyuanVideo never
  in fp16 on a GPU (NaN, a black video).
"""

from __future__ import annotations

from wangp_cli.core.errors import WangpError

#: The first compute capability with native bf16 kernels (Ampere); before it bf16 is emulated (slow).
NATIVE_BF16 = (8, 0)

#: Families whose transformer gives NaN (a black video) in fp16 on a GPU, with the evidence. diffusers' fixed recipe
#: keeps the HunyuanVideo transformer in bf16 even in an fp16 pipeline.
FP16_UNSAFE = {
    "hunyuan": "HunyuanVideo gives NaN, a black video, in fp16 (Tencent-Hunyuan/HunyuanVideo#60, "
               "huggingface/diffusers#10314)",
    "z_image": "Z-Image gives NaN, a black image, in fp16 with diffusers (Tongyi-MAI/Z-Image#14; ComfyUI and "
               "SD.Next clamp activations to run it)",
}

#: (requested, the GPU has native bf16, fp16 is safe for the family) -> (dtype when the user left --dtype out,
#: dtype when the user asked for ``requested``); None: refused. CPU runs and fp32 take the request as it is.
CHOICES = {
    ("bf16", True, True): ("bf16", "bf16"),
    ("bf16", True, False): ("bf16", "bf16"),
    ("fp16", True, True): ("fp16", "fp16"),
    ("fp16", True, False): ("bf16", "bf16"),  # bf16 is native here: no cost, and no NaN
    ("bf16", False, True): ("fp16", "bf16"),  # as WanGP; an explicit bf16 is kept (emulated)
    ("bf16", False, False): ("bf16", "bf16"),  # fp16 would be NaN: bf16 emulated
    ("fp16", False, True): ("fp16", "fp16"),
    ("fp16", False, False): ("bf16", None),  # an fp16-only file computes in bf16; an explicit fp16 is refused
}


def keeps_fp32(name: str, modules) -> bool:
    """Whether the parameter or buffer ``name`` stays fp32 under ``_keep_in_fp32_modules`` ``modules`` (None or a
    list, as the model class has it): diffusers' test, a whole dotted part equal to a module name."""
    if not modules:
        return False
    parts = name.split(".")
    return any(module in parts for module in ([modules] if isinstance(modules, str) else modules))


def capability_text(capability: tuple[int, int]) -> str:
    return f"sm {capability[0]}.{capability[1]}"


def compute_dtype(requested: str, family: str, capability: tuple[int, int] | None, *,
                  asked: bool) -> tuple[str, list[str]]:
    """(the compute dtype, warnings) for a ``requested`` dtype ("bf16", "fp16", "fp32": the chosen file's) of a
    ``family`` on a CUDA GPU of compute ``capability`` (None: the CPU, the request unchanged). ``asked``: the user
    asked for ``requested`` explicitly (``--dtype``). A WangpError where the request cannot run (fp16
    HunyuanVideo on a GPU without native bf16)."""
    if capability is None or requested not in ("bf16", "fp16"):
        return requested, []
    native = tuple(capability) >= NATIVE_BF16
    unsafe = FP16_UNSAFE.get(family)
    chosen = CHOICES[(requested, native, unsafe is None)][1 if asked else 0]
    gpu = capability_text(capability)
    if chosen is None:
        raise WangpError(f"--dtype fp16 cannot run here: {unsafe}", code="unsupported",
                         hint=f"use --dtype bf16 (emulated on this GPU, {gpu}: slow) or a GPU of sm 8.0 or newer")
    warnings = []
    if requested == "bf16" and chosen == "fp16":
        warnings.append(f"this GPU ({gpu}) has no native bf16 kernels: computing in fp16, as WanGP does "
                        "(--dtype bf16 keeps bf16, emulated and slower)")
    if requested == "fp16" and chosen == "bf16":
        warnings.append(f"{unsafe}: computing in bf16")
    if chosen == "bf16" and not native:
        why = " (fp16 is not an option: NaN)" if unsafe else ""
        warnings.append(f"bf16 is emulated on this GPU ({gpu}, native from sm 8.0): slow{why}")
    return chosen, warnings
