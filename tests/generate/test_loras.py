"""LoRAs on tiny Wan transformers: every format gives the hand-merged weights W + m·(alpha/rank)·up·down, full
deltas add m·diff, weights change between steps, int8 (quanto) takes the same adapters, misfits are refused."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import save_file

from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.families.wan import lora as W
from wangp_cli.generate import loras as L
from wangp_cli.generate import tiny

RANK, ALPHA = 4, 2.0
#: original-layout module -> diffusers module (the LoRA targets of these tests)
TARGETS = {"blocks.0.self_attn.q": "blocks.0.attn1.to_q", "blocks.1.cross_attn.k": "blocks.1.attn2.to_k",
           "blocks.2.ffn.0": "blocks.2.ffn.net.0.proj", "blocks.4.self_attn.o": "blocks.4.attn1.to_out.0"}


def _model(seed: int = 0, dtype=torch.float32):
    model = tiny.make_transformer("t2v", seed).to(dtype)
    return model.eval()


def _pairs(model, seed: int = 1) -> dict:
    """original module -> (down, up), random, sized for ``model``."""
    generator = torch.Generator().manual_seed(seed)
    pairs = {}
    for original, module in TARGETS.items():
        linear = model.get_submodule(module)
        pairs[original] = (torch.randn(RANK, linear.in_features, generator=generator) * 0.5,
                           torch.randn(linear.out_features, RANK, generator=generator) * 0.5)
    return pairs


def _merged(model, pairs: dict, m: float, scale: float = ALPHA / RANK):
    """W + m·scale·up·down, by hand."""
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for original, (down, up) in pairs.items():
            weight = merged.get_submodule(TARGETS[original]).weight
            weight += (m * scale * (up @ down)).to(weight.dtype)
    return merged


def _inputs(seed: int = 3):
    generator = torch.Generator().manual_seed(seed)
    return {"hidden_states": torch.randn(1, 16, 2, 8, 8, generator=generator),
            "timestep": torch.tensor([500.0]),
            "encoder_hidden_states": torch.randn(1, 8, tiny.TRANSFORMER_CONFIGS["t2v"]["text_dim"],
                                                 generator=generator)}


def _run(model):
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        inputs = {k: v.to(dtype) if v.is_floating_point() and k != "timestep" else v for k, v in _inputs().items()}
        return model(**inputs, return_dict=False)[0].float()


def _write(path, tensors: dict):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def _wan_file(path, pairs, *, prefix="diffusion_model.", names=("lora_down", "lora_up"), alpha=True):
    tensors = {}
    for original, (down, up) in pairs.items():
        tensors[f"{prefix}{original}.{names[0]}.weight"] = down
        tensors[f"{prefix}{original}.{names[1]}.weight"] = up
        if alpha:
            tensors[f"{prefix}{original}.alpha"] = torch.tensor(ALPHA)
    return _write(path, tensors)


def _kohya_file(path, pairs):
    tensors = {}
    for original, (down, up) in pairs.items():
        name = "lora_unet_" + original.replace(".", "_")
        tensors[f"{name}.lora_down.weight"] = down
        tensors[f"{name}.lora_up.weight"] = up
        tensors[f"{name}.alpha"] = torch.tensor(ALPHA)
    return _write(path, tensors)


def _diffusers_file(path, pairs):
    """diffusers/PEFT names, the alpha/rank scale folded into B (diffusers files carry no alpha)."""
    tensors = {}
    for original, (down, up) in pairs.items():
        tensors[f"transformer.{TARGETS[original]}.lora_A.weight"] = down
        tensors[f"transformer.{TARGETS[original]}.lora_B.weight"] = up * (ALPHA / RANK)
    return _write(path, tensors)


WRITERS = {
    "wan": _wan_file,
    "wan_lora_AB_no_prefix": lambda path, pairs: _wan_file(path, pairs, prefix="", names=("lora_A", "lora_B")),
    "kohya": _kohya_file,
    "diffusers": _diffusers_file,
}


def _attached(model, path, weight: float):
    attached = L.attach([model], [W.to_diffusers(L.read_lora(path), name=path.name)])
    attached.set_weights([weight])
    return attached


def _close(a, b, tolerance: float = 1e-4) -> bool:
    return float((a - b).abs().max()) <= tolerance * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("fmt", WRITERS)
def test_every_format_equals_the_hand_merged_weights(tmp_path, fmt):
    model = _model()
    pairs = _pairs(model)
    path = WRITERS[fmt](tmp_path / f"{fmt}.safetensors", pairs)
    expected = _run(_merged(model, pairs, 0.7))
    base = _run(model)
    lora_model = copy.deepcopy(model)
    _attached(lora_model, path, 0.7)
    got = _run(lora_model)
    assert not _close(base, expected, 1e-3)  # the LoRA changes the output
    assert _close(got, expected), float((got - expected).abs().max())


def test_formats_written_from_the_same_tensors_agree(tmp_path):
    model = _model()
    pairs = _pairs(model)
    outputs = []
    for fmt, writer in WRITERS.items():
        lora_model = copy.deepcopy(model)
        _attached(lora_model, writer(tmp_path / f"{fmt}.safetensors", pairs), 1.3)
        outputs.append(_run(lora_model))
    assert all(_close(output, outputs[0]) for output in outputs[1:])


def test_multiplier_zero_is_no_lora_and_remove_restores(tmp_path):
    model = _model()
    base = _run(model)
    path = _wan_file(tmp_path / "l.safetensors", _pairs(model))
    attached = _attached(model, path, 0.0)
    assert _close(_run(model), base, 1e-6)
    attached.set_weights([1.0])
    assert not _close(_run(model), base, 1e-3)
    attached.remove()
    assert _close(_run(model), base, 1e-6)


def test_without_alpha_the_scale_is_one(tmp_path):
    model = _model()
    pairs = _pairs(model)
    path = _wan_file(tmp_path / "l.safetensors", pairs, alpha=False)
    _attached(model_copy := copy.deepcopy(model), path, 1.0)
    assert _close(_run(model_copy), _run(_merged(model, pairs, 1.0, scale=1.0)))


def test_full_deltas_diff_and_diff_b(tmp_path):
    """``X.diff`` / ``X.diff_b`` (diffusers drops most of them) add m·delta to weights, biases and norms."""
    model = _model()
    generator = torch.Generator().manual_seed(5)
    q = model.get_submodule("blocks.0.attn1.to_q")
    norm = model.get_submodule("blocks.1.norm2")  # original: blocks.1.norm3 (cross_attn_norm)
    deltas = {"diffusion_model.blocks.0.self_attn.q.diff": torch.randn(q.weight.shape, generator=generator) * 0.1,
              "diffusion_model.blocks.0.self_attn.q.diff_b": torch.randn(q.bias.shape, generator=generator) * 0.1,
              "diffusion_model.blocks.1.norm3.diff": torch.randn(norm.weight.shape, generator=generator) * 0.1,
              "diffusion_model.blocks.1.norm3.diff_b": torch.randn(norm.bias.shape, generator=generator) * 0.1}
    path = _write(tmp_path / "d.safetensors", deltas)
    merged = copy.deepcopy(model)
    with torch.no_grad():
        mq, mn = merged.get_submodule("blocks.0.attn1.to_q"), merged.get_submodule("blocks.1.norm2")
        mq.weight += 0.5 * deltas["diffusion_model.blocks.0.self_attn.q.diff"]
        mq.bias += 0.5 * deltas["diffusion_model.blocks.0.self_attn.q.diff_b"]
        mn.weight += 0.5 * deltas["diffusion_model.blocks.1.norm3.diff"]
        mn.bias += 0.5 * deltas["diffusion_model.blocks.1.norm3.diff_b"]
    base = _run(model)
    attached = _attached(model, path, 0.5)
    assert _close(_run(model), _run(merged))
    attached.remove()
    assert _close(_run(model), base, 1e-6)


def test_bf16_within_noise(tmp_path):
    model = _model(dtype=torch.bfloat16)
    pairs = _pairs(model)
    path = _wan_file(tmp_path / "l.safetensors", pairs)
    expected = _run(_merged(model, pairs, 1.0))
    lora_model = copy.deepcopy(model)
    _attached(lora_model, path, 1.0)
    assert _close(_run(lora_model), expected, 3e-2)


def _quantized(model):
    from optimum.quanto import freeze, qint8, quantize

    quantized = copy.deepcopy(model)
    quantize(quantized, weights=qint8, include=["blocks.*"])
    freeze(quantized)
    return quantized


def test_int8_quanto_takes_the_same_runtime_adapter(tmp_path):
    """PEFT wraps optimum-quanto's QLinear (a Linear subclass): int8 + LoRA = the merged model within int8 noise,
    and exactly the quantized layer's output + m·scale·up(down(x)) per layer."""
    model = _model()
    pairs = _pairs(model)
    path = _wan_file(tmp_path / "l.safetensors", pairs)
    quantized = _quantized(model)
    noise = float((_run(quantized) - _run(model)).abs().max())
    _attached(quantized, path, 1.0)
    expected = _run(_merged(model, pairs, 1.0))
    effect = float((expected - _run(model)).abs().max())
    error = float((_run(quantized) - expected).abs().max())
    assert error <= 3 * noise + 1e-4 and effect > 10 * error
    layer = quantized.get_submodule("blocks.0.attn1.to_q")
    assert type(layer.base_layer).__name__ == "QLinear"
    x = torch.randn(3, layer.in_features)
    down, up = pairs["blocks.0.self_attn.q"]
    with torch.no_grad():
        assert _close(layer(x), layer.base_layer(x) + (ALPHA / RANK) * (x @ down.T @ up.T), 1e-5)


