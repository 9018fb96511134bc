"""``wangp doctor``'s GPU part: device facts, attention kernels, and the profile generate would pick per
architecture at 480p / 720p, for this GPU or a hypothetical one (``--vram GIB``); usable without a GPU."""

from __future__ import annotations

import json

import pytest

from conftest import invoke
from wangp_cli.generate.engine import PIPELINES, PROFILE_LADDER

torch = pytest.importorskip("torch")
GIB = 1024**3


def doctor(*args) -> dict:
    result = invoke("doctor", "--no-self-test", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rank(profile: str) -> int:
    return PROFILE_LADDER.index(profile)


def test_a_hypothetical_card_gets_a_profile_per_architecture_and_size():
    report = doctor("--vram", "24")
    profiles = report["profiles"]
    assert profiles["vram_bytes"] == 24 * GIB and profiles["source"] == "--vram"
    assert profiles["sizes"] == {"480p": [832, 480, 81], "720p": [1280, 720, 81]}
    assert set(profiles["architectures"]) == set(PIPELINES)
    for arch_id, plan in profiles["architectures"].items():
        assert plan["480p"]["margin_bytes"] < plan["720p"]["margin_bytes"], arch_id  # more pixels, more memory
        for size in ("480p", "720p"):
            for weights in ("16-bit", "int8"):
                chosen = plan[size][weights]
                assert chosen["profile"] in PROFILE_LADDER
                # all on the GPU only where the weights and the request's margin fit
                fits = chosen["bytes"] + plan[size]["margin_bytes"] < 24 * GIB
                assert (chosen["profile"] == "gpu") == fits, (arch_id, size, weights)
            assert plan[size]["int8"]["bytes"] < plan[size]["16-bit"]["bytes"]
            assert rank(plan[size]["int8"]["profile"]) <= rank(plan[size]["16-bit"]["profile"])
        assert rank(plan["480p"]["16-bit"]["profile"]) <= rank(plan["720p"]["16-bit"]["profile"]), arch_id


def test_more_vram_never_gets_a_lower_profile():
    plans = [doctor("--vram", str(gib))["profiles"]["architectures"] for gib in (8, 24, 80, 4096)]
    for arch_id in PIPELINES:
        for size in ("480p", "720p"):
            ranks = [rank(plan[arch_id][size]["16-bit"]["profile"]) for plan in plans]
            assert ranks == sorted(ranks, reverse=True), (arch_id, size, ranks)
    assert {plans[-1][a][s][w]["profile"] for a in PIPELINES for s in ("480p", "720p") for w in ("16-bit", "int8")} \
        == {"gpu"}


def test_the_device_and_attention_facts_match_torch_and_diffusers():
    from diffusers.models import attention_dispatch

    report = doctor()
    device, attention = report["device"], report["attention"]
    assert attention["installed"]["flash"] == attention_dispatch._CAN_USE_FLASH_ATTN
    assert attention["installed"]["sage"] == attention_dispatch._CAN_USE_SAGE_ATTN
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        assert device["capability"] == f"{major}.{minor}" and device["bf16"] == torch.cuda.is_bf16_supported()
        assert device["vram_total_bytes"] == torch.cuda.mem_get_info()[1]
        assert report["profiles"]["source"] == "gpu" and set(report["profiles"]["architectures"]) == set(PIPELINES)
        assert "sdpa" in attention["usable"]
    else:
        assert "no CUDA GPU" in device["name"] and report["profiles"] is None
        assert attention["usable"] == ["sdpa"] and set(attention["auto"].values()) == {"native"}
        text = invoke("doctor", "--no-self-test").stdout
        assert "no CUDA GPU: 'wangp doctor --vram 24' shows what a 24 GiB card would get" in text


def test_the_text_table_says_what_the_json_says():
    profiles = doctor("--vram", "16")["profiles"]
    lines = invoke("doctor", "--no-self-test", "--vram", "16").stdout.splitlines()
    assert any(line.startswith("profiles        for 16.0 GiB (--vram)") for line in lines)
    rows = {line.split()[0]: line.split()[1:5] for line in lines if line.startswith("  ") and
            line.split()[0] in PIPELINES}
    assert rows == {arch_id: [plan[size][weights]["profile"] for size in ("480p", "720p")
                              for weights in ("16-bit", "int8")] for arch_id, plan in profiles["architectures"].items()}


@pytest.mark.parametrize("value", ["0", "-3", "nan"])
def test_a_vram_that_is_not_a_positive_size_is_refused(value):
    result = invoke("doctor", "--no-self-test", "--vram", value)
    assert result.exit_code == 2 and "--vram" in result.stderr
