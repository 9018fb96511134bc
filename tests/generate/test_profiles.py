"""Memory profiles on the real module trees: text encoders split into groups, quanto weights counted at their real
size and moved by group offloading, the size plan against the real diffusers/transformers models (built on the
meta device: their true shapes, no memory), the profile and margin following the request size."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from wangp_cli.generate import engine, tiny  # noqa: E402

CPU = torch.device("cpu")


def offload_groups(module) -> set:
    """The distinct group-offloading groups diffusers attached to a module tree."""
    groups = set()
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry is not None else None
        if hook is not None:
            groups.add(id(hook.group))
    return groups


def _components(kind: str) -> dict:
    from wangp_cli.families import FAMILIES

    for family in FAMILIES.values():
        if kind in family.tiny_kinds:
            return family.tiny_components(kind)
    raise KeyError(kind)


@pytest.mark.parametrize("kind,name,path", [
    ("t2v", "text_encoder", ["encoder"]),  # UMT5: shared + encoder.block
    ("hunyuan", "text_encoder", []),  # LlamaModel: its layers are a direct child
    ("hunyuan", "text_encoder_2", ["encoder"]),  # CLIP text (transformers 5: embeddings, encoder.layers)
    ("hunyuan_i2v", "text_encoder", ["model", "language_model"]),  # Llava
])
def test_text_encoder_group_offloading_forms_one_group_per_layer(kind, name, path):
    encoder = _components(kind)[name].eval()
    reference = copy.deepcopy(encoder)
    assert engine.block_path(encoder) == path
    how = engine._group_offload(name, encoder, CPU, CPU)
    assert how == {"stream": False, "pinned": False, "block_modules": path}  # text encoders: never pinned
    groups = offload_groups(encoder)
    plain = copy.deepcopy(reference)
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(plain, onload_device=CPU, offload_device=CPU, offload_type="block_level",
                           num_blocks_per_group=1)  # the call without block_modules (before this fix)
    layers = max(len(m) for m in encoder.modules() if isinstance(m, torch.nn.ModuleList))
    assert len(groups) > layers >= 2, (len(groups), layers)
    if path:
        assert len(offload_groups(plain)) == 1  # everything in one group: the whole encoder onloaded at once
    ids = torch.tensor([[5, 6, 7, 8, 1]])
    with torch.inference_mode():
        ours = encoder(input_ids=ids).last_hidden_state if "i2v" not in kind else None
        expected = reference(input_ids=ids).last_hidden_state if "i2v" not in kind else None
    if ours is not None:
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_real_umt5_xxl_offloads_its_24_blocks():
    """The real UMT5-XXL module tree (meta device): the encoder path found, 24 block groups + the rest."""
    from accelerate import init_empty_weights
    from transformers import UMT5Config, UMT5EncoderModel

    with init_empty_weights():
        encoder = UMT5EncoderModel(UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                              num_heads=64, feed_forward_proj="gated-gelu"))
    encoder.tie_weights()  # as from_pretrained leaves it: shared and encoder.embed_tokens one Parameter
    assert engine.block_path(encoder) == ["encoder"]
    assert engine.module_bytes(encoder.to(torch.bfloat16)) == pytest.approx(11.4e9, rel=0.02)  # gpu-review D2


def test_quanto_weights_are_counted_at_their_size():
    """module_bytes of a quanto int8 transformer = the bytes of its serialised state dict (int8 data, scales and
    the float rest: quanto's own flattening), not 2 bytes a weight."""
    from optimum.quanto import freeze, qint8, quantize

    model = torch.nn.Module.to(tiny.make_transformer("t2v"), torch.bfloat16)
    sixteen = engine.module_bytes(model)
    quantize(model, weights=qint8, include=["blocks.*"])
    freeze(model)
    state = model.state_dict()
    expected = sum(t.numel() * t.element_size() for t in state.values()) + sum(  # + non-persistent buffers (rope)
        b.numel() * b.element_size() for name, b in model.named_buffers() if name not in state)
    assert engine.module_bytes(model) == expected
    naive = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers())
    assert engine.module_bytes(model) < naive and engine.module_bytes(model) < sixteen


def test_group_offloading_moves_quanto_weights_whole():
    """With the quanto-aware routing, diffusers' block-level group offloading keeps quanto weights quanto tensors
    (int8 data and scales moved together) and the forward gives the same result."""
    from optimum.quanto import QTensor, freeze, qint8, quantize

    def quantized():
        model = torch.nn.Module.to(tiny.make_transformer("t2v", seed=3), torch.bfloat16).eval()
        quantize(model, weights=qint8, include=["blocks.*"])
        freeze(model)
        return model

    model, reference = quantized(), quantized()  # the same seed: the same weights (quanto tensors cannot deepcopy)
    how = engine._group_offload("transformer", model, CPU, CPU)
    assert how["stream"] is False  # quanto: no pinned copies (pin_memory drops the subclass)
    assert len(offload_groups(model)) == len(model.blocks) + 1
    inputs = {"hidden_states": torch.randn(1, 16, 3, 8, 8, dtype=torch.bfloat16),
              "timestep": torch.tensor([500]), "encoder_hidden_states": torch.randn(1, 4, 32, dtype=torch.bfloat16)}
    with torch.inference_mode():
        ours = model(**inputs, return_dict=False)[0]
        expected = reference(**inputs, return_dict=False)[0]
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    assert isinstance(model.blocks[0].ffn.net[2].weight, QTensor)


def _meta(build):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return build()


