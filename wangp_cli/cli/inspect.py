"""``wangp inspect``: what a checkpoint file is, from its header alone."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from wangp_cli.cli._options import DataFormat, FormatOption
from wangp_cli.cli._output import emit, emit_json, handle_errors


@handle_errors
def inspect_command(
    path: Annotated[str, typer.Argument(help="A .safetensors checkpoint.", show_default=False)],
    format: FormatOption = DataFormat.text,
) -> None:
    """Key layout (WanGP original or diffusers), architecture guess, dtypes, tensors, quantization, config.

    Reads only the header: fast on multi-GB files, and nothing is unpickled. Example: wangp inspect ckpts/x.safetensors
    """
    from wangp_cli.quantize.inspection import inspect_checkpoint

    record = inspect_checkpoint(path)
    if format is DataFormat.json:
        emit_json({"schema": "wangp.inspect/1", **record})
        return
    for key, value in record.items():
        if key == "config" and value:
            value = json.dumps(value)
        emit(f"{key:24} {value}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
