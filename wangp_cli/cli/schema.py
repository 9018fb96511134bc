"""``wangp schema``: the JSON Schema of a definition, for editors (``"$schema"``) and other tools."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from wangp_cli.cli._options import Target, TargetOption
from wangp_cli.cli._output import emit_json, handle_errors, log


@handle_errors
def schema_command(
    ctx: typer.Context,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file instead of stdout "
                                                  "(an earlier schema is replaced; anything else needs --force).")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Let -o replace a file that is not a schema.")] = False,
    target: TargetOption = Target.v12,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a finetune definition.

    Examples: wangp schema > definition.schema.json
    """
    from wangp_cli.core.jsonio import write_json
    from wangp_cli.core.outputs import check_output_file
    from wangp_cli.core.schema import definition_schema, is_schema_file

    if output:
        check_output_file(output, force=force, kind="JSON Schema", is_own_kind=is_schema_file)
        write_json(output, definition_schema(target.value), indent=2)
        log(ctx, f"wrote {output}")
    else:
        emit_json(definition_schema(target.value))


def register(app: typer.Typer) -> None:
    app.command("schema")(schema_command)
