"""The Wan variants with a diffusers pipeline: SkyReels-V2 Diffusion Forcing (``sky_df_1.3B`` / ``sky_df_14B``),
Fun InP (``fun_inp`` / ``fun_inp_1.3B``), Lucy Edit (``lucy_edit``) and ChronoEdit (``chrono_edit``).

Tiny random models written in WanGP's layout (16-bit and quanto int8) run through wangp and are compared with the
plain diffusers pipeline built by hand from the same weights (the docs' recipe: ``from_pretrained`` with the
transformer, the VAE and CLIP in fp32, optimum-quanto for int8); the conversion is checked from WanGP's own key
names (a table written from ``models/wan/modules/model.py``, not diffusers' layout renamed backwards).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402

from wangp_cli.cli import app  # noqa: E402
from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.core.registry import get_architecture  # noqa: E402
from wangp_cli.families import family  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.video import probe_video  # noqa: E402
from wangp_cli.generate.weights import load_transformer  # noqa: E402

WAN = family("wan")
KINDS = ("sky_df", "fun_inp", "lucy_edit", "chrono_edit")
#: Explicit sampler settings (the reference uses the same numbers, not wangp's defaults); 32x32 keeps the file
#: within its CPU budget (SkyReels-V2 DF makes at least 17 frames).
SIZE = 32
SETTINGS = {"flow_shift": 3.0, "guidance_scale": 5.0, "negative_prompt": "blurry", "resolution": f"{SIZE}x{SIZE}"}
FPS = {"sky_df_1.3B": 16, "fun_inp": 16, "lucy_edit": 24}
runner = CliRunner()
#: ChronoEdit's pipeline takes the same parts as Fun InP's (UMT5, CLIP, Wan 2.1 VAE): one folder for both
SAME_COMPONENTS = {"chrono_edit": "fun_inp"}


def _registry_has_skyreels_marker() -> bool:
    return (get_architecture("sky_df_1.3B", "v12").transformer or {}).get("transformer_class") is not None


needs_skyreels_marker = pytest.mark.skipif(
    not _registry_has_skyreels_marker(),
    reason="the registry's July sky_df rows need transformer_class SkyReelsV2Transformer3DModel (core/registry.py)")


def _marks(kind):
    return [needs_skyreels_marker] if kind == "sky_df" else []


# -- fixtures ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def components(tmp_path_factory):
    built = {}

    def get(kind):
        kind = SAME_COMPONENTS.get(kind, kind)
        if kind not in built:
            built[kind] = tiny.make_components(kind, tmp_path_factory.mktemp(f"components-{kind}"))
        return built[kind]

    return get


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A start image, an end image and a 9-frame control video (mp4), SIZE x SIZE."""
    import imageio_ffmpeg

    folder = tmp_path_factory.mktemp("media")
    tiny.make_image(SIZE, seed=3).save(folder / "start.png")
    tiny.make_image(SIZE, seed=4).save(folder / "end.png")
    frames = [np.asarray(tiny.make_image(SIZE, seed=10 + i)) for i in range(9)]
    writer = imageio_ffmpeg.write_frames(str(folder / "control.mp4"), (SIZE, SIZE), fps=16, quality=8,
                                         macro_block_size=1)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return folder


def inputs(kind, media) -> dict:
    """The media inputs a kind needs, as build_request keywords."""
    return {"sky_df": {}, "fun_inp": {"image": media / "start.png"}, "lucy_edit": {"control_video": media /
            "control.mp4"}, "chrono_edit": {"image": media / "start.png"}}[kind]


def make_home(tmp_path, kind, components, quantized=False, settings=None):
    frames = {} if kind in ("sky_df", "chrono_edit") else {"video_length": 5}
    return tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components(kind),
                          settings={**SETTINGS, **frames, **(settings or {})})


def request_for(home, media, flags=None, **extra):
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 11, "prompt": "a red fox in the forest", **(flags or {})},
                            preference=home.preference, pipeline_kwargs=home.pipeline_kwargs,
                            **inputs(home.kind, media), **extra)
    return catalog, request


