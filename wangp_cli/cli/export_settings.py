"""``wangp export-settings``: settings files in WanGP's own format."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from wangp_cli.cli._options import (
    Dtype, DtypeOption, ModelIdArgument, Quantization, QuantizationOption, Target, TargetOption,
)
from wangp_cli.cli._output import emit_json, handle_errors, log, open_catalog, warn


def _warn_not_strict(data: dict) -> None:
    """Values strict JSON cannot carry are written as null / ``\\udXXX`` escapes: say so, once per value."""
    from wangp_cli.core.schema import NON_FINITE, strict_json_problems

    for path, _, what in strict_json_problems(data):
        written = "null" if what == NON_FINITE else "an escape"
        warn(f"'{path[0]}' holds {what}: written as {written} (run 'wangp validate' on the definition)")


@handle_errors
def export_settings_command(
    ctx: typer.Context,
    model_id: ModelIdArgument,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the export to this file.",
                                                  show_default=False)] = None,
    write: Annotated[bool, typer.Option("--write", help="Store settings/<id>_settings.json (WanGP's per-model "
                                                        "defaults) instead of printing an export.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    quantization: QuantizationOption = Quantization.int8,
    dtype: DtypeOption = Dtype.bf16,
    target: TargetOption = Target.v12,
) -> None:
    """Print a model's settings as WanGP's "Export Settings" writes them (loadable by WanGP and `wgp.py --process`).

    Examples: wangp export-settings t2v_fusionix -o fusionix.json; wangp export-settings t2v --write
    """
    from wangp_cli.core.errors import UsageError
    from wangp_cli.core.jsonio import write_json
    from wangp_cli.core.models import choose_transformer
    from wangp_cli.core.outputs import check_output_file
    from wangp_cli.core.settings import export_settings
    from wangp_cli.core.variants import Preference

    if write and output:
        raise UsageError("conflicting options: --write stores settings/<id>_settings.json, -o writes an export",
                         hint="pass one of them")
    if output:  # a directory, a long name or a read-only folder is refused before any work
        check_output_file(output, force=True, kind="settings export")
    catalog = open_catalog(ctx, target.value)
    definition = catalog.get(model_id)
    if write:
        path = catalog.home.settings_file(definition.id)
        data = export_settings(definition, catalog, "", form="settings")
        _warn_not_strict(data)
        write_json(path, data, overwrite=force)
        log(ctx, f"wrote {path}")
        return
    transformer = choose_transformer(catalog, definition, Preference(quantization.value, dtype.value))
    # WanGP 12 writes the raw chosen entry (a URL for hub files); WanGP 6/7 wrote the local path
    data = export_settings(definition, catalog, transformer["entry"] if target == Target.v12 else transformer["path"])
    _warn_not_strict(data)
    if output:
        write_json(output, data, overwrite=force)
        log(ctx, f"wrote {output}")
    else:
        emit_json(data, indent=4)  # WanGP's own layout


def register(app: typer.Typer) -> None:
    app.command("export-settings")(export_settings_command)