def test_int8_full_delta_is_a_forward_hook(tmp_path):
    model = _model()
    q = model.get_submodule("blocks.0.attn1.to_q")
    diff = torch.randn(q.weight.shape, generator=torch.Generator().manual_seed(2)) * 0.1
    path = _write(tmp_path / "d.safetensors", {"diffusion_model.blocks.0.self_attn.q.diff": diff})
    quantized = _quantized(model)
    layer = quantized.get_submodule("blocks.0.attn1.to_q")
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():
        base = layer(x)
        attached = _attached(quantized, path, 2.0)
        assert _close(layer(x), base + 2.0 * x @ diff.T, 1e-5)
        attached.remove()
        assert _close(layer(x), base, 1e-6)


def test_weights_change_between_steps(tmp_path):
    model = _model()
    pairs = _pairs(model)
    path = _wan_file(tmp_path / "l.safetensors", pairs)
    plain = copy.deepcopy(model)
    attached = _attached(model, path, 1.0)
    schedule = L.plan([], [L.LoraSpec("flag", "l", str(path), multiplier="0,1")], [], "0,1")
    stepper = L.StepWeights(attached, schedule.per_step(4))
    assert stepper.per_step == [[0.0, 0.0, 1.0, 1.0]]
    stepper.apply(0)
    assert _close(_run(model), _run(plain), 1e-6)
    stepper.step_end(1)  # step 2 runs at 1
    assert _close(_run(model), _run(_merged(plain, pairs, 1.0)))


