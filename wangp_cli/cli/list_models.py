"""``wangp list``: the definitions of the home folder, or the base architectures."""

from __future__ import annotations

from typing import Annotated

import typer

from wangp_cli.cli._options import DataFormat, FormatOption, Target, TargetOption
from wangp_cli.cli._output import emit, emit_json, handle_errors, open_catalog, warn
from wangp_cli.cli._tables import print_table


@handle_errors
def list_command(
    ctx: typer.Context,
    architectures: Annotated[bool, typer.Option("--architectures", help="List the base architecture ids.")] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include definitions with \"visible\": false.")] = False,
    target: TargetOption = Target.v12,
    format: FormatOption = DataFormat.text,
) -> None:
    """List the definitions (id, name, architecture, family, output, class, variants present in ckpts/).

    Definitions that cannot be used are marked (invalid), files that cannot be read are skipped; both are named
    on stderr.

    Examples: wangp list; wangp list --all --format json; wangp list --architectures
    """
    from wangp_cli.core.models import list_architectures, list_models

    if architectures:
        rows = list_architectures(target.value)
        if format is DataFormat.json:
            emit_json({"schema": "wangp.architectures/1", "target": target.value, "architectures": rows})
        elif target is Target.v12:
            print_table(["id", "name", "family", "output", "class", "fps", "frames", "generate", "pipeline"],
                        [[r["id"], r["name"], r["family"], r["output"], r["class"], str(r["fps"]),
                          "{}+{}k".format(*r["frames"]), "yes" if r["generate"] else "-", r["pipeline"] or "-"]
                         for r in rows])
        else:
            print_table(["id", "name", "family", "class", "fps", "modules", "components"],
                        [[r["id"], r["name"], r["family"], r["class"], str(r["fps"]), ",".join(r["modules"]) or "-",
                          r["diffusers_repo"] or "-"] for r in rows])
        return
    catalog = open_catalog(ctx, target.value)
    for source in catalog.broken:
        warn(f"{source.display} {source.definition_problem}: skipped (run: wangp validate {source.display})")
    rows = list_models(catalog, include_hidden=all_)
    for row in rows:
        if row["problem"]:
            warn(f"'{row['id']}' {row['problem']} (run: wangp validate {row['source'] or row['id']})")
    if format is DataFormat.json:
        emit_json({"schema": "wangp.list/1", "home": str(catalog.home.root), "definitions": rows})
        return
    if not rows:
        emit(f"No definitions in {catalog.home.finetunes}.")
        return
    table = []
    v12 = target is Target.v12
    for row in rows:
        present = [v["label"] for v in row["variants"] if v["present"]]
        marks = " (hidden)" * (not row["visible"]) + " (invalid)" * bool(row["problem"])
        table.append([row["id"] + marks, row["name"], row["architecture"] or "-", row["family"] or "?"]
                     + [row["output"] or "?"] * v12 + [row["class"] or "?", ", ".join(present) or "-"])
    print_table(["id", "name", "architecture", "family"] + ["output"] * v12 + ["class", "present"], table)


def register(app: typer.Typer) -> None:
    app.command("list")(list_command)
