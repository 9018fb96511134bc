"""`wangp download` against real servers on loopback: olah (Hub mirror) and a plain HTTP server.

The CLI runs in a subprocess so that huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE at import,
exactly as for a user.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.download.conftest import DIFFUSERS, ME, WAN

WANGP = [sys.executable, "-m", "wangp_cli"]


def hub_url(repo, path, revision="main"):
    return f"https://huggingface.co/{repo}/resolve/{revision}/{path}"


def make_home(tmp_path: Path, definitions: dict) -> Path:
    home = tmp_path / "home"
    for folder in ("finetunes", "ckpts", "settings"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    for model_id, data in definitions.items():
        (home / "finetunes" / f"{model_id}.json").write_text(json.dumps(data, indent=4), encoding="utf-8")
    return home


def definition(urls, **model):
    return {"model": {"name": "test", "architecture": "t2v_1.3B", "description": "", "URLs": urls, **model},
            "seed": -1}


def run(home: Path, env: dict, *args, check=None, **kwargs):
    full_env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "WANGP_DOWNLOAD_BACKOFF": "0"}
    result = subprocess.run(WANGP + ["--home", str(home), *args], capture_output=True, text=True, env=full_env,
                            timeout=120, **kwargs)
    assert "Traceback" not in result.stderr, result.stderr
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


@pytest.fixture
def wan_home(tmp_path):
    urls = [hub_url(ME, "my_finetune_bf16.safetensors"), hub_url(ME, "my_finetune_quanto_bf16_int8.safetensors")]
    return make_home(tmp_path, {"t2v_mine": definition(
        urls, preload_URLs=[hub_url(WAN, "tiny_model_quanto_bf16_int8_map.json")])})


def test_dry_run_plan_lists_files_sizes_and_hashes(wan_home, hub_env, hub_server):
    result = run(wan_home, hub_env.env, "download", "t2v_mine", "--dry-run", "--format", "json", check=0)
    plan = json.loads(result.stdout)
    files = {f["dest"]: f for f in plan["files"]}
    chosen = "ckpts/my_finetune_quanto_bf16_int8.safetensors"
    content = hub_server.content(ME, "my_finetune_quanto_bf16_int8.safetensors")
    assert files[chosen]["role"] == "transformer" and files[chosen]["kind"] == "hub"
    assert files[chosen]["size"] == len(content)
    assert files[chosen]["sha256"] == hashlib.sha256(content).hexdigest()  # the LFS etag
    assert "ckpts/my_finetune_bf16.safetensors" not in files  # only the chosen variant
    assert files["ckpts/tiny_model_quanto_bf16_int8_map.json"]["role"] == "preload"
    components = sorted(d for d in files if d.startswith("ckpts/Wan2.1-T2V-1.3B-Diffusers/"))
    assert "ckpts/Wan2.1-T2V-1.3B-Diffusers/vae/diffusion_pytorch_model.safetensors" in components
    assert "ckpts/Wan2.1-T2V-1.3B-Diffusers/model_index.json" in components
    assert not [d for d in components if "/transformer/" in d]  # never the repo's own transformer
    assert plan["summary"]["missing"] == len(files)
    assert plan["summary"]["missing_bytes"] == sum(f["size"] for f in files.values())
    assert not any((wan_home / "ckpts").iterdir())  # a dry run writes nothing


def test_download_then_rerun_is_a_no_op(wan_home, hub_env, hub_server):
    run(wan_home, hub_env.env, "download", "t2v_mine", check=0)
    target = wan_home / "ckpts" / "my_finetune_quanto_bf16_int8.safetensors"
    assert target.read_bytes() == hub_server.content(ME, "my_finetune_quanto_bf16_int8.safetensors")
    vae = wan_home / "ckpts/Wan2.1-T2V-1.3B-Diffusers/vae/diffusion_pytorch_model.safetensors"
    assert vae.read_bytes() == hub_server.content(DIFFUSERS, "vae/diffusion_pytorch_model.safetensors")
    assert not (wan_home / "ckpts/Wan2.1-T2V-1.3B-Diffusers/transformer").exists()
    assert not [p for p in (wan_home / "ckpts").rglob(".*wangp-part*")]
    hub_server.clear_requests()
    result = run(wan_home, hub_env.env, "download", "t2v_mine", "--format", "json", check=0)
    assert {f["status"] for f in json.loads(result.stdout)["files"]} == {"present"}
    assert [r for r in hub_server.requests if r.method == "GET" and "/resolve/" in r.path] == []


def test_all_variants_and_no_components(wan_home, hub_env):
    result = run(wan_home, hub_env.env, "download", "t2v_mine", "--all-variants", "--no-components",
                 "--dry-run", "--format", "json", check=0)
    dests = {f["dest"] for f in json.loads(result.stdout)["files"]}
    assert dests == {"ckpts/my_finetune_bf16.safetensors", "ckpts/my_finetune_quanto_bf16_int8.safetensors",
                     "ckpts/tiny_model_quanto_bf16_int8_map.json"}


def test_revision_and_subfolder_urls_land_flat_in_ckpts(tmp_path, hub_env, hub_server):
    home = make_home(tmp_path, {"t2v_rev": definition(
        [hub_url(ME, "my_finetune_bf16.safetensors", "v2")],
        preload_URLs=[hub_url(WAN, "text_encoder/tiny_encoder_bf16.safetensors")])})
    run(home, hub_env.env, "download", "t2v_rev", "--no-components", check=0)
    assert (home / "ckpts/my_finetune_bf16.safetensors").read_bytes() == hub_server.content(
        ME, "my_finetune_bf16.safetensors", revision="v2")
    assert (home / "ckpts/tiny_encoder_bf16.safetensors").read_bytes() == hub_server.content(
        WAN, "text_encoder/tiny_encoder_bf16.safetensors")


def _wait_for_part(folder: Path, minimum: int, timeout: float = 30.0) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for part in folder.glob(".*.wangp-part"):
            if part.stat().st_size >= minimum:
                return part
        time.sleep(0.05)
    raise AssertionError("the download did not start")


def test_resume_after_sigkill_never_leaves_a_partial_file(tmp_path, hub_env, hub_server):
    name = "tiny_model_bf16.safetensors"
    content = hub_server.content(WAN, name)
    home = make_home(tmp_path, {"t2v_big": definition([hub_url(WAN, name)])})
    hub_server.configure(ranges=True, throttle_bytes_per_second=len(content) // 3)
    env = {**hub_env.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(WANGP + ["--home", str(home), "download", "t2v_big", "--no-components"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        part = _wait_for_part(home / "ckpts", len(content) // 2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = part.stat().st_size
    assert 0 < killed_at < len(content)
    assert not (home / "ckpts" / name).exists()  # never a partial file at the final path
    hub_server.configure(ranges=True, throttle_bytes_per_second=None)
    hub_server.clear_requests()
    run(home, hub_env.env, "download", "t2v_big", "--no-components", check=0)
    assert (home / "ckpts" / name).read_bytes() == content
    asked = [r.range for r in hub_server.requests if r.method == "GET" and r.path.endswith(name)]
    assert asked == [f"bytes={killed_at}-"]  # one request, for the rest only
    resumed = [r for r in hub_server.responses if r.method == "GET" and r.range == f"bytes={killed_at}-"]
    assert sum(r.bytes_sent for r in resumed) == len(content) - killed_at


def test_server_without_range_support_restarts_and_still_verifies(tmp_path, hub_env, http_server):
    path = "/files/model_bf16.safetensors"
    content = http_server.files[path]
    home = make_home(tmp_path, {"t2v_http": definition([http_server.url(path)])})
    target = home / "ckpts/model_bf16.safetensors"
    part = target.with_name(".model_bf16.safetensors.wangp-part")
    part.write_bytes(content[:1000])  # a leftover partial file without metadata: not trusted, restarted
    http_server.ranges = False
    run(home, hub_env.env, "download", "t2v_http", "--no-components", check=0)
    assert target.read_bytes() == content and not part.exists()


def test_plain_http_resume_uses_range(tmp_path, hub_env, http_server):
    path = "/files/model_bf16.safetensors"
    content = http_server.files[path]
    home = make_home(tmp_path, {"t2v_http": definition([http_server.url(path)])})
    http_server.truncate_at = {path: len(content) // 2}  # the first answer breaks off half way
    run(home, hub_env.env, "download", "t2v_http", "--no-components", check=0)
    assert (home / "ckpts/model_bf16.safetensors").read_bytes() == content
    gets = [r for r in http_server.requests if r.method == "GET"]
    assert gets[0].range is None and gets[1].range == f"bytes={len(content) // 2}-"


def test_corrupted_data_is_rejected_and_nothing_kept(tmp_path, hub_env, http_server):
    path = "/files/model_bf16.safetensors"
    content = http_server.files[path]
    digest = hashlib.sha256(content).hexdigest()
    url = http_server.url(path)
    home = make_home(tmp_path, {"t2v_http": definition([url], sha256={url: digest})})
    flipped = bytearray(content)
    flipped[len(content) // 2] ^= 0xFF
    http_server.corrupt = {path: bytes(flipped)}
    result = run(home, hub_env.env, "download", "t2v_http", "--no-components", check=1)
    assert "SHA-256 mismatch" in result.stderr
    assert list((home / "ckpts").iterdir()) == []  # no part, no metadata, no lock (row 55)


def test_truncated_data_without_resume_fails_cleanly(tmp_path, hub_env, http_server):
    path = "/files/model_bf16.safetensors"
    home = make_home(tmp_path, {"t2v_http": definition([http_server.url(path)])})
    http_server.ranges = False
    http_server.truncate_at = {path: 1000}
    result = run(home, hub_env.env, "download", "t2v_http", "--no-components", check=1)
    assert "failed after" in result.stderr
    assert not (home / "ckpts/model_bf16.safetensors").exists()


def test_concurrent_runs_download_once_and_both_succeed(tmp_path, hub_env, http_server):
    path = "/files/model_bf16.safetensors"
    content = http_server.files[path]
    home = make_home(tmp_path, {"t2v_http": definition([http_server.url(path)])})
    http_server.throttle_bytes_per_second = len(content) * 2
    env = {**hub_env.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = WANGP + ["--home", str(home), "download", "t2v_http", "--no-components"]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
    codes = [p.wait(timeout=60) for p in processes]
    assert codes == [0, 0]
    assert (home / "ckpts/model_bf16.safetensors").read_bytes() == content
    assert len([r for r in http_server.requests if r.method == "GET"]) == 1


def test_missing_file_names_the_definition_and_url(tmp_path, hub_env):
    url = hub_url(ME, "does_not_exist_bf16.safetensors")
    home = make_home(tmp_path, {"t2v_gone": definition([url])})
    result = run(home, hub_env.env, "download", "t2v_gone", "--no-components", check=1)
    assert "t2v_gone" in result.stderr and "404" in result.stderr and url in result.stderr


def test_401_gets_a_token_hint_and_no_token_is_printed(tmp_path, hub_env, http_server):
    http_server.require_token = "secret"
    home = make_home(tmp_path, {"t2v_http": definition([http_server.url("/files/model_bf16.safetensors")])})
    env = {**hub_env.env, "HF_TOKEN": "hf_dont_print_me"}
    result = run(home, env, "download", "t2v_http", "--no-components", check=1)
    assert "401" in result.stderr and "credentials" in result.stderr
    assert "hf_dont_print_me" not in result.stderr + result.stdout


@pytest.mark.parametrize("url", [
    "https://example.invalid/a/%2e%2e",
    "https://example.invalid/a/..%2Fescape_bf16.safetensors",
    "https://example.invalid/a/",
])
def test_urls_that_escape_ckpts_are_rejected_before_any_request(tmp_path, hub_env, url):
    home = make_home(tmp_path, {"t2v_evil": definition([url])})
    result = run(home, hub_env.env, "download", "t2v_evil", "--no-components", check=1)
    assert "E7" in result.stderr
    assert list((home / "ckpts").iterdir()) == [] and not (home.parent / "escape_bf16.safetensors").exists()


def test_two_urls_with_one_basename_are_an_error(tmp_path, hub_env, hub_server):
    home = make_home(tmp_path, {
        "t2v_a": definition([hub_url(ME, "my_finetune_bf16.safetensors")]),
        "t2v_b": definition([hub_url(ME, "my_finetune_bf16.safetensors", "v2")]),
    })
    result = run(home, hub_env.env, "download", "t2v_a", "t2v_b", "--no-components", check=1)
    assert "ckpts/my_finetune_bf16.safetensors" in result.stderr


def test_offline_reports_missing_then_accepts_present(wan_home, hub_env):
    offline = {**hub_env.env, "HF_HUB_OFFLINE": "1"}
    result = run(wan_home, offline, "download", "t2v_mine", "--no-components", check=1)
    assert "HF_HUB_OFFLINE" in result.stderr and "my_finetune_quanto_bf16_int8" in result.stderr
    run(wan_home, hub_env.env, "download", "t2v_mine", "--no-components", check=0)
    run(wan_home, offline, "download", "t2v_mine", "--no-components", check=0)


def test_local_paths_are_checked_never_copied(tmp_path, hub_env):
    home = make_home(tmp_path, {"t2v_local": definition(["ckpts/local_bf16.safetensors"])})
    result = run(home, hub_env.env, "download", "t2v_local", "--no-components", check=1)
    assert "ckpts/local_bf16.safetensors" in result.stderr
    (home / "ckpts/local_bf16.safetensors").write_bytes(b"weights")
    run(home, hub_env.env, "download", "t2v_local", "--no-components", check=0)
    assert sorted(p.name for p in (home / "ckpts").iterdir()) == ["local_bf16.safetensors"]


def test_disk_space_is_checked_before_the_first_byte(tmp_path):
    from wangp_cli.core.errors import WangpError
    from wangp_cli.core.home import Home
    from wangp_cli.download import check_disk_space
    from wangp_cli.download.plan import FilePlan, Plan

    home = make_home(tmp_path, {})
    plan = Plan([FilePlan("ckpts/huge_bf16.safetensors", "https://x.invalid/huge_bf16.safetensors", "transformer",
                          ["t2v_x"], size=1 << 60)])
    with pytest.raises(WangpError, match="not enough free space"):
        check_disk_space(plan, Home(home))
    plan.files[0].size = 1
    check_disk_space(plan, Home(home))
