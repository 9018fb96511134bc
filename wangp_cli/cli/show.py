"""``wangp show``: one definition, resolved as WanGP would use it."""

from __future__ import annotations

import json

import typer

from wangp_cli.cli._options import (
    DataFormat, Dtype, DtypeOption, FormatOption, ModelIdArgument, Quantization, QuantizationOption, Target,
    TargetOption,
)
from wangp_cli.cli._output import emit, emit_json, handle_errors, open_catalog
from wangp_cli.core.safety import clean


@handle_errors
def show_command(
    ctx: typer.Context,
    model_id: ModelIdArgument,
    quantization: QuantizationOption = Quantization.int8,
    dtype: DtypeOption = Dtype.bf16,
    target: TargetOption = Target.v12,
    format: FormatOption = DataFormat.text,
) -> None:
    """Show a definition resolved: the chosen transformer file(s), modules, text encoder, LoRAs, merged settings.

    Examples: wangp show t2v_fusionix; wangp show t2v_fusionix --quantization none --dtype fp16 --format json
    """
    from wangp_cli.core.models import resolve_model
    from wangp_cli.core.variants import Preference

    record = resolve_model(open_catalog(ctx, target.value), model_id,
                           Preference(quantization.value, dtype.value))
    if format is DataFormat.json:
        emit_json({"schema": "wangp.show/1", **record})
        return
    transformer = record["transformer"]
    # every value from a file is cleaned first: a newline in a name must not start a line of its own
    emit(f"{clean(record['id'])}: {clean(record['name'])}")
    kind = ", ".join(str(v) for v in (record["family"], record.get("output"), record["class"]) if v)
    emit(f"  architecture  {record['architecture']} ({kind}, {record['fps']} fps)")
    if "pipeline" in record:
        emit(f"  generate      {record['pipeline'] or 'no diffusers pipeline (WanGP only)'}")
    emit(f"  source        {clean(record['source'] or 'built-in')}")
    _transformer("transformer ", transformer)
    for variant in record["variants"]:
        emit(f"    variant     {_file(variant)}  [{variant['label']}]")
    if record.get("transformer2"):
        _transformer("transformer2", record["transformer2"])
        for variant in record["variants2"]:
            emit(f"    variant     {_file(variant)}  [{variant['label']}]")
    for module in record["modules"]:
        emit(f"  module        {clean(module['id'] or 'inline')}: {_file(module)}"
             + (f"  [{module['label']}]" if module.get("label") else ""))
        if module.get("second"):
            emit(f"    second      {_file(module['second'])}  [{module['second']['label']}]")
    if record.get("text_encoder"):
        encoder = record["text_encoder"]
        emit(f"  text encoder  {_file(encoder)}  [{encoder['label']}]")
    for item in record.get("vae", []):
        emit(f"  vae           {_file(item)}")
    for item in record["preload"]:
        emit(f"  preload       {_file(item)}")
    for item in record["loras"]:
        emit(f"  lora          {_file(item)}  x {clean(json.dumps(item['multiplier']))}")
    if record.get("configs"):
        emit(f"  configs       {clean(', '.join(record['configs']))}")
    emit("  settings")
    for key, value in record["settings"].items():
        origin = record["settings_origin"].get(key, "")
        emit(f"    {clean(key)} = {clean(json.dumps(value, ensure_ascii=False))}"
             + (f"  ({origin})" if origin else ""))


def _transformer(label: str, item: dict) -> None:
    emit(f"  {label}  {_file(item)}  [{item['label']}, computes in {item['dtype']}"
         + (", quantized at load" if item["auto_quantize"] else "")
         + ("" if item["kind"] in ("16-bit", "quanto-int8") else f", {item['kind']}: wangp cannot load it") + "]")


def _file(item: dict) -> str:
    return f"{clean(item['path'])} ({'present' if item['present'] else 'missing'})"


def register(app: typer.Typer) -> None:
    app.command("show")(show_command)
