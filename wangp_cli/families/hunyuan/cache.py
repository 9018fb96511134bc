"""HunyuanVideo's step-cache data, as WanGP ships it (``models/hyvideo/hunyuan_handler.py``,
``set_cache_parameters``): pure data, read by :mod:`wangp_cli.generate.cache`.

MagCache ratios: one per step from step 1 (no classifier-free guidance pass; WanGP prepends ``1.0`` for step 0),
49 values for 50 calibration steps, chosen by the rendered size. WanGP's HunyuanVideo TeaCache measures the
modulated input of the first double block at every step (the latents, not only the timestep), which no diffusers
hook computes: it is not offered here.
"""

from __future__ import annotations

#: MagCache ratios by WanGP's calibration (from step 1).
MAG_RATIOS = {
    "720p": [
        1.0754, 1.27807, 1.11596, 1.09504, 1.05188, 1.00844, 1.05779, 1.00657, 1.04142, 1.03101, 1.00679, 1.02556,
        1.00908, 1.06949, 1.05438, 1.02214, 1.02321, 1.03019, 1.00779, 1.03381, 1.01886, 1.01161, 1.02968, 1.00544,
        1.02822, 1.00689, 1.02119, 1.0105, 1.01044, 1.01572, 1.02972, 1.0094, 1.02368, 1.0226, 0.98965, 1.01588,
        1.02146, 1.0018, 1.01687, 0.99436, 1.00283, 1.01139, 0.97122, 0.98251, 0.94513, 0.97656, 0.90943, 0.85703,
        0.75456,
    ],
    "540p": [
        1.06971, 1.29073, 1.11245, 1.09596, 1.05233, 1.01415, 1.05672, 1.00848, 1.03632, 1.02974, 1.00984, 1.03028,
        1.00681, 1.06614, 1.05022, 1.02592, 1.01776, 1.02985, 1.00726, 1.03727, 1.01502, 1.00992, 1.03371, 0.9976,
        1.02742, 1.0093, 1.01869, 1.00815, 1.01461, 1.01152, 1.03082, 1.0061, 1.02162, 1.01999, 0.99063, 1.01186,
        1.0217, 0.99947, 1.01711, 0.9904, 1.00258, 1.00878, 0.97039, 0.97686, 0.94315, 0.97728, 0.91154, 0.86139,
        0.76592,
    ],
}

#: The 720p calibration from this many pixels on (WanGP: ``pixels >= 1280*720``).
P720_PIXELS = 1280 * 720
#: The architectures both calibrations are for (WanGP's HunyuanVideo 1.5 lists are another model's).
ARCHITECTURES = ("hunyuan", "hunyuan_i2v")
#: Why a cache type is missing where it is (shown with the other types that work).
MISSING = {"tea": "WanGP's HunyuanVideo TeaCache measures the latents at every step, which no diffusers hook does",
           "mag": "WanGP has no MagCache calibration for it"}
#: Architectures no step cache is offered for, and why (none).
REFUSED: dict[str, str] = {}


def mag_calibration(arch_id: str, width: int, height: int) -> str | None:
    """The name of the MagCache calibration WanGP uses for the architecture at this size (None: none)."""
    if arch_id not in ARCHITECTURES:
        return None
    return "720p" if width * height >= P720_PIXELS else "540p"


def mag_ratios(arch_id: str, width: int, height: int) -> list[float] | None:
    """The ratios per calibration step, step 0 first (1.0): what diffusers' ``MagCacheConfig`` takes."""
    name = mag_calibration(arch_id, width, height)
    return None if name is None else [1.0] + MAG_RATIOS[name]


def tea_calibration(arch_id: str, width: int, height: int) -> str | None:
    """None: no TeaCache for HunyuanVideo (see the module's docstring)."""
    return None


def tea_coefficients(arch_id: str, width: int, height: int) -> list[float] | None:
    return None
