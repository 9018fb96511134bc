"""Wan's step-cache data, as WanGP ships it (``models/wan/wan_handler.py``, ``set_cache_parameters``), and which
architecture takes which: pure data, read by :mod:`wangp_cli.generate.cache`.

MagCache ratios are the calibrated magnitude ratios of the transformer's residual between consecutive steps, cond
and uncond interleaved, from step 1 (WanGP prepends ``[1.0, 1.0]`` for step 0): 98 values for 50 calibration
steps, 78 for 40. TeaCache coefficients are the polynomial (highest power first, ``numpy.poly1d``) that turns the
relative change of the time embedding between two steps into an estimate of the output's change.
"""

from __future__ import annotations

#: MagCache ratios by WanGP's calibration (cond/uncond interleaved, from step 1).
MAG_RATIOS = {
    "t2v_1.3B": [
        1.0124, 1.02213, 1.00166, 1.0041, 0.99791, 1.00061, 0.99682, 0.99762, 0.99634, 0.99685, 0.99567, 0.99586,
        0.99416, 0.99422, 0.99578, 0.99575, 0.9957, 0.99563, 0.99511, 0.99506, 0.99535, 0.99531, 0.99552, 0.99549,
        0.99541, 0.99539, 0.9954, 0.99536, 0.99489, 0.99485, 0.99518, 0.99514, 0.99484, 0.99478, 0.99481, 0.99479,
        0.99415, 0.99413, 0.99419, 0.99416, 0.99396, 0.99393, 0.99388, 0.99386, 0.99349, 0.99349, 0.99309, 0.99304,
        0.9927, 0.9927, 0.99228, 0.99226, 0.99171, 0.9917, 0.99137, 0.99135, 0.99068, 0.99063, 0.99005, 0.99003,
        0.98944, 0.98942, 0.98849, 0.98849, 0.98758, 0.98757, 0.98644, 0.98643, 0.98504, 0.98503, 0.9836, 0.98359,
        0.98202, 0.98201, 0.97977, 0.97978, 0.97717, 0.97718, 0.9741, 0.97411, 0.97003, 0.97002, 0.96538, 0.96541,
        0.9593, 0.95933, 0.95086, 0.95089, 0.94013, 0.94019, 0.92402, 0.92414, 0.90241, 0.9026, 0.86821, 0.86868,
        0.81838, 0.81939,
    ],
    "t2v_14B": [
        1.02504, 1.03017, 1.00025, 1.00251, 0.9985, 0.99962, 0.99779, 0.99771, 0.9966, 0.99658, 0.99482, 0.99476,
        0.99467, 0.99451, 0.99664, 0.99656, 0.99434, 0.99431, 0.99533, 0.99545, 0.99468, 0.99465, 0.99438, 0.99434,
        0.99516, 0.99517, 0.99384, 0.9938, 0.99404, 0.99401, 0.99517, 0.99516, 0.99409, 0.99408, 0.99428, 0.99426,
        0.99347, 0.99343, 0.99418, 0.99416, 0.99271, 0.99269, 0.99313, 0.99311, 0.99215, 0.99215, 0.99218, 0.99215,
        0.99216, 0.99217, 0.99163, 0.99161, 0.99138, 0.99135, 0.98982, 0.9898, 0.98996, 0.98995, 0.9887, 0.98866,
        0.98772, 0.9877, 0.98767, 0.98765, 0.98573, 0.9857, 0.98501, 0.98498, 0.9838, 0.98376, 0.98177, 0.98173,
        0.98037, 0.98035, 0.97678, 0.97677, 0.97546, 0.97543, 0.97184, 0.97183, 0.96711, 0.96708, 0.96349, 0.96345,
        0.95629, 0.95625, 0.94926, 0.94929, 0.93964, 0.93961, 0.92511, 0.92504, 0.90693, 0.90678, 0.8796, 0.87945,
        0.86111, 0.86189,
    ],
    "i2v_480p": [
        0.98783, 0.98993, 0.97559, 0.97593, 0.98311, 0.98319, 0.98202, 0.98225, 0.9888, 0.98878, 0.98762, 0.98759,
        0.98957, 0.98971, 0.99052, 0.99043, 0.99383, 0.99384, 0.98857, 0.9886, 0.99065, 0.99068, 0.98845, 0.98847,
        0.99057, 0.99057, 0.98957, 0.98961, 0.98601, 0.9861, 0.98823, 0.98823, 0.98756, 0.98759, 0.98808, 0.98814,
        0.98721, 0.98724, 0.98571, 0.98572, 0.98543, 0.98544, 0.98157, 0.98165, 0.98411, 0.98413, 0.97952, 0.97953,
        0.98149, 0.9815, 0.9774, 0.97742, 0.97825, 0.97826, 0.97355, 0.97361, 0.97085, 0.97087, 0.97056, 0.97055,
        0.96588, 0.96587, 0.96113, 0.96124, 0.9567, 0.95681, 0.94961, 0.94969, 0.93973, 0.93988, 0.93217, 0.93224,
        0.91878, 0.91896, 0.90955, 0.90954, 0.92617, 0.92616,
    ],
    "i2v_720p": [
        0.99428, 0.99498, 0.98588, 0.98621, 0.98273, 0.98281, 0.99018, 0.99023, 0.98911, 0.98917, 0.98646, 0.98652,
        0.99454, 0.99456, 0.9891, 0.98909, 0.99124, 0.99127, 0.99102, 0.99103, 0.99215, 0.99212, 0.99515, 0.99515,
        0.99576, 0.99572, 0.99068, 0.99072, 0.99097, 0.99097, 0.99166, 0.99169, 0.99041, 0.99042, 0.99201, 0.99198,
        0.99101, 0.99101, 0.98599, 0.98603, 0.98845, 0.98844, 0.98848, 0.98851, 0.98862, 0.98857, 0.98718, 0.98719,
        0.98497, 0.98497, 0.98264, 0.98263, 0.98389, 0.98393, 0.97938, 0.9794, 0.97535, 0.97536, 0.97498, 0.97499,
        0.973, 0.97301, 0.96827, 0.96828, 0.96261, 0.96263, 0.95335, 0.9534, 0.94649, 0.94655, 0.93397, 0.93414,
        0.91636, 0.9165, 0.89088, 0.89109, 0.8679, 0.86768,
    ],
    "i2v_2_2": [
        0.99191, 0.99144, 0.99356, 0.99337, 0.99326, 0.99285, 0.99251, 0.99264, 0.99393, 0.99366, 0.9943, 0.9943,
        0.99276, 0.99288, 0.99389, 0.99393, 0.99274, 0.99289, 0.99316, 0.9931, 0.99379, 0.99377, 0.99268, 0.99271,
        0.99222, 0.99227, 0.99175, 0.9916, 0.91076, 0.91046, 0.98931, 0.98933, 0.99087, 0.99088, 0.98852, 0.98855,
        0.98895, 0.98896, 0.98806, 0.98808, 0.9871, 0.98711, 0.98613, 0.98618, 0.98434, 0.98435, 0.983, 0.98307,
        0.98185, 0.98187, 0.98131, 0.98131, 0.9783, 0.97835, 0.97619, 0.9762, 0.97264, 0.9727, 0.97088, 0.97098,
        0.96568, 0.9658, 0.96045, 0.96055, 0.95322, 0.95335, 0.94579, 0.94594, 0.93297, 0.93311, 0.91699, 0.9172,
        0.89174, 0.89202, 0.8541, 0.85446, 0.79823, 0.79902,
    ],
    "ti2v_2_2": [
        0.99512, 0.99559, 0.99559, 0.99561, 0.99595, 0.99577, 0.99512, 0.99512, 0.99546, 0.99534, 0.99543, 0.99531,
        0.99496, 0.99491, 0.99504, 0.99499, 0.99444, 0.99449, 0.99481, 0.99481, 0.99435, 0.99435, 0.9943, 0.99431,
        0.99411, 0.99406, 0.99373, 0.99376, 0.99413, 0.99405, 0.99363, 0.99359, 0.99335, 0.99331, 0.99244, 0.99243,
        0.99229, 0.99229, 0.99239, 0.99236, 0.99163, 0.9916, 0.99149, 0.99151, 0.99191, 0.99192, 0.9898, 0.98981,
        0.9899, 0.98987, 0.98849, 0.98849, 0.98846, 0.98846, 0.98861, 0.98861, 0.9874, 0.98738, 0.98588, 0.98589,
        0.98539, 0.98534, 0.98444, 0.98439, 0.9831, 0.98309, 0.98119, 0.98118, 0.98001, 0.98, 0.97862, 0.97859,
        0.97555, 0.97558, 0.97392, 0.97388, 0.97152, 0.97145, 0.96871, 0.9687, 0.96435, 0.96434, 0.96129, 0.96127,
        0.95639, 0.95638, 0.95176, 0.95175, 0.94446, 0.94452, 0.93972, 0.93974, 0.93575, 0.9359, 0.93537, 0.93552,
        0.96655, 0.96616,
    ],
}