def test_two_transformers_get_each_lora():
    """Wan 2.2: the LoRA goes into both transformers (WanGP syncs them); the step weights switch both."""
    models = [_model(0), _model(1)]
    pairs = _pairs(models[0])
    weights = W.to_diffusers({f"diffusion_model.{k}.lora_down.weight": d for k, (d, u) in pairs.items()}
                                 | {f"diffusion_model.{k}.lora_up.weight": u for k, (d, u) in pairs.items()})
    attached = L.attach(models, [weights])
    attached.set_weights([0.5])
    for model in models:
        assert model.get_submodule("blocks.0.attn1.to_q").scaling["wangp_0"] == 0.5


# -- refusals ------------------------------------------------------------------------------------------------

def test_a_lora_for_another_size_is_refused():
    model = _model()
    big = {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 1536),
           "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(1536, 4)}
    with pytest.raises(WangpError, match="does not fit the model.*32x32"):
        L.attach([model], [W.to_diffusers(big, name="big")])
    deep = {"diffusion_model.blocks.39.self_attn.q.lora_down.weight": torch.zeros(4, 32),
            "diffusion_model.blocks.39.self_attn.q.lora_up.weight": torch.zeros(32, 4)}
    with pytest.raises(WangpError, match="blocks.39.attn1.to_q' is not in the model"):
        L.attach([model], [W.to_diffusers(deep, name="deep")])


def test_a_lora_of_another_family_is_refused():
    hunyuan = {"diffusion_model.double_blocks.0.img_attn_qkv.lora_down.weight": torch.zeros(4, 32),
               "diffusion_model.double_blocks.0.img_attn_qkv.lora_up.weight": torch.zeros(96, 4)}
    with pytest.raises(WangpError, match="not a Wan LoRA"):
        W.to_diffusers(hunyuan, name="hy")
    with pytest.raises(WangpError, match="names no Wan module"):
        W.to_diffusers({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.zeros(4, 32)})


