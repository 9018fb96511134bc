"""Option types shared by several commands (declared once, reused)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer


class ColorMode(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class DataFormat(str, Enum):
    text = "text"
    json = "json"


class ProgressFormat(str, Enum):
    """Long-running commands (download, quantize, generate): jsonl streams events (docs/events.md)."""

    text = "text"
    json = "json"
    jsonl = "jsonl"


class ReportFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class Quantization(str, Enum):
    int8 = "int8"
    none = "none"
    fp8 = "fp8"


class Dtype(str, Enum):
    bf16 = "bf16"
    fp16 = "fp16"


class LinkMode(str, Enum):
    auto = "auto"
    hardlink = "hardlink"
    reflink = "reflink"
    copy = "copy"


class Target(str, Enum):
    v6 = "v6"
    july = "july"
    v12 = "v12"


FormatOption = Annotated[DataFormat, typer.Option("--format", "-f", help="Output format: text for people, json "
                                                                          "for scripts (stdout holds only JSON).")]
QuantizationOption = Annotated[Quantization, typer.Option(help="Transformer quantization wanted (WanGP's "
                                                               "'Transformer Model Quantization').")]
DtypeOption = Annotated[Dtype, typer.Option(help="Transformer data type wanted (WanGP's 'Transformer Data Type').")]
TargetOption = Annotated[Target, typer.Option(envvar="WANGP_TARGET", show_envvar=True,
                                              help="WanGP version to work for: v12 (12.x, 2026; the default), july "
                                                   "(6.6-7.0, July 2025) or v6 (6.x, June 2025).")]
ModelIdArgument = Annotated[str, typer.Argument(help="A definition id (file name in finetunes/ without .json) or a "
                                                     "base architecture id.", show_default=False)]
