"""Write README.md's architecture table: every WanGP 12 base type with what wangp does with it.

Usage::

    .venv/bin/python tools/architecture_table.py [--defaults ../shared/wangp-head/defaults] [--check]

Status, per base type (``wangp_cli/core/data/base_types_v12.json`` and the families in ``wangp_cli/families``):

- ``generate``: a family generates it (the diffusers pipeline it runs); ``list``/``show``/``validate``/``download``/
  ``export-settings`` apply to every type;
- ``refused``: a family knows it but refuses to generate it (``Family.refused`` says why);
- ``download-only``: no family generates it, because diffusers has no pipeline for it (WanGP-only) or because
  wangp has not wired diffusers' pipeline yet (named).

``--defaults DIR`` counts WanGP's own definitions per base type (a definition naming another definition counts for
that one's base type); without it the count column keeps what README.md has. ``--check`` exits 1 when README.md
differs (``tests/core/test_architecture_table.py`` checks the statuses). A maintainer tool: the package never
imports it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from wangp_cli.core.registry import architecture_ids, get_architecture  # noqa: E402
from wangp_cli.families import FAMILIES, family_for_architecture  # noqa: E402

README = REPO_ROOT / "README.md"
START, END = "<!-- architectures:start -->", "<!-- architectures:end -->"
HEADER = ("| base type | name | family | output | WanGP defs | status | how / why |\n"
          "|---|---|---|---|---|---|---|")


def status(arch_id: str) -> tuple[str, str]:
    """(status, how or why) of one base type."""
    arch = get_architecture(arch_id, "v12")
    refusing = next((f for f in FAMILIES.values() if arch_id in f.refused), None)
    if refusing is not None:
        return "refused", refusing.refused[arch_id]
    family = family_for_architecture(arch_id)
    if family is not None:
        return "generate", f"`{family.architectures[arch_id].pipeline}` ({family.title})"
    if arch.pipeline:
        return "download-only", f"diffusers has `{arch.pipeline}`; not wired in wangp yet"
    return "download-only", "WanGP-only: diffusers has no pipeline for it"


def count_definitions(folder: Path) -> dict[str, int]:
    """WanGP's definitions per base type (``architecture`` followed through other definitions)."""
    named = {}
    for path in sorted(folder.glob("*.json")):
        try:
            model = json.loads(path.read_text(encoding="utf-8")).get("model", {})
        except (OSError, ValueError):
            continue
        named[path.stem] = model.get("architecture") if isinstance(model, dict) else None
    bases = set(architecture_ids("v12"))
    counts: dict[str, int] = {}
    for definition, arch in named.items():
        seen = set()
        while arch not in bases and arch in named and arch not in seen:
            seen.add(arch)
            arch = named[arch]
        if arch in bases:
            counts[arch] = counts.get(arch, 0) + 1
    return counts


def current_counts(text: str) -> dict[str, str]:
    """The count column of README.md's table as it is."""
    return {m[1]: m[2] for m in re.finditer(r"^\| `([^`]+)` \|[^|]*\|[^|]*\|[^|]*\| (\S*) \|", text, re.M)}


def table(counts: dict) -> str:
    rows = []
    for arch_id in sorted(architecture_ids("v12"), key=lambda a: (get_architecture(a, "v12").family, a)):
        arch = get_architecture(arch_id, "v12")
        state, why = status(arch_id)
        name = arch.name.replace("|", "/")
        rows.append(f"| `{arch_id}` | {name} | {arch.family} | {arch.output}{' + audio' if arch.audio else ''} | "
                    f"{counts.get(arch_id, 0)} | {state} | {why} |")
    generated = sum(status(a)[0] == "generate" for a in architecture_ids("v12"))
    return (f"{len(rows)} base types; wangp generates {generated}.\n\n" + HEADER + "\n" + "\n".join(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defaults", type=Path, help="WanGP's defaults/ folder (counts the definitions)")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is not current")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    counts = count_definitions(args.defaults) if args.defaults else current_counts(text)
    updated = head + START + "\n" + table(counts) + "\n" + END + tail
    if args.check:
        return 0 if updated == text else 1
    README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
