"""Fixtures for the download tests: a Hugging Face Hub look-alike and a plain HTTP server, both on 127.0.0.1.

Fixtures
--------
``hub_server``      The session's :class:`tests.servers.HubServer` (olah, started once, ~1.5 s), reset before each
                    test: plain olah behaviour (no Range, no throttle, no truncation) and an empty request log.
                    Repos: see :data:`HUB_REPOS` / :data:`HUB_REVISIONS`; expected bytes via
                    ``hub_server.content(repo_id, path, revision="main")``, commits via ``hub_server.commits``.
``hub_env``         Points huggingface_hub at ``hub_server`` for this test (env vars AND the already-imported
                    ``huggingface_hub.constants``), with a fresh ``HF_HOME`` under ``tmp_path``; returns a
                    :class:`HubEnv` (``endpoint``, ``hf_home``, ``hub_cache``, ``env`` for subprocesses).
``make_hub_server`` Factory for an extra HubServer with other repos/options (e.g. ``seed_refs=False``), stopped at
                    the end of the test.
``http_server``     A started :class:`tests.servers.HttpServer` with :data:`HTTP_FILES`; options are attributes
                    that tests may set (``require_token``, ``throttle_bytes_per_second``, ``corrupt``, ...).
``make_http_server``  Factory for more HttpServers (e.g. a second host for redirects), stopped after the test.

huggingface_hub reads its settings at IMPORT time
-------------------------------------------------
``huggingface_hub.constants`` computes ``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_TOKEN_PATH``, ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY``... from ``os.environ`` once,
when first imported; ``hf_hub_url`` formats ``HUGGINGFACE_CO_URL_TEMPLATE`` and ``HfApi()`` copies
``constants.ENDPOINT`` at construction.  Setting ``HF_ENDPOINT`` after the import changes nothing.  Three ways
that work, best first:

1. Run the code under test in a subprocess (``python -m wangp_cli download ...``) with the environment set:
   ``hub_env`` sets ``os.environ`` (via monkeypatch), so ``subprocess.run(..., env=hub_env.env)`` or plain
   inheritance gives the child the right values before it imports huggingface_hub.
2. In-process, ``hub_env`` ALSO monkeypatches the attributes of ``huggingface_hub.constants`` (and the few
   modules that copied them by name) -- see :func:`patch_hf_constants`.  Code must then read them as
   ``constants.X`` at call time (huggingface_hub itself does), not ``from huggingface_hub.constants import X``
   at module level.
3. Or pass ``endpoint=hub_server.endpoint`` and ``cache_dir=``/``local_dir=`` explicitly to huggingface_hub calls.

``HF_TOKEN`` is removed so no real token is ever sent; olah ignores tokens anyway.  Proxy variables are removed
and ``NO_PROXY=127.0.0.1,localhost`` is set so loopback traffic never goes through a proxy.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import pytest

import tests.conftest as _root_conftest
from tests.servers import HttpServer, HubServer, random_bytes, safetensors_bytes

# pytest imports every conftest.py of a folder without __init__.py under the module name "conftest", replacing the
# previous one in sys.modules: inside tests/download, `from conftest import subprocess_env` (as tests/cli does)
# would find THIS file.  So the root conftest's plain helpers (not its fixtures) are re-exported here.
for _name, _value in vars(_root_conftest).items():
    if (not _name.startswith("_") and _name not in globals() and not isinstance(_value, type(pytest))
            and type(_value).__name__ != "FixtureFunctionDefinition"
            and not hasattr(_value, "_pytestfixturefunction")):
        globals()[_name] = _value
del _name, _value


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


WAN = "DeepBeepMeep/Wan2.1"
ME = "me/my-finetune"
DIFFUSERS = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

#: ``{repo_id: {path_in_repo: bytes}}`` served on ``main``.  ``*.safetensors`` are stored as git-lfs files
#: (etag = sha256), everything else as plain git blobs (etag = git blob sha1).  Every repo also gets a
#: Hub-style ``.gitattributes`` (listed by list_repo_files / downloaded by snapshot_download).
HUB_REPOS: Dict[str, Dict[str, bytes]] = {
    WAN: {
        "tiny_model_bf16.safetensors": safetensors_bytes(3 * 1024 * 1024, seed=1),
        "tiny_model_quanto_bf16_int8.safetensors": safetensors_bytes(1536 * 1024, seed=2),
        "tiny_model_quanto_bf16_int8_map.json": _json({"blocks.0.weight": "int8", "blocks.1.weight": "int8"}),
        "text_encoder/tiny_encoder_bf16.safetensors": safetensors_bytes(256 * 1024, seed=3),
        "text_encoder/tokenizer/tokenizer_config.json": _json({"model_max_length": 512}),
        "raw/plain_weights.dat": random_bytes(1024 * 1024, seed=4),  # a plain-git binary (not LFS)
    },
    ME: {
        "my_finetune_bf16.safetensors": safetensors_bytes(512 * 1024, seed=5),
        "my_finetune_quanto_bf16_int8.safetensors": safetensors_bytes(256 * 1024, seed=6),
    },
    DIFFUSERS: {
        "model_index.json": _json({
            "_class_name": "WanPipeline",
            "_diffusers_version": "0.33.0.dev0",
            "scheduler": ["diffusers", "UniPCMultistepScheduler"],
            "text_encoder": ["transformers", "UMT5EncoderModel"],
            "tokenizer": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "WanTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLWan"],
        }),
        "scheduler/scheduler_config.json": _json(
            {"_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000}),
        "text_encoder/config.json": _json({"architectures": ["UMT5EncoderModel"], "d_model": 8}),
        "text_encoder/model.safetensors": safetensors_bytes(64 * 1024, seed=7),
        "tokenizer/tokenizer_config.json": _json({"model_max_length": 512, "tokenizer_class": "T5Tokenizer"}),
        "vae/config.json": _json({"_class_name": "AutoencoderKLWan", "z_dim": 16}),
        "vae/diffusion_pytorch_model.safetensors": safetensors_bytes(128 * 1024, seed=8),
        "transformer/config.json": _json({"_class_name": "WanTransformer3DModel", "num_layers": 1}),
        "transformer/diffusion_pytorch_model.safetensors": safetensors_bytes(1024 * 1024, seed=9),
    },
}

#: Extra branches: ``{repo_id: {branch: {path: bytes or None (deleted)}}}``, forked from ``main``.
HUB_REVISIONS = {
    WAN: {
        "dev": {
            "tiny_model_quanto_bf16_int8_map.json": _json({"blocks.0.weight": "int8", "revision": "dev"}),
            "dev_only.safetensors": safetensors_bytes(100 * 1024, seed=10),
            "raw/plain_weights.dat": None,
        }
    },
    ME: {"v2": {"my_finetune_bf16.safetensors": safetensors_bytes(512 * 1024, seed=11)}},
}

#: Files of the ``http_server`` fixture (``{url_path: bytes}``).
HTTP_FILES: Dict[str, bytes] = {
    "/files/model_bf16.safetensors": safetensors_bytes(2 * 1024 * 1024, seed=21),
    "/files/config.json": _json({"name": "plain http"}),
    "/deep/path/weights.bin": random_bytes(256 * 1024, seed=22),
}

_HF_ENV_REMOVED = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE", "HF_XET_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
    "XDG_CACHE_HOME", "HF_HUB_ENABLE_HF_TRANSFER", "_HF_DEFAULT_ENDPOINT", "HUGGINGFACE_CO_STAGING",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)


@dataclass
class HubEnv:
    endpoint: str
    hf_home: Path
    hub_cache: Path
    #: A copy of ``os.environ`` as set by the fixture, for ``subprocess.run(..., env=...)``.
    env: Dict[str, str] = field(default_factory=dict)


def patch_hf_constants(monkeypatch, endpoint: str, hf_home: Path) -> None:
    """Make an already-imported huggingface_hub behave as if imported with ``HF_ENDPOINT``/``HF_HOME`` set."""
    import sys

    from huggingface_hub import constants

    hf_home = str(hf_home)
    token_path = os.path.join(hf_home, "token")
    values = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": hf_home,
        "default_cache_path": os.path.join(hf_home, "hub"),
        "HUGGINGFACE_HUB_CACHE": os.path.join(hf_home, "hub"),
        "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
        "default_assets_cache_path": os.path.join(hf_home, "assets"),
        "HUGGINGFACE_ASSETS_CACHE": os.path.join(hf_home, "assets"),
        "HF_ASSETS_CACHE": os.path.join(hf_home, "assets"),
        "default_xet_cache_path": os.path.join(hf_home, "xet"),
        "HF_XET_CACHE": os.path.join(hf_home, "xet"),
        "HF_TOKEN_PATH": token_path,
        "HF_STORED_TOKENS_PATH": os.path.join(hf_home, "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in values.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    # Modules that did `from ..constants import NAME` keep their own copy.
    copies = {
        "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": values["HF_HUB_CACHE"]},
        "huggingface_hub.utils._cache_assets": {"HF_ASSETS_CACHE": values["HF_ASSETS_CACHE"]},
        "huggingface_hub.utils._git_credential": {"ENDPOINT": endpoint},
    }
    for module_name, attrs in copies.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name, value in attrs.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)


@pytest.fixture(scope="session")
def _hub_server_session(tmp_path_factory):
    pytest.importorskip("olah", reason="olah (the offline Hub mirror used as test server) is not installed")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("hub")
    with HubServer(HUB_REPOS, HUB_REVISIONS, root=root) as server:
        yield server


@pytest.fixture
def hub_server(_hub_server_session) -> HubServer:
    _hub_server_session.reset()
    yield _hub_server_session
    _hub_server_session.reset()


@pytest.fixture
def make_hub_server(tmp_path):
    pytest.importorskip("olah", reason="olah (the offline Hub mirror used as test server) is not installed")
    started = []

    def make(repos, revisions=None, **options) -> HubServer:
        server = HubServer(repos, revisions, root=tmp_path / f"hub{len(started)}", **options)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def hub_env(monkeypatch, tmp_path, hub_server) -> HubEnv:
    for name in _HF_ENV_REMOVED:
        monkeypatch.delenv(name, raising=False)
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # the transfer tests serve the files of July definitions; WanGP 12's plan (text encoders, LoRA folders) has
    # its own tests in test_download_v12.py
    monkeypatch.setenv("WANGP_TARGET", "july")
    monkeypatch.setenv("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    patch_hf_constants(monkeypatch, hub_server.endpoint, hf_home)
    return HubEnv(endpoint=hub_server.endpoint, hf_home=hf_home, hub_cache=hf_home / "hub", env=dict(os.environ))


@pytest.fixture
def make_http_server():
    started = []

    def make(files=None, **options) -> HttpServer:
        server = HttpServer(files, **options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def http_server(make_http_server) -> HttpServer:
    return make_http_server(HTTP_FILES)
