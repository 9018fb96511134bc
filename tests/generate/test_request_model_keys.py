"""Keys of a definition's ``model`` subtree that change how a family samples reach the family's hooks (WanGP's
handlers read them from the model definition): LTX-2's ``ltx2_pipeline: "distilled"``."""

from __future__ import annotations

import json

import pytest

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError
from wangp_cli.core.home import Home
from wangp_cli.generate.request import build_request


def catalog_with(tmp_path, model: dict, **settings) -> Catalog:
    (tmp_path / "finetunes").mkdir(parents=True)
    definition = {"model": {"name": "LTX distilled", "architecture": "ltx2_22B", "URLs": ["ckpts/x.safetensors"],
                            **model}, "prompt": "a cat", "resolution": "64x64", "video_length": 9, **settings}
    (tmp_path / "finetunes" / "ltx_d.json").write_text(json.dumps(definition))
    return Catalog(Home(tmp_path), "v12")


def test_a_distilled_definition_takes_the_distilled_schedule(tmp_path):
    catalog = catalog_with(tmp_path, {"ltx2_pipeline": "distilled"}, num_inference_steps=8)
    request = build_request(catalog, "ltx_d")
    assert request.model_keys == {"ltx2_pipeline": "distilled"}
    assert "ltx2_pipeline" not in request.settings  # what the metadata records stays WanGP's settings
    from wangp_cli.families.ltx2.settings import distilled

    assert distilled(request.family_settings) and not distilled(request.settings)


def test_the_distilled_schedule_refuses_other_step_counts(tmp_path):
    catalog = catalog_with(tmp_path, {"ltx2_pipeline": "distilled"}, num_inference_steps=30)
    with pytest.raises(UsageError, match="8"):
        build_request(catalog, "ltx_d")
    build_request(catalog_with(tmp_path / "plain", {}, num_inference_steps=30), "ltx_d")  # not distilled: fine


def test_a_twinflow_definition_is_refused_not_sampled_with_euler(tmp_path):
    (tmp_path / "finetunes").mkdir(parents=True)
    definition = {"model": {"name": "TwinFlow", "architecture": "z_image", "URLs": ["ckpts/x.safetensors"],
                            "unified_solver": True}, "prompt": "a cat", "resolution": "64x64"}
    (tmp_path / "finetunes" / "twin.json").write_text(json.dumps(definition))
    with pytest.raises(UsageError, match="unified_solver"):
        build_request(Catalog(Home(tmp_path), "v12"), "twin")