# -- the plain diffusers pipeline, by hand -------------------------------------------------------------------------

def _control_frames(path: Path, count: int):
    """The control video's first ``count`` frames as PIL images (read with imageio-ffmpeg, as any user would)."""
    import imageio_ffmpeg
    from PIL import Image

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    frames = [Image.frombytes("RGB", (width, height), raw) for raw, _ in zip(reader, range(count))]
    reader.close()
    return frames


def reference_frames(home, request, quantized: bool, **call):
    """The diffusers docs' recipe on the weights the files were written from."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize
    from PIL import Image
    from transformers import CLIPVisionModel

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["blocks.*"])
        freeze(model)
    pipelines = {"sky_df": diffusers.SkyReelsV2DiffusionForcingPipeline, "fun_inp": diffusers.WanImageToVideoPipeline,
                 "lucy_edit": diffusers.LucyEditPipeline, "chrono_edit": diffusers.ChronoEditPipeline}
    extra = {"vae": diffusers.AutoencoderKLWan.from_pretrained(home.components, subfolder="vae",
                                                               torch_dtype=torch.float32)}
    if home.kind in ("fun_inp", "chrono_edit"):
        extra["image_encoder"] = CLIPVisionModel.from_pretrained(home.components, subfolder="image_encoder",
                                                                 torch_dtype=torch.float32)
    with tiny.offline():
        pipe = pipelines[home.kind].from_pretrained(home.components, transformer=model, torch_dtype=torch.bfloat16,
                                                    **extra)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config,
                                                                  flow_shift=SETTINGS["flow_shift"])
    call = {"guidance_scale": SETTINGS["guidance_scale"], "negative_prompt": SETTINGS["negative_prompt"],
            "num_frames": request.frames, **call}
    if request.image is not None:
        call["image"] = Image.open(request.image).convert("RGB")
    if request.last_image is not None:  # Fun InP: WanGP's CLIP features are the start image's alone (diffusers
        # refuses image_embeds beside image, and encodes [image, last_image] otherwise)
        call["last_image"] = Image.open(request.last_image).convert("RGB")
        encode = pipe.encode_image
        pipe.encode_image = lambda images, device=None: encode(images[0], device)
    if request.control_video is not None:
        call["video"] = _control_frames(request.control_video, request.frames)
    with torch.inference_mode():
        output = pipe(prompt="a red fox in the forest", height=SIZE, width=SIZE, num_inference_steps=request.steps,
                      generator=torch.Generator("cpu").manual_seed(11), output_type="np", **call,
                      **home.pipeline_kwargs)
    return output.frames[0], model


def _qlinear(model) -> set:
    return {n for n, m in model.named_modules() if type(m).__name__ == "QLinear"}


# -- conversion from WanGP's own key names -------------------------------------------------------------------------

def wangp_layout(config: dict, image: bool, seed: int = 0) -> dict:
    """Tensors named as WanGP's ``WanModel`` names them (``models/wan/modules/model.py``: ``WanAttentionBlock``
    with ``self_attn`` / ``cross_attn`` (``k_img``, ``v_img``, ``norm_k_img`` for i2v), ``norm3`` the affine
    cross-attention norm, ``ffn.0`` / ``ffn.2``, ``modulation``; ``Head``; ``MLPProj`` ``img_emb.proj.0/1/3/4``),
    shapes from the tiny config."""
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    ffn, text, freq = config["ffn_dim"], config["text_dim"], config["freq_dim"]
    in_ch, out_ch = config["in_channels"], config["out_channels"]
    shapes = {"patch_embedding.weight": (dim, in_ch, 1, 2, 2), "patch_embedding.bias": (dim,),
              "text_embedding.0.weight": (dim, text), "text_embedding.0.bias": (dim,),
              "text_embedding.2.weight": (dim, dim), "text_embedding.2.bias": (dim,),
              "time_embedding.0.weight": (dim, freq), "time_embedding.0.bias": (dim,),
              "time_embedding.2.weight": (dim, dim), "time_embedding.2.bias": (dim,),
              "time_projection.1.weight": (6 * dim, dim), "time_projection.1.bias": (6 * dim,),
              "head.head.weight": (out_ch * 4, dim), "head.head.bias": (out_ch * 4,), "head.modulation": (1, 2, dim)}
    if image:
        image_dim = config["image_dim"]
        shapes.update({"img_emb.proj.0.weight": (image_dim,), "img_emb.proj.0.bias": (image_dim,),
                       "img_emb.proj.1.weight": (image_dim, image_dim), "img_emb.proj.1.bias": (image_dim,),
                       "img_emb.proj.3.weight": (dim, image_dim), "img_emb.proj.3.bias": (dim,),
                       "img_emb.proj.4.weight": (dim,), "img_emb.proj.4.bias": (dim,)})
    for n in range(config["num_layers"]):
        block = f"blocks.{n}."
        for attention in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                shapes[f"{block}{attention}.{proj}.weight"] = (dim, dim)
                shapes[f"{block}{attention}.{proj}.bias"] = (dim,)
            shapes[f"{block}{attention}.norm_q.weight"] = (dim,)
            shapes[f"{block}{attention}.norm_k.weight"] = (dim,)
        if image:
            for proj in ("k_img", "v_img"):
                shapes[f"{block}cross_attn.{proj}.weight"] = (dim, image_dim)
                shapes[f"{block}cross_attn.{proj}.bias"] = (dim,)
            shapes[f"{block}cross_attn.norm_k_img.weight"] = (dim,)
        shapes.update({f"{block}norm3.weight": (dim,), f"{block}norm3.bias": (dim,),
                       f"{block}ffn.0.weight": (ffn, dim), f"{block}ffn.0.bias": (ffn,),
                       f"{block}ffn.2.weight": (dim, ffn), f"{block}ffn.2.bias": (dim,),
                       f"{block}modulation": (1, 6, dim)})
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator).to(torch.bfloat16) for name, shape in shapes.items()}


#: (architecture, tiny kind, image conditioning, the diffusers class it must load as)
CONVERSIONS = [("sky_df_1.3B", "sky_df", False, "SkyReelsV2Transformer3DModel"),
               ("fun_inp", "fun_inp", True, "WanTransformer3DModel"),
               ("fun_inp_1.3B", "fun_inp", True, "WanTransformer3DModel"),
               ("lucy_edit", "lucy_edit", False, "WanTransformer3DModel"),
               ("chrono_edit", "chrono_edit", True, "ChronoEditTransformer3DModel")]


@pytest.mark.parametrize("arch_id,kind,image,class_name", CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_wangp_layout_converts_to_the_variant_class(arch_id, kind, image, class_name, tmp_path):
    from safetensors.torch import save_file

    config = tiny.TRANSFORMER_CONFIGS[kind]
    original = wangp_layout(config, image)
    path = tmp_path / "wangp.safetensors"
    save_file(original, str(path))
    shape = dict(get_architecture(arch_id, "v12").transformer)
    if kind == "sky_df":  # the marker the registry's July rows carry (see needs_skyreels_marker)
        shape["transformer_class"] = "SkyReelsV2Transformer3DModel"
    shape = {**shape, "dim": None}  # the tiny sizes are not the real model's; only the structure is compared
    loaded = load_transformer([path], torch.bfloat16, arch_shape=shape, family="wan")
    assert type(loaded.model).__name__ == class_name
    state = loaded.model.state_dict()
    # renamed blocks: WanGP's norm3 is diffusers' norm2 (the affine one), q/k/v/o -> to_q/.../to_out.0
    pairs = {"blocks.1.norm3.weight": "blocks.1.norm2.weight",
             "blocks.0.self_attn.q.weight": "blocks.0.attn1.to_q.weight",
             "blocks.4.cross_attn.o.bias": "blocks.4.attn2.to_out.0.bias",
             "blocks.2.ffn.2.weight": "blocks.2.ffn.net.2.weight",
             "blocks.3.modulation": "blocks.3.scale_shift_table", "head.modulation": "scale_shift_table",
             "time_projection.1.weight": "condition_embedder.time_proj.weight", "head.head.weight": "proj_out.weight"}
    if image:
        pairs.update({"blocks.0.cross_attn.k_img.weight": "blocks.0.attn2.add_k_proj.weight",
                      "blocks.0.cross_attn.norm_k_img.weight": "blocks.0.attn2.norm_added_k.weight",
                      "img_emb.proj.1.weight": "condition_embedder.image_embedder.ff.net.0.proj.weight"})
    for wangp_name, diffusers_name in pairs.items():
        assert torch.equal(state[diffusers_name].float(), original[wangp_name].float()), wangp_name
    assert len(state) == len(original)
    assert loaded.config["in_channels"] == config["in_channels"] and loaded.config["out_channels"] == config[
        "out_channels"]


def test_a_plain_t2v_file_is_refused_for_lucy_edit(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "t2v.safetensors"
    save_file(wangp_layout(tiny.TRANSFORMER_CONFIGS["t2v"], False), str(path))
    shape = get_architecture("lucy_edit", "v12").transformer
    with pytest.raises(WangpError, match="16 input channels, the architecture's transformer takes 96"):
        load_transformer([path], torch.bfloat16, arch_shape=shape, family="wan")


def test_variants_have_wans_keys_so_wans_quantize_rule_holds():
    """No variant adds a module to Wan's layout (SkyReels-V2 DF ships without ``fps_embedding``; Lucy Edit only
    widens ``patch_embedding``), so the quantizer's Wan rule (blocks.* Linear, checked against mmgp) is theirs."""
    base = {"sky_df": "t2v", "fun_inp": "i2v", "lucy_edit": "ti2v_2_2", "chrono_edit": "i2v"}
    for kind, plain in base.items():
        ours = set(tiny.to_original_layout(kind, tiny.make_transformer(kind)))
        assert ours == set(tiny.to_original_layout(plain, tiny.make_transformer(plain))), kind