def real_components(arch_id: str) -> dict:
    """The real diffusers/transformers module trees of an architecture's pipeline, on the meta device."""
    from diffusers import (AutoencoderKLHunyuanVideo, AutoencoderKLWan, HunyuanVideoTransformer3DModel,
                           WanTransformer3DModel)
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModel, LlamaConfig,
                              LlamaModel, UMT5Config, UMT5EncoderModel)

    if arch_id == "hunyuan":
        return {"transformer": _meta(lambda: HunyuanVideoTransformer3DModel().to(torch.bfloat16)),
                "text_encoder": _meta(lambda: LlamaModel(LlamaConfig(
                    vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8)).to(torch.bfloat16)),
                "text_encoder_2": _meta(lambda: CLIPTextModel(CLIPTextConfig(
                    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    max_position_embeddings=77)).to(torch.bfloat16)),
                "vae": _meta(lambda: AutoencoderKLHunyuanVideo().to(torch.bfloat16))}
    sizes = {"t2v_1.3B": (12, 8960, 30), "t2v": (40, 13824, 40), "i2v": (40, 13824, 40)}
    heads, ffn, layers = sizes[arch_id]
    extra = {"image_dim": 1280, "added_kv_proj_dim": heads * 128, "in_channels": 36} if arch_id == "i2v" else {}
    parts = {"transformer": _meta(lambda: WanTransformer3DModel(
                 num_attention_heads=heads, attention_head_dim=128, ffn_dim=ffn, num_layers=layers, text_dim=4096,
                 cross_attn_norm=True, qk_norm="rms_norm_across_heads", **extra).to(torch.bfloat16)),
             "text_encoder": _meta(lambda: UMT5EncoderModel(UMT5Config(
                 vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                 feed_forward_proj="gated-gelu")).to(torch.bfloat16)),  # tied below, as from_pretrained
             "vae": _meta(lambda: AutoencoderKLWan())}
    parts["text_encoder"].tie_weights()
    if arch_id == "i2v":
        parts["image_encoder"] = _meta(lambda: CLIPVisionModel(CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14,
            image_size=224)))
    return parts


@pytest.mark.parametrize("arch_id", ["t2v_1.3B", "t2v", "i2v", "hunyuan"])
def test_size_plan_matches_the_real_module_trees(arch_id):
    planned = engine.estimated_bytes(arch_id)
    real = {name: engine.module_bytes(module) for name, module in real_components(arch_id).items()}
    assert set(planned) == set(real)
    for name in real:
        assert planned[name] == pytest.approx(real[name], rel=0.06), name


def test_int8_plan_is_about_half():
    sixteen, eight = engine.estimated_bytes("t2v"), engine.estimated_bytes("t2v", quantized=True)
    assert eight["transformer"] == pytest.approx(sixteen["transformer"] / 2, rel=0.03)
    assert eight["text_encoder"] == sixteen["text_encoder"]


def test_margin_and_profile_follow_the_request_size():
    small = engine.request_margin("t2v_1.3B", 832, 480, 81)
    large = engine.request_margin("t2v_1.3B", 1280, 720, 81)
    tiled = engine.request_margin("t2v_1.3B", 1280, 720, 81, tiled=True)
    assert small < large and tiled < large
    # the untiled fp32 decode dominates at 480p (~7 GB, gpu-review D5), and grows with the pixels
    assert 6e9 < small < 10e9 and large / small == pytest.approx(2.25, rel=0.15)
    # tiled, the transformer's activations decide: 14B's exceed 1.3B's
    assert engine.request_margin("t2v", 832, 480, 81, tiled=True) > engine.request_margin(
        "t2v_1.3B", 832, 480, 81, tiled=True)
    components = engine.estimated_bytes("t2v_1.3B")
    everything, largest, gib = sum(components.values()), max(components.values()), 1024**3
    # the same card: 480p runs resident, 720p needs the decode's room (the 11.4 GB UMT5 cannot stay beside it)
    free = everything + small + gib
    assert engine.choose_profile(free, components, small) == "gpu"
    assert engine.choose_profile(free, components, large) == "group"
    assert largest + large < everything + large - gib
    assert engine.choose_profile(everything + large - gib, components, large) == "offload"
    assert engine.choose_profile(12 * 1024**3, components, small) == "group"  # UMT5 alone takes 11.4 GB
    assert engine.choose_profile(2 * 1024**3, components, small) == "lowvram"


def test_quantized_plan_changes_the_profile():
    """int8 14B on a 40 GB card: the bf16 count (the old 2-bytes-a-weight bug) said offload, the real size fits."""
    margin = engine.request_margin("t2v", 832, 480, 81)
    free = 40 * 1024**3
    assert engine.choose_profile(free, engine.estimated_bytes("t2v"), margin) != "gpu"
    assert engine.choose_profile(free, engine.estimated_bytes("t2v", quantized=True), margin) == "gpu"


def test_profile_ladder():
    assert [engine.lower_profile(p) for p in ("gpu", "offload", "group", "lowvram", "offload+tiling", "cpu")] == \
        ["offload", "group", "lowvram", None, None, None]


def test_run_records_each_step_and_the_transformer_calls(tmp_path):
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.generate.request import build_request
    from wangp_cli.generate.runner import Generator

    home = tiny.make_home(tmp_path / "home", "t2v")
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"frames": 5, "steps": 3, "seed": 1},
                            preference=home.preference, profile="cpu", pipeline_kwargs=home.pipeline_kwargs)
    result = Generator(catalog).render(request).result
    assert len(result.step_seconds) == 3 and all(s > 0 for s in result.step_seconds)
    assert sum(result.step_seconds) == pytest.approx(result.timings["denoise"], rel=1e-6)
    assert result.transformer_calls == 3 * 2  # classifier-free guidance: cond and uncond each step
    assert result.peak_memory["ram_bytes"] > 0
