"""A validation report as one SARIF 2.1.0 log (``wangp validate --format sarif``), for GitHub code scanning.

One run, one rule per diagnostic code (all of :data:`wangp_cli.core.validation.CODES`, in that order, so a rule's
index never depends on what was found), one result per finding. The codes' one-line meanings come from that
table; how to fix each code is :data:`HELP` below (docs/diagnostics.md says the same for people; it is not read at
run time). Paths are made relative to the current folder (``%SRCROOT%``, the repository root in a workflow); a
file outside it gets an absolute ``file:`` URI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from wangp_cli import __version__
from wangp_cli.core.jsonio import json_text
from wangp_cli.core.validation import CODES, Report

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
DOCS = "docs/diagnostics.md"
#: The head of a log this module writes (key order fixed below), so ``validate -o`` knows it may replace it.
_OWN_HEAD = re.compile(r'^\{\s*"\$schema": "' + re.escape(SCHEMA_URI) + r'",\s*"version": "2\.1\.0",\s*"runs": '
                       r'\[\s*\{\s*"tool": \{\s*"driver": \{\s*"name": "wangp"')

#: How to fix each code (SARIF ``help``): one entry per key of ``CODES`` (a test checks that none is missing).
HELP = {
    "E1": "Make the file a UTF-8 JSON object without a byte order mark: fix the syntax at the reported position "
          "(a trailing comma, a missing quote or brace), or wrap the content in { ... }.",
    "E2": "Add a \"model\" object holding the definition: name, architecture, description and URLs.",
    "E3": "Give \"model\" the strings \"name\", \"architecture\" and \"description\" (rename a legacy \"base\" "
          "to \"architecture\").",
    "E4": "Set \"architecture\" to a base architecture id of the target WanGP ('wangp list --architectures' "
          "lists them); to build "
          "on a finetune, use its architecture and reference it with \"URLs\": \"<id>\".",
    "E5": "Give \"model\" a non-empty \"URLs\" list of checkpoint URLs (or a string naming a definition whose "
          "files it reuses).",
    "E6": "Point the string reference at an existing definition or base architecture id, without loops and at "
          "most 10 levels deep, or write the list of URLs out.",
    "E7": "Write each entry as an http(s) URL without a user name or password in it, or as a usable local path; "
          "keep file names within 255 bytes.",
    "E8": "Name a module id that exists (a definition with exactly one module), or give the module's URLs.",
    "E9": "Add \"seed\": -1 (random) to the settings: WanGP 6.x fails without it.",
    "E10": "Give the setting the JSON type WanGP expects (the message names it), or remove the setting.",
    "E11": "Make \"loras_multipliers\" a list of numbers (or WanGP phase strings such as \"1;0\"), at most one "
           "per entry of \"loras\".",
    "E12": "Keep local paths inside the home folder (relative names under ckpts/), or use a URL.",
    "E13": "Give the model key the JSON type WanGP expects; the message names it.",
    "E14": "Replace NaN, Infinity, numbers beyond a double (1e999) and lone surrogate escapes with values strict "
           "JSON can hold.",
    "W1": "Name checkpoints with a lower-case dtype token (_bf16 or _fp16) and a lower-case quantization token "
          "(_quanto_bf16_int8): WanGP picks files by these tokens.",
    "W2": "Give every entry its own file name (entries land in ckpts/ by file name) and keep query strings out "
          "of the file name.",
    "W3": "Remove the files WanGP never selects, or give each variant (bf16, fp16, int8, fp8) one file.",
    "W4": "Write Hugging Face URLs as https://huggingface.co/<owner>/<repo>/resolve/main/<path> with a "
          "lower-case scheme.",
    "W5": "Replace local paths with download URLs before sharing the definition.",
    "W6": "Remove \"auto_quantize\" (WanGP ignores it with \"modules\"), or ship a quantized file.",
    "W7": "Remove the key, or fix its spelling (the message names the closest known key); keys of a later WanGP "
          "need a later --target.",
    "W8": "Choose a value inside WanGP's range or among the model's choices (the message names them).",
    "W9": "Rename the file unless it is meant to replace that built-in definition (WanGP merges it over it).",
    "W10": "Expect problems: WanGP does not test finetunes of this architecture (LTX Video has none).",
    "W11": "Rename \"base\" to \"architecture\".",
    "W12": "Remove the duplicate key: JSON keeps only its last value.",
    "W13": "Add the referenced definition to defaults/ so that wangp can follow the reference (WanGP 12 has it "
           "built in), or reference a definition the repository holds.",
}


_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|~])")


def _markdown(text: str) -> str:
    """Plain text as literal CommonMark (``<owner>`` stays text, not an HTML tag)."""
    return _MARKDOWN.sub(r"\\\1", text)


def _level(code: str) -> str:
    return "error" if code.startswith("E") else "warning"


def _rule(code: str) -> dict:
    meaning, fix = CODES[code], HELP[code]
    kind = "Error" if code.startswith("E") else "Warning"
    effect = "fails validation (exit 1)" if code.startswith("E") else "fails validation only with --strict"
    return {
        "id": code,
        "shortDescription": {"text": meaning},
        "fullDescription": {"text": f"{kind} {code}: {meaning}. It {effect}."},
        "help": {
            "text": f"{fix}\n\nAll codes: {DOCS} in wangp.",
            "markdown": f"**{code}**: {_markdown(meaning)}.\n\n**How to fix:** {_markdown(fix)}\n\n"
                        f"All codes: `{DOCS}` in wangp.",
        },
        "defaultConfiguration": {"level": _level(code)},
        "properties": {"tags": ["wangp", "finetune-definition"]},
    }


def artifact_location(path: str, base: str | os.PathLike | None = None) -> dict:
    """``{"uri", "uriBaseId"}`` for a reported path: relative to ``base`` (the current folder) under
    ``%SRCROOT%``, percent-encoded with ``/`` separators; an absolute ``file:`` URI outside it; standard input
    has no URI, only a description."""
    if path == "<stdin>":
        return {"description": {"text": "standard input"}}
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, os.path.abspath(base if base is not None else os.curdir))
    if relative == os.pardir or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
        return {"uri": Path(absolute).as_uri()}
    return {"uri": quote(Path(relative).as_posix(), safe="/"), "uriBaseId": SRCROOT}


def _result(d, index: dict[str, int], base) -> dict:
    region = {"startLine": d.line, "startColumn": d.column}
    if d.end_line is not None and d.end_column is not None and (d.end_line, d.end_column) >= (d.line, d.column):
        region.update(endLine=d.end_line, endColumn=d.end_column)
    text = d.message + (f"\nhelp: {d.hint}" if d.hint else "")
    result = {
        "ruleId": d.code,
        "level": _level(d.code),
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(d.path, base), "region": region}}],
    }
    if d.code in index:
        result["ruleIndex"] = index[d.code]
    return result


def as_sarif(report: Report, *, base: str | os.PathLike | None = None) -> str:
    """The SARIF 2.1.0 log of ``report`` as JSON text (no final newline)."""
    codes = list(CODES)
    index = {code: i for i, code in enumerate(codes)}
    return json_text({
        "$schema": SCHEMA_URI,
        "version": VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "wangp",
                "version": __version__,
                "semanticVersion": __version__,
                # informationUri is left out: the schema wants an absolute URI and the project has no public
                # address yet; the rules' help names docs/diagnostics.md instead.
                "rules": [_rule(code) for code in codes],
            }},
            # wangp counts columns in characters (code points), not in UTF-16 units (SARIF's default).
            "columnKind": "unicodeCodePoints",
            "results": [_result(d, index, base) for d in report.diagnostics],
        }],
    }, indent=2)


def is_own_log(head: str) -> bool:
    """Whether the start of a file is a log :func:`as_sarif` wrote (another tool's SARIF is not)."""
    return _OWN_HEAD.match(head.lstrip()) is not None
