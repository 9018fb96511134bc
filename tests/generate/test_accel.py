"""Speed levers: ``--attention`` (diffusers' attention dispatcher), ``--compile`` (regional torch.compile) and the
step-cache flags, checked before loading and run on tiny real Wan pipelines on the CPU."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import invoke
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError
from wangp_cli.core.home import Home
from wangp_cli.generate import accel
from wangp_cli.generate.request import build_request

torch = pytest.importorskip("torch")
from diffusers.models import attention_dispatch  # noqa: E402
from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry  # noqa: E402

from wangp_cli.generate import tiny  # noqa: E402

#: What diffusers itself finds usable (its import-time flags), per choice that needs a package.
DIFFUSERS_FLAGS = {"flash": "_CAN_USE_FLASH_ATTN", "flash3": "_CAN_USE_FLASH_ATTN_3", "sage": "_CAN_USE_SAGE_ATTN"}
NOT_INSTALLED = [choice for choice, flag in DIFFUSERS_FLAGS.items() if not getattr(attention_dispatch, flag)]


@pytest.fixture
def catalog(shipped_home):
    return Catalog(Home(shipped_home))


# -- choices checked before anything loads ----------------------------------------------------------------------------

def test_installed_backends_agree_with_what_diffusers_can_use():
    installed = accel.installed_backends()
    assert set(installed) == set(accel.ATTENTION_CHOICES) - {"auto"}
    assert installed["sdpa"] and installed["cudnn"]  # torch alone
    for choice, flag in DIFFUSERS_FLAGS.items():
        assert installed[choice] == getattr(attention_dispatch, flag), choice


def test_an_unknown_attention_is_refused_with_the_choices(catalog):
    with pytest.raises(UsageError, match="--attention 'xformers' is not one of auto, sdpa, cudnn, flash, flash3, sage"):
        build_request(catalog, "t2v_fusionix", attention="xformers")


@pytest.mark.skipif(not NOT_INSTALLED, reason="flash-attn, FlashAttention 3 and SageAttention are all installed")
@pytest.mark.parametrize("model_id", ["t2v_fusionix", "hunyuan_t2v_fast"])
def test_a_backend_that_is_not_installed_is_refused_with_how_to_install_it(catalog, model_id, tmp_path):
    for choice in NOT_INSTALLED:
        with pytest.raises(UsageError, match=f"--attention {choice}: .* not installed; to install it: "):
            build_request(catalog, model_id, attention=choice)
    result = invoke("generate", "-m", model_id, "--attention", NOT_INSTALLED[0], "-o", tmp_path / "out",
                    home=catalog.home.root)
    assert result.exit_code == 2 and "not installed; to install it:" in result.stderr
    assert not (tmp_path / "out").exists()


def _masked_call(name: str):
    """Call the dispatcher function registered under ``name`` with a bool key-padding mask, as HunyuanVideo does
    (the last key padded): the exception it raises, or None."""
    query = torch.randn(1, 6, 2, 8, dtype=torch.bfloat16)
    mask = torch.ones(1, 1, 1, 6, dtype=torch.bool)
    mask[..., -1] = False
    try:
        _AttentionBackendRegistry._backends[AttentionBackendName(name)](query, query, query, attn_mask=mask)
    except Exception as exc:  # noqa: BLE001 - the kernels are missing here; only the mask refusal matters
        return exc
    return None


def _refuses_masks(error) -> bool:
    return isinstance(error, ValueError) and "`attn_mask` is not supported" in str(error)


def test_hunyuan_gets_kernels_that_take_its_attention_mask():
    # the plain flash / FA3 / Sage kernels refuse any mask (gpu-review D8): Wan's names for them, not Hunyuan's
    for choice in ("flash", "flash3", "sage"):
        assert _refuses_masks(_masked_call(accel.dispatcher_name(choice, "wan"))), choice
    assert accel.backends_for("hunyuan") == accel.backends_for("wan") == ("sdpa", "cudnn", "flash", "flash3", "sage")
    for choice in accel.backends_for("hunyuan"):
        name = accel.dispatcher_name(choice, "hunyuan")
        assert not _refuses_masks(_masked_call(name)), (choice, name)
    # native SDPA with the mask is torch's masked attention (the varlen kernels drop the padded keys the same way)
    query = torch.randn(1, 6, 2, 8)
    mask = torch.ones(1, 1, 1, 6, dtype=torch.bool)
    mask[..., -2:] = False
    got = _AttentionBackendRegistry._backends[AttentionBackendName.NATIVE](query, query, query, attn_mask=mask)
    heads_first = query.transpose(1, 2)
    expected = torch.nn.functional.scaled_dot_product_attention(heads_first, heads_first[..., :4, :],
                                                                heads_first[..., :4, :]).transpose(1, 2)
    torch.testing.assert_close(got, expected)


def test_on_the_cpu_auto_and_sdpa_are_native_sdpa_and_the_rest_is_refused(catalog):
    with pytest.raises(UsageError, match="--attention cudnn needs a CUDA GPU; --profile cpu runs on the CPU"):
        build_request(catalog, "t2v_fusionix", attention="cudnn", profile="cpu")  # before loading
    for family in ("wan", "hunyuan"):
        assert accel.resolve_attention("auto", family, "cpu") == accel.resolve_attention("sdpa", family, "cpu") \
            == AttentionBackendName.NATIVE.value
    with pytest.raises(UsageError, match="--attention cudnn needs a CUDA GPU"):
        accel.resolve_attention("cudnn", "wan", "cpu")


# -- the cache flags are WanGP's settings keys ----------------------------------------------------------------------

def test_cache_flags_set_wangps_settings_keys(catalog):
    request = build_request(catalog, "t2v_fusionix", {"cache": "mag", "cache_multiplier": 2.0, "cache_start": 10})
    assert {key: request.settings[key] for key in ("skip_steps_cache_type", "skip_steps_multiplier",
                                                   "skip_steps_start_step_perc")} == {
        "skip_steps_cache_type": "mag", "skip_steps_multiplier": 2.0, "skip_steps_start_step_perc": 10}
    off = build_request(catalog, "t2v_fusionix", {"cache": "none"})
    assert off.settings["skip_steps_cache_type"] == ""  # WanGP's "no cache"
    manifest_style = build_request(catalog, "t2v_fusionix", settings={"skip_steps_cache_type": "none"})
    assert manifest_style.settings["skip_steps_cache_type"] == ""
    with pytest.raises(UsageError, match="skip_steps_multiplier"):
        build_request(catalog, "t2v_fusionix", {"cache": "mag", "cache_multiplier": 0.5})


def test_the_plan_shows_the_levers_and_manifests_take_attention_but_not_cache_flags(catalog, tmp_path):
    home = catalog.home.root
    plan = json.loads(invoke("generate", "-m", "t2v_fusionix", "--dry-run", "--format", "json", "--attention", "sdpa",
                             "--compile", "--cache", "mag", "--cache-multiplier", "2", "-o", tmp_path,
                             home=home).stdout)
    assert (plan["attention"], plan["compile"]) == ("sdpa", True)
    assert plan["step_cache"] == {"type": "mag", "multiplier": 2.0, "start_step_perc": plan["settings"][
        "skip_steps_start_step_perc"]}
    text = invoke("generate", "-m", "t2v_fusionix", "--dry-run", "--cache", "none", "-o", tmp_path, home=home).stdout
    assert "attention auto, no compile, no step cache" in text
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"id": "j", "model": "t2v_fusionix", "cache": "tea", "cache_multiplier": 2}) + "\n")
    refused = invoke("generate", "--manifest", manifest, "--cache", "mag", "--dry-run", home=home)
    assert refused.exit_code == 2 and "--cache cannot be combined with --manifest" in refused.stderr
    dry = invoke("generate", "--manifest", manifest, "--attention", "sdpa", "--compile", "--dry-run", "-o",
                 tmp_path / "out", home=home)
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines()[-2:] == ["every job: attention sdpa, compile", "1/1 job(s) valid"]
    report = json.loads(invoke("generate", "--manifest", manifest, "--dry-run", "--format", "json", "-o",
                               tmp_path / "out", home=home).stdout)
    start = catalog.get("t2v_fusionix").settings.get("skip_steps_start_step_perc", 0)
    assert report["jobs"][0]["step_cache"] == {"type": "tea", "multiplier": 2, "start_step_perc": start}
    assert (report["attention"], report["compile"]) == ("auto", False)


# -- on a tiny real pipeline --------------------------------------------------------------------------------------

SMALL = {"height": 32, "width": 32, "num_frames": 5, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def wan_pipeline(tmp_path_factory):
    """A tiny Wan 2.1 t2v pipeline (fp32 transformer) on the CPU, with its frames before any lever."""
    components = tiny.make_components("t2v", tmp_path_factory.mktemp("components"))
    pipe = tiny.reference_pipeline("t2v", components, tiny.make_transformer("t2v"))
    return pipe, run(pipe), components


def run(pipe):
    with torch.inference_mode():
        return pipe(prompt="a cat", generator=torch.Generator("cpu").manual_seed(0), output_type="np",
                    **tiny.call_kwargs("t2v", **SMALL)).frames[0]


def processor_backends(model) -> set:
    """The backend diffusers' attention processors of ``model`` carry (None: the process default)."""
    from diffusers.models.attention import AttentionModuleMixin

    return {module.processor._attention_backend for module in model.modules()
            if isinstance(module, AttentionModuleMixin)}


