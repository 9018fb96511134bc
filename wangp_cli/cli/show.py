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
    target: TargetOption = Target.july,
    format: FormatOption = DataFormat.text,
) -> None:
    """Show a definition resolved: the chosen transformer file, modules, preloads and merged settings.

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
    emit(f"  architecture  {record['architecture']} ({record['family']}, {record['class']}, {record['fps']} fps)")
    emit(f"  source        {clean(record['source'] or 'built-in')}")
    emit(f"  transformer   {_file(transformer)}  [{transformer['label']}, computes in {transformer['dtype']}"
         + (", quantized at load" if transformer["auto_quantize"] else "") + "]")
    for variant in record["variants"]:
        emit(f"    variant     {_file(variant)}  [{variant['label']}]")
    for module in record["modules"]:
        emit(f"  module        {module['id']}: {_file(module)}")
    for item in record["preload"]:
        emit(f"  preload       {_file(item)}")
    for item in record["loras"]:
        emit(f"  lora          {_file(item)}")
    emit("  settings")
    for key, value in record["settings"].items():
        origin = record["settings_origin"].get(key, "")
        emit(f"    {clean(key)} = {clean(json.dumps(value, ensure_ascii=False))}"
             + (f"  ({origin})" if origin else ""))


def _file(item: dict) -> str:
    return f"{clean(item['path'])} ({'present' if item['present'] else 'missing'})"


def register(app: typer.Typer) -> None:
    app.command("show")(show_command)
