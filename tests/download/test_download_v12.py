"""`wangp download` for target v12 (WanGP 12): every file WanGP 12's load_models / download_models fetches, where
it puts it, what counts as present, and the checkpoint format of each file.

The plans are built in-process (no network); one test downloads the v12 roles from a loopback HTTP server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_home, write_definition
from tests.servers import safetensors_bytes
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.home import Home
from wangp_cli.core.registry import get_architecture
from wangp_cli.core.variants import Preference
from wangp_cli.download import resolve_plan
from wangp_cli.download.plan import build_plan

REPO = Path(__file__).resolve().parents[2]
HF = "https://huggingface.co/me/r/resolve/main/"
WEB = "https://files.example/"
INT8 = Preference("int8", "bf16")


def lora_folder(arch_id: str) -> str:
    return "loras/" + get_architecture(arch_id, "v12").lora_dir


def model(architecture="t2v_2_2", **keys) -> dict:
    return {"model": {"name": "x", "architecture": architecture, "description": "", **keys}, "seed": 1}


#: Every download key of a WanGP 12 definition, each form once.
FULL = model(
    URLs=[HF + "high_mbf16.safetensors", HF + "high_quanto_mbf16_int8.safetensors"],
    URLs2=[HF + "low_mbf16.safetensors", HF + "low_quanto_mbf16_int8.safetensors"],
    modules=[[WEB + "inline_mbf16.safetensors", WEB + "inline_quanto_mbf16_int8.safetensors"], "my_module",
             {"URLs": [WEB + "pair1_bf16.safetensors"], "URLs2": [WEB + "pair2_bf16.safetensors"]}],
    preload_URLs="preloads",
    text_encoder_URLs=[WEB + "enc/encoder_bf16.safetensors", WEB + "enc/encoder_quanto_bf16_int8.safetensors"],
    text_encoder_folder="my-encoder",
    VAE_URLs=WEB + "vae/my_vae.safetensors",
    loras=[WEB + "l/lightning.safetensors", WEB + "l/deep.safetensors|styles"],
)
#: A module id (a definition with exactly one module) and a definition whose preload_URLs the first references.
MODULE = model("t2v", URLs=[HF + "mod_base_bf16.safetensors"], modules=[[WEB + "module_mbf16.safetensors"]])
PRELOADS = model("t2v", URLs=[HF + "pre_base_bf16.safetensors"],
                 preload_URLs=[WEB + "p/config.json|sub/dir", WEB + "p/extra_lora.safetensors|%lora_dir"])


@pytest.fixture
def v12_home(tmp_path) -> Path:
    home = make_home(tmp_path / "home")
    for model_id, data in (("full", FULL), ("my_module", MODULE), ("preloads", PRELOADS)):
        write_definition(home, model_id, data)
    return home


def plan_of(home: Path, model_id: str, preference: Preference = INT8, **options) -> dict:
    plan = build_plan(Catalog(Home(home), "v12"), [model_id], preference, components=False, **options)
    resolve_plan(plan, Home(home), network=False)
    return {f.dest: f for f in plan.files}


def roles(files: dict) -> dict:
    return {dest: f.role for dest, f in files.items()}


def test_the_plan_holds_every_file_wangp_12_fetches_where_it_puts_it(v12_home):
    loras = lora_folder("t2v_2_2")
    assert roles(plan_of(v12_home, "full")) == {
        "ckpts/high_quanto_mbf16_int8.safetensors": "transformer",
        "ckpts/low_quanto_mbf16_int8.safetensors": "transformer2",
        "ckpts/inline_quanto_mbf16_int8.safetensors": "module",
        "ckpts/module_mbf16.safetensors": "module",  # the module id's one module
        "ckpts/pair1_bf16.safetensors": "module",  # {URLs, URLs2}: both
        "ckpts/pair2_bf16.safetensors": "module",
        "ckpts/sub/dir/config.json": "preload",  # url|subfolder, through the preload reference
        f"{loras}/extra_lora.safetensors": "preload",  # url|%lora_dir
        "ckpts/my_vae.safetensors": "vae",  # a VAE_URLs string is one URL
        "ckpts/my-encoder/encoder_quanto_bf16_int8.safetensors": "text_encoder",  # text_encoder_folder
        f"{loras}/lightning.safetensors": "lora",
        f"{loras}/styles/deep.safetensors": "lora",
    }


def test_sixteen_bit_takes_the_first_entries_and_all_variants_takes_every_one(v12_home):
    sixteen = plan_of(v12_home, "full", Preference("none", "bf16"))
    assert sixteen["ckpts/high_mbf16.safetensors"].role == "transformer"
    assert sixteen["ckpts/low_mbf16.safetensors"].role == "transformer2"
    assert "ckpts/inline_mbf16.safetensors" in sixteen
    every = roles(plan_of(v12_home, "full", all_variants=True))
    assert every["ckpts/high_mbf16.safetensors"] == "variant"
    assert every["ckpts/low_mbf16.safetensors"] == "variant2"
    assert every["ckpts/inline_mbf16.safetensors"] == every["ckpts/inline_quanto_mbf16_int8.safetensors"] == "module"
    assert every["ckpts/my-encoder/encoder_bf16.safetensors"] == "text_encoder"


def test_without_text_encoder_urls_the_handlers_encoder_goes_to_its_folder(v12_home):
    write_definition(v12_home, "plain", model("t2v", URLs=[HF + "plain_bf16.safetensors"]))
    keys = get_architecture("t2v", "v12").handler_keys
    encoders = [f for f in plan_of(v12_home, "plain").values() if f.role == "text_encoder"]
    assert [f.source for f in encoders] == [u for u in keys["text_encoder_URLs"] if "int8" in u]
    assert encoders[0].dest == f"ckpts/{keys['text_encoder_folder']}/{encoders[0].source.rsplit('/', 1)[1]}"


def test_the_text_encoder_goes_where_its_folder_already_is(v12_home):
    (v12_home / "my-encoder").mkdir()  # under the WanGP folder itself, not ckpts/: WanGP's smart download root
    files = plan_of(v12_home, "full")
    assert "my-encoder/encoder_quanto_bf16_int8.safetensors" in files


@pytest.mark.parametrize("key, skipped", [
    ("source", ["ckpts/high_quanto_mbf16_int8.safetensors"]),
    ("source2", ["ckpts/low_quanto_mbf16_int8.safetensors"]),
    # module_source: every module's own file (a variant list, an id's module, a {URLs, URLs2} module's URLs)
    ("module_source", ["ckpts/inline_quanto_mbf16_int8.safetensors", "ckpts/module_mbf16.safetensors",
                       "ckpts/pair1_bf16.safetensors"]),
    ("module_source2", ["ckpts/pair2_bf16.safetensors"]),
])
def test_a_source_key_skips_the_file_wangp_makes_from_it(v12_home, key, skipped):
    everything = set(plan_of(v12_home, "full"))
    write_definition(v12_home, "full", {**FULL, "model": {**FULL["model"], key: "/elsewhere/original.safetensors"}})
    assert sorted(everything - set(plan_of(v12_home, "full"))) == sorted(skipped)  # preloads, loras, ... stay


def test_a_file_under_any_checkpoint_root_is_present(v12_home):
    (v12_home / "high_quanto_mbf16_int8.safetensors").write_bytes(b"x")  # ./ : WanGP's second root
    (v12_home / "ckpts/low_quanto_mbf16_int8.safetensors").write_bytes(b"x")
    (v12_home / "my-encoder").mkdir()
    (v12_home / "my-encoder/encoder_quanto_bf16_int8.safetensors").write_bytes(b"x")
    files = plan_of(v12_home, "full")
    high = files["ckpts/high_quanto_mbf16_int8.safetensors"]
    assert high.present and high.found == "high_quanto_mbf16_int8.safetensors"
    assert files["ckpts/low_quanto_mbf16_int8.safetensors"].found == "ckpts/low_quanto_mbf16_int8.safetensors"
    assert files["my-encoder/encoder_quanto_bf16_int8.safetensors"].present
    assert not files["ckpts/my_vae.safetensors"].present and files["ckpts/my_vae.safetensors"].found is None


def test_a_lora_counts_only_in_the_lora_folder(v12_home):
    (v12_home / "ckpts/lightning.safetensors").write_bytes(b"x")
    assert not plan_of(v12_home, "full")[f"{lora_folder('t2v_2_2')}/lightning.safetensors"].present


def test_other_formats_are_planned_with_their_format(v12_home):
    write_definition(v12_home, "gguf", model("ltx2_22B", URLs=[HF + "ltx-2-distilled-Q4_K_M.gguf"]))
    write_definition(v12_home, "fp8", model("t2v", URLs=[HF + "x_bf16.safetensors", HF + "x_fp8_e4m3fn.safetensors"]))
    gguf = plan_of(v12_home, "gguf")["ckpts/ltx-2-distilled-Q4_K_M.gguf"]
    assert (gguf.role, gguf.format) == ("transformer", "gguf")
    fp8 = plan_of(v12_home, "fp8")["ckpts/x_fp8_e4m3fn.safetensors"]  # int8 falls back to fp8 in WanGP 12
    assert (fp8.role, fp8.format) == ("transformer", "scaled-fp8")
    assert plan_of(v12_home, "fp8", Preference("none", "bf16"))["ckpts/x_bf16.safetensors"].format == "16-bit"
    config = plan_of(v12_home, "full")["ckpts/sub/dir/config.json"]
    assert config.format is None and config.to_dict()["format"] is None


def test_the_cli_plan_shows_roles_formats_and_where_a_file_was_found(v12_home):
    from conftest import invoke

    write_definition(v12_home, "gguf", model("ltx2_22B", URLs=[HF + "ltx-2-distilled-Q4_K_M.gguf"]))
    (v12_home / "high_quanto_mbf16_int8.safetensors").write_bytes(b"x")
    env = {"HF_HUB_OFFLINE": "1"}
    text = invoke("download", "full", "gguf", "--dry-run", "--no-components", home=v12_home, env=env).stdout
    def line(dest: str) -> str:
        return next(line for line in text.splitlines() if f" {dest} " in line)

    assert "transformer2 ckpts/low_quanto_mbf16_int8.safetensors [quanto-int8]" in line(
        "ckpts/low_quanto_mbf16_int8.safetensors")
    assert "transformer  ckpts/ltx-2-distilled-Q4_K_M.gguf [gguf]" in line("ckpts/ltx-2-distilled-Q4_K_M.gguf")
    assert " text_encoder " in line("ckpts/my-encoder/encoder_quanto_bf16_int8.safetensors")
    assert " lora " in line(f"{lora_folder('t2v_2_2')}/styles/deep.safetensors")
    assert "(found at high_quanto_mbf16_int8.safetensors)" in line("ckpts/high_quanto_mbf16_int8.safetensors")
    data = json.loads(invoke("download", "full", "--dry-run", "--no-components", "-f", "json", home=v12_home,
                             env=env).stdout)
    entry = next(f for f in data["files"] if f["role"] == "transformer")
    assert entry["format"] == "quanto-int8" and entry["found"] == "high_quanto_mbf16_int8.safetensors"
    assert entry["state"] == "present (size only)"


def test_a_definition_of_an_unknown_architecture_is_refused_in_one_line(v12_home):
    from conftest import invoke

    write_definition(v12_home, "odd", model("no_such_type", URLs=[HF + "a_bf16.safetensors"]))
    result = invoke("download", "odd", "--dry-run", home=v12_home, env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 1 and "unknown architecture 'no_such_type'" in result.stderr


def test_v12_roles_are_downloaded_to_their_places(tmp_path, make_http_server):
    files = {f"/w/{name}": safetensors_bytes(4096, seed=index) for index, name in enumerate(
        ("high_bf16.safetensors", "low_bf16.safetensors", "enc_bf16.safetensors", "style.safetensors",
         "t3.safetensors", "v.safetensors"))}
    server = make_http_server(files)
    home = make_home(tmp_path / "home")
    url = lambda name: server.url(f"/w/{name}")  # noqa: E731
    write_definition(home, "dl", model(URLs=[url("high_bf16.safetensors")], URLs2=[url("low_bf16.safetensors")],
                                       text_encoder_URLs=[url("enc_bf16.safetensors")], text_encoder_folder="enc",
                                       loras=[url("style.safetensors")],
                                       preload_URLs=[url("t3.safetensors") + "|chatterbox"],
                                       VAE_URLs=url("v.safetensors")))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO), "WANGP_DOWNLOAD_BACKOFF": "0",
           "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), "download", "dl",
                             "--no-components", "--target", "v12"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    places = {"ckpts/high_bf16.safetensors": "high_bf16", "ckpts/low_bf16.safetensors": "low_bf16",
              "ckpts/enc/enc_bf16.safetensors": "enc_bf16", f"{lora_folder('t2v_2_2')}/style.safetensors": "style",
              "ckpts/chatterbox/t3.safetensors": "t3", "ckpts/v.safetensors": "v"}
    for path, stem in places.items():
        assert (home / path).read_bytes() == files[f"/w/{stem}.safetensors"], path
    assert "6 downloaded, 0 already present" in result.stderr