def test_pickles_and_broken_files_are_refused(tmp_path):
    with pytest.raises(WangpError, match="not a .safetensors file"):
        L.read_lora(tmp_path / "x.pt")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x80\x04garbage")
    with pytest.raises(WangpError):
        L.read_lora(broken)
    with pytest.raises(UsageError, match="safetensors files only"):
        L.flag_loras(["old.ckpt"], "loras/wan", tmp_path)


# -- sources and multipliers -----------------------------------------------------------------------------------

def test_split_flag():
    assert L.split_flag("a.safetensors:0.8") == ("a.safetensors", "0.8")
    assert L.split_flag("a.safetensors:1;0") == ("a.safetensors", "1;0")
    assert L.split_flag("a.safetensors:0.5,1") == ("a.safetensors", "0.5,1")
    assert L.split_flag("https://hf.co/x/a.safetensors") == ("https://hf.co/x/a.safetensors", None)
    assert L.split_flag("https://hf.co/x/a.safetensors:0.5") == ("https://hf.co/x/a.safetensors", "0.5")
    assert L.split_flag(r"C:\loras\a.safetensors") == (r"C:\loras\a.safetensors", None)
    assert L.split_flag("a.safetensors:x") == ("a.safetensors:x", None)


def test_sources_locate_files(tmp_path):
    model = L.model_loras(["https://hf.co/r/resolve/main/fast.safetensors", "mine/local.safetensors"], ["1;0"],
                          "loras/wan")
    assert [(s.path, s.url, s.multiplier) for s in model] == [
        ("loras/wan/fast.safetensors", "https://hf.co/r/resolve/main/fast.safetensors", "1;0"),
        ("loras/wan/mine/local.safetensors", None, 1.0)]
    assert model[0].recorded == "fast.safetensors"
    user = L.settings_loras(["style.safetensors", "https://hf.co/r/resolve/main/b.safetensors|sub"], "0.5",
                            "loras/wan")
    assert [(s.path, s.multiplier) for s in user] == [("loras/wan/style.safetensors", "0.5"),
                                                       ("loras/wan/sub/b.safetensors", 1.0)]
    assert user[1].recorded == "sub/b.safetensors"
    (tmp_path / "f.safetensors").write_bytes(b"")
    flag = L.flag_loras(["f.safetensors:0.3", "https://hf.co/r/resolve/main/c.safetensors"], "loras/wan", tmp_path)
    assert flag[0].path == str((tmp_path / "f.safetensors").resolve()) and flag[0].multiplier == "0.3"
    assert flag[1].path == "loras/wan/c.safetensors" and flag[1].multiplier == "1"


def test_flags_are_added_to_the_settings_aligned():
    settings = {"activated_loras": ["a.safetensors", "b.safetensors"], "loras_multipliers": "0.5"}
    flags = L.flag_loras(["https://hf.co/r/resolve/main/c.safetensors:1;0"], "loras/wan")
    L.add_to_settings(settings, flags)
    assert settings == {"activated_loras": ["a.safetensors", "b.safetensors", "c.safetensors"],
                        "loras_multipliers": "0.5 1 1;0"}


def test_plan_phases_and_refusals():
    spec = L.LoraSpec("model", "x", "x")
    two = L.plan([spec], [spec], ["1;0"], "0.2,0.4;1", nb_phases=2, guidance_phases=2)
    assert two.per_step(4, 2) == [[1.0, 1.0, 0.0, 0.0], [0.2, 0.4, 1.0, 1.0]]
    assert not two.is_constant(4, 2)
    with pytest.raises(UsageError, match="at most 1 allowed.*guidance_phases 2"):
        L.plan([spec], [], ["1;0"], "", nb_phases=1)
    with pytest.raises(UsageError, match="loras_multipliers: multiplier 1"):
        L.plan([], [spec], [], "abc")
    assert L.lora_phases({"guidance_phases": 2}, {"guidance_max_phases": 3}) == (2, 2, 1)
    assert L.lora_phases({"guidance_phases": 3, "model_switch_phase": 2}, {"guidance_max_phases": 3}) == (3, 3, 2)
    assert L.lora_phases({"guidance_phases": 2}, {"guidance_max_phases": 1}) == (1, 1, 1)
    assert L.lora_phases({}, {"guidance_max_phases": 2, "lock_guidance_phases": True}) == (2, 2, 1)