# -- outputs equal the plain diffusers pipeline --------------------------------------------------------------------

#: (kind, quantized, settings, call arguments of the reference beyond the common ones): each kind 16-bit with
#: WanGP's defaults and int8 with its other mode (SkyReels-V2 DF asynchronous: ``ar_step`` 5 with causal blocks
#: of 5; ChronoEdit long: 29 frames of temporal reasoning; Fun InP with an end image).
EQUALITY = [
    ("sky_df", False, {}, {}),
    ("sky_df", True, {"model_mode": 5}, {"ar_step": 5, "causal_block_size": 5}),
    ("fun_inp", False, {}, {}),
    ("fun_inp", True, {}, {"end": True}),
    ("lucy_edit", False, {}, {}),
    ("lucy_edit", True, {}, {}),
    ("chrono_edit", False, {}, {"num_frames": 5}),
    ("chrono_edit", True, {"model_mode": 1}, {"num_frames": 29, "enable_temporal_reasoning": True,
                                              "num_temporal_reasoning_steps": 2}),
]


def _end_image_taken(media) -> bool:
    from wangp_cli.generate.request import _image_problems

    return not _image_problems("x", "fun_inp", media / "start.png", media / "end.png")


@pytest.mark.parametrize("kind,quantized,settings,call", [
    pytest.param(*case, marks=_marks(case[0]), id=f"{case[0]}-{'int8' if case[1] else '16bit'}") for case in EQUALITY])
