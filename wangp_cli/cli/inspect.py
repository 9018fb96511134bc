"""``wangp inspect``: what a checkpoint file is, from its header alone."""

from __future__ import annotations

from typing import Annotated

import typer

from wangp_cli.cli._options import DataFormat, FormatOption
from wangp_cli.cli._output import emit, emit_json, handle_errors


def _count(value: int) -> str:
    return f"{value:,}"


def _bytes(value: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value:,} bytes ({value / size:.1f} {unit})"
    return f"{value:,} bytes"


def _config(value: dict) -> str:
    from wangp_cli.core.jsonio import json_text

    return json_text(value, indent=None)


#: How each field of the record reads in text (JSON keeps the raw values).
TEXT_FORMAT = {
    "size": _bytes,
    "tensors": _count,
    "tensor_bytes": _bytes,
    "dtypes": lambda counts: ", ".join(f"{dtype} ×{count:,}" for dtype, count in counts.items()),
    "towers": ", ".join,
    "metadata_keys": ", ".join,
    "quantized_modules": _count,
    "quantizable_modules": _count,
    "config": _config,
}


def text_value(key: str, value) -> str:
    """A record value in human words: yes/no, lists joined, counts with separators, ``-`` for nothing."""
    if value is None or value == [] or value == {} or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return TEXT_FORMAT.get(key, str)(value)


@handle_errors
def inspect_command(
    path: Annotated[str, typer.Argument(help="A .safetensors checkpoint.", show_default=False)],
    format: FormatOption = DataFormat.text,
) -> None:
    """Key layout (WanGP original or diffusers), architecture guess, dtypes, tensors, quantization, config.

    Reads only the header: fast on multi-GB files, and nothing is unpickled. The header is checked as
    safetensors checks it (a truncated or malformed file is an error). Example: wangp inspect ckpts/x.safetensors
    """
    from wangp_cli.quantize.inspection import inspect_checkpoint

    record = inspect_checkpoint(path)
    if format is DataFormat.json:
        emit_json({"schema": "wangp.inspect/1", **record})
        return
    for key, value in record.items():
        emit(f"{key:24} {text_value(key, value)}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