@pytest.mark.parametrize("choice", ["auto", "sdpa"])
def test_set_attention_puts_native_sdpa_on_the_transformer_only(wan_pipeline, choice):
    pipe, default_frames, _ = wan_pipeline
    default = _AttentionBackendRegistry._active_backend
    assert accel.set_attention(pipe, "wan", choice, "cpu") == "native"
    assert processor_backends(pipe.transformer) == {AttentionBackendName.NATIVE}
    assert _AttentionBackendRegistry._active_backend == default  # the process-wide default (the VAE's) is kept
    np.testing.assert_array_equal(run(pipe), default_frames)


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compile_compiles_each_block_once_and_keeps_the_frames(wan_pipeline):
    import copy

    reference, default_frames, components = wan_pipeline
    pipe = tiny.reference_pipeline("t2v", components, copy.deepcopy(reference.transformer))  # the others stay eager
    blocks = [m for m in pipe.transformer.modules() if type(m).__name__ == "WanTransformerBlock"]
    regions = [child for block in blocks for child in (block.attn1, block.attn2, block.ffn, block.norm2)]
    assert accel.compile_transformers(pipe, "cpu") == {"regions": len(regions), "fullgraph": False}
    assert all(region._compiled_call_impl is not None for region in regions)
    np.testing.assert_allclose(run(pipe), default_frames, atol=1e-4)
    assert accel.compile_transformers(pipe, "cpu")["regions"] == 0  # a kept pipeline is not compiled again