def test_frames_equal_the_plain_diffusers_pipeline(kind, quantized, settings, call, components, media, tmp_path):
    home = make_home(tmp_path, kind, components, quantized, settings)
    call = dict(call)
    end = {"last_image": media / "end.png"} if call.pop("end", False) and _end_image_taken(media) else {}
    catalog, request = request_for(home, media, **end)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected, reference_model = reference_frames(home, request, quantized, **call)
    assert frames.shape == expected.shape
    assert frames.shape[0] == call.get("num_frames", request.frames)
    assert np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames, expected)
    assert _qlinear(generator._pipe.transformer) == _qlinear(reference_model)
    assert bool(_qlinear(reference_model)) is quantized


# -- the CLI end to end --------------------------------------------------------------------------------------------

def wangp(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def pipeline_args(home) -> list[str]:
    return [arg for key, value in home.pipeline_kwargs.items() for arg in ("--pipeline-arg",
                                                                          f"{key}={json.dumps(value)}")]


def media_args(kind, media) -> list[str]:
    options = {"image": "--image", "control_video": "--control-video"}
    return [arg for key, path in inputs(kind, media).items() for arg in (options[key], path)]


@pytest.mark.parametrize("kind", [pytest.param(k, marks=_marks(k)) for k in ("sky_df", "fun_inp", "lucy_edit")])
def test_cli_writes_the_mp4(kind, components, media, tmp_path):
    home = make_home(tmp_path, kind, components, quantized=True)
    frames = 17 if kind == "sky_df" else 5
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", "a dog", "--seed", 7,
                   "--frames", frames, "--format", "json", *media_args(kind, media), *pipeline_args(home))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    probe = probe_video(Path(record["path"]))
    assert (probe["frames"], probe["width"], probe["height"]) == (frames, SIZE, SIZE)
    assert probe["fps"] == pytest.approx(FPS[home.architecture])
    assert record["quantized"] is True


