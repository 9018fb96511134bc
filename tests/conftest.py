"""Shared fixtures: throw-away WanGP home folders with real definition files on disk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

#: The suite runs on the CPU, also on a machine with a GPU: many tests compare with CPU-built references or rely on
#: the CPU placement, so CUDA is hidden from torch before anything imports it (gpu-review D13). Each listed id is
#: invalid, which hides every device from CUDA and torch (parsing stops at a negative id), in this process and in
#: every child (CLI subprocesses, Ray workers); there are 16 of them because Ray refuses to start a local instance
#: with more (fake) GPUs than CUDA_VISIBLE_DEVICES lists, and maps each of its fake GPUs to one of them.
#: ``WANGP_TEST_GPU=1`` leaves the GPUs visible for the tests marked ``gpu`` (``WANGP_TEST_GPU=1 pytest -m gpu``),
#: which are skipped otherwise.
GPU_TESTS = os.environ.get("WANGP_TEST_GPU") == "1"
HIDDEN_GPUS = ",".join(["-1"] * 16)
if not GPU_TESTS:
    os.environ["CUDA_VISIBLE_DEVICES"] = HIDDEN_GPUS

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DEFINITIONS = sorted((REPO_ROOT / "finetunes").glob("*.json"))

if str(REPO_ROOT) not in sys.path:  # the package is used from the checkout, not installed
    sys.path.insert(0, str(REPO_ROOT))

settings.register_profile("wangp", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("wangp")

HF_WAN = "https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/"
HF_ME = "https://huggingface.co/me/my-finetune/resolve/main/"

#: Environment variables that change the CLI's defaults (format, colour, home): never inherited by a test.
#: (CUDA_VISIBLE_DEVICES is, on purpose: a child process runs on the CPU as the test does.)
_CLI_ENV = ("GITHUB_ACTIONS", "FORCE_COLOR", "CLICOLOR_FORCE", "WANGP_HOME", "WANGP_DEBUG", "WANGP_TARGET")


def make_home(root: Path) -> Path:
    for folder in ("finetunes", "ckpts", "settings"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return root


def write_definition(home: Path, model_id: str, data_or_text, folder: str = "finetunes") -> Path:
    """Write ``<home>/<folder>/<id>.json``: a dict/list is dumped with indent 4, str/bytes are written as is."""
    path = Path(home) / folder / f"{model_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data_or_text, bytes):
        path.write_bytes(data_or_text)
    elif isinstance(data_or_text, str):
        path.write_bytes(data_or_text.encode("utf-8"))
    else:
        path.write_text(json.dumps(data_or_text, indent=4), encoding="utf-8")
    return path


def definition(**model) -> dict:
    """A definition that is clean for both targets (t2v, a bf16 file and its quanto int8, a seed)."""
    subtree = {
        "name": "My finetune",
        "architecture": "t2v",
        "description": "A test finetune",
        "URLs": [HF_ME + "my_finetune_bf16.safetensors", HF_ME + "my_finetune_quanto_bf16_int8.safetensors"],
    }
    subtree.update(model)
    return {"model": {k: v for k, v in subtree.items() if v is not None}, "seed": -1}


def position(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the ``occurrence``-th ``needle`` in ``text``, counted by hand."""
    offset = -1
    for _ in range(occurrence + 1):
        offset = text.index(needle, offset + 1)
    head = text[:offset]
    return head.count("\n") + 1, offset - (head.rfind("\n") + 1) + 1


def offset_of(text: str, line: int, column: int) -> int:
    """Character offset of a 1-based (line, column)."""
    lines = text.split("\n")
    return sum(len(part) + 1 for part in lines[: line - 1]) + column - 1


def invoke(*args, home=None, env=None):
    """The CLI in-process (CliRunner, stdout and stderr apart): never a traceback, an internal error or an
    exception other than SystemExit."""
    from typer.testing import CliRunner

    from wangp_cli.cli import app

    argv = (["--home", str(home)] if home is not None else []) + [str(a) for a in args]
    result = CliRunner().invoke(app, argv, env=env)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def strict_json(text: str):
    """Parse as strict JSON (RFC 8259): NaN / Infinity are an error, as in jq."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def sigint_default() -> None:
    """``preexec_fn`` for a child that a test interrupts: Ctrl-C acts as on a terminal even when this run was
    started in the background (``cmd &``, nohup), where SIGINT is inherited as ignored and Python keeps it so."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def subprocess_env(**extra) -> dict:
    """Environment for ``python -m wangp_cli`` in a child process: the checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in _CLI_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def pytest_runtest_setup(item):
    """Tests marked ``gpu`` run only with ``WANGP_TEST_GPU=1`` and a CUDA GPU."""
    if item.get_closest_marker("gpu") is None:
        return
    if not GPU_TESTS:
        pytest.skip("needs a CUDA GPU: run WANGP_TEST_GPU=1 pytest -m gpu")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("WANGP_TEST_GPU=1, but torch sees no CUDA GPU")


@pytest.fixture(autouse=True)
def _clean_cli_environment(monkeypatch):
    for name in _CLI_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path) -> Path:
    """An empty home folder: ``finetunes/``, ``ckpts/``, ``settings/``."""
    return make_home(tmp_path / "home")


@pytest.fixture
def shipped_home(tmp_path) -> Path:
    """A home folder holding copies of the repository's shipped ``finetunes/*.json``."""
    root = make_home(tmp_path / "shipped")
    for path in SHIPPED_DEFINITIONS:
        (root / "finetunes" / path.name).write_bytes(path.read_bytes())
    return root


@pytest.fixture(name="write_definition")
def _write_definition_fixture():
    return write_definition


@pytest.fixture(name="definition")
def _definition_fixture():
    return definition


@pytest.fixture(name="position")
def _position_fixture():
    return position


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of real, small tmpfs mounts (root only; skips elsewhere): ``tmpfs(size="4m")`` -> its folder.

    ``tmpfs.read_only(folder)`` remounts one read-only (EROFS for everybody, root included). Unmounted at the end.
    """
    import subprocess

    mounted = []

    def make(size: str = "4m") -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
        mounted.append(folder)
        return folder

    def read_only(folder: Path) -> Path:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        return folder

    make.read_only = read_only
    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """``components(kind)``: one tiny components folder per kind (``tiny.make_components``), built on first use in
    the module; tests copy it into their homes."""
    from wangp_cli.generate import tiny

    built = {}

    def get(kind):
        if kind not in built:
            built[kind] = tiny.make_components(kind, tmp_path_factory.mktemp(f"components-{kind}"))
        return built[kind]

    return get