#: TeaCache rescale polynomials by WanGP's calibration.
TEA_COEFFICIENTS = {
    "t2v_1.3B": [2396.76752, -1311.10545, 201.331979, -8.29855975, 0.137887774],
    "t2v_14B": [-5784.54975374, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404],
    "i2v_480p": [-302.33167, 223.948934, -52.546397, 5.8734844, -0.201973289],
    "i2v_720p": [-114.36346466, 65.26524496, -18.82220707, 4.91518089, -0.23412683],
}

#: The calibrations for 720p and above (WanGP: ``pixels >= 1280*720``) for the image-to-video models.
I2V_720P_PIXELS = 1280 * 720
#: Wan 2.1 image-to-video architectures: MagCache and TeaCache data chosen by the rendered size, as WanGP does.
_I2V = ("i2v", "i2v_720p", "flf2v_720p")
#: Architecture -> the MagCache calibration WanGP uses (the i2v ones by size). WanGP's t2v list for definitions
#: with URLs2 on a "t2v" base and its TI2V list for a start image plus a source video are not reachable here.
_MAG = {"t2v_1.3B": "t2v_1.3B", "t2v": "t2v_14B", "t2v_2_2": "t2v_14B", "i2v_2_2": "i2v_2_2",
        "ti2v_2_2": "ti2v_2_2"}