@pytest.mark.skipif(importlib.util.find_spec("wangp_cli.generate.image") is None,
                    reason="image outputs are written by generate/image.py (the media work)")
def test_cli_writes_chrono_edits_image(components, media, tmp_path):
    from PIL import Image

    home = make_home(tmp_path, "chrono_edit", components)
    out = tmp_path / "edit.png"
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", "make it red", "--seed", 7,
                   "--image", media / "start.png", "-o", out, *pipeline_args(home))
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (SIZE, SIZE)


# -- refusals ------------------------------------------------------------------------------------------------------

REFUSALS = [("sky_df", {"video_length": 21}, "SkyReels-V2 DF makes 17 + 20k frames"),
            ("sky_df", {"model_mode": 3}, "model_mode 3: SkyReels-V2 DF takes 0 (synchronous) or 5"),
            ("sky_df", {"video_length": 37, "sliding_window_size": 17}, "WanGP's sliding windows"),
            ("chrono_edit", {"model_mode": 2}, "ChronoEdit's temporal reasoning video (2) is a video output")]


@pytest.mark.parametrize("kind,settings,message", REFUSALS, ids=[f"{k}-{next(iter(s))}" for k, s, _ in REFUSALS])
def test_settings_diffusers_cannot_follow_are_refused(kind, settings, message, components, media, tmp_path):
    home = make_home(tmp_path, kind, components, settings=settings)
    with pytest.raises(WangpError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        request_for(home, media)


def test_lucy_edit_without_a_control_video_is_refused(components, media, tmp_path):
    home = make_home(tmp_path, "lucy_edit", components)
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", "a dog", *pipeline_args(home))
    assert result.exit_code != 0 and "control" in result.output.lower()


def test_fun_inp_components_without_clip_are_a_clear_error(components, media, tmp_path):
    import shutil

    home = make_home(tmp_path, "fun_inp", components)
    folder = shutil.copytree(home.components, tmp_path / "no-clip")
    shutil.rmtree(folder / "image_encoder")
    catalog, request = request_for(home, media, components=folder)
    with pytest.raises(WangpError, match="not a complete diffusers folder for fun_inp"):
        Generator(catalog).render(request)


def test_animate_is_refused_clearly(tmp_path):
    """Wan-Animate needs pose and face videos prepared by WanGP's preprocessing: not generated (yet)."""
    assert "animate" not in WAN.architectures
    from wangp_cli.generate.request import SUPPORTED

    assert "animate" not in SUPPORTED