#: Architecture -> the TeaCache calibration; WanGP has none for Wan 2.2 (two transformers, TI2V 5B).
_TEA = {"t2v_1.3B": "t2v_1.3B", "t2v": "t2v_14B"}
#: Why a cache type is missing where it is (shown with the other types that work).
MISSING = {"tea": "WanGP calibrated TeaCache for Wan 2.1 only", "mag": "WanGP has no MagCache calibration for it"}
#: Architectures no step cache is offered for, and why.
REFUSED = {arch_id: ("diffusers' cache hooks skip only the main blocks, and the VACE hints added between them would "
                     "be added twice on a skipped step") for arch_id in ("vace_14B", "vace_1.3B", "vace_14B_2_2")}


def _by_size(arch_id: str, table: dict, width: int, height: int) -> str | None:
    if arch_id in _I2V:
        return "i2v_720p" if width * height >= I2V_720P_PIXELS else "i2v_480p"
    return table.get(arch_id)


def mag_calibration(arch_id: str, width: int, height: int) -> str | None:
    """The name of the MagCache calibration WanGP uses for the architecture at this size (None: none)."""
    return None if arch_id in REFUSED else _by_size(arch_id, _MAG, width, height)


def mag_ratios(arch_id: str, width: int, height: int) -> list[float] | None:
    """The cond ratios per calibration step, step 0 first (1.0): what diffusers' ``MagCacheConfig`` takes."""
    name = mag_calibration(arch_id, width, height)
    return None if name is None else [1.0] + MAG_RATIOS[name][0::2]


def tea_calibration(arch_id: str, width: int, height: int) -> str | None:
    """The name of the TeaCache polynomial WanGP uses (None: WanGP offers no TeaCache there)."""
    return None if arch_id in REFUSED else _by_size(arch_id, _TEA, width, height)


def tea_coefficients(arch_id: str, width: int, height: int) -> list[float] | None:
    name = tea_calibration(arch_id, width, height)
    return None if name is None else TEA_COEFFICIENTS[name]
