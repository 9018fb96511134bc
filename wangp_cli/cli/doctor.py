"""``wangp doctor``: versions, device, memory, and an offline generation self-test."""

from __future__ import annotations

from typing import Annotated

import typer

from wangp_cli.cli._options import DataFormat, FormatOption
from wangp_cli.cli._output import emit, emit_json, handle_errors, settings
from wangp_cli.core.errors import WangpError


@handle_errors
def doctor_command(
    ctx: typer.Context,
    self_test: Annotated[bool, typer.Option("--self-test/--no-self-test", help="Generate a few frames with a "
                                            "tiny random model through the same code path (offline).")] = True,
    format: FormatOption = DataFormat.text,
) -> None:
    """Report versions, the device, free VRAM and RAM, and run an offline self-test of generation."""
    from wangp_cli.generate.doctor import environment_report, self_test as run_self_test
    from wangp_cli.generate.engine import quiet_libraries

    if settings(ctx).verbose == 0:
        quiet_libraries()

    report = environment_report()
    if self_test:
        report["self_test"] = run_self_test()
    if format is DataFormat.json:
        emit_json(report)
    else:
        for key, value in report["versions"].items():
            emit(f"{key:<16}{value}")
        device = report["device"]
        emit(f"{'device':<16}{device['name']}")
        if device.get("vram_free_bytes") is not None:
            emit(f"{'VRAM free':<16}{device['vram_free_bytes'] / 1024**3:.1f} of "
                 f"{device['vram_total_bytes'] / 1024**3:.1f} GiB")
        emit(f"{'RAM available':<16}{report['ram_available_bytes'] / 1024**3:.1f} GiB")
        emit(f"{'ffmpeg':<16}{report['ffmpeg']}")
        if self_test:
            test = report["self_test"]
            state = "ok" if test["ok"] else f"FAILED: {test['error']}"
            emit(f"{'self-test':<16}{state} ({test.get('frames', 0)} frames "
                 f"{test.get('width', 0)}x{test.get('height', 0)} in {test['seconds']:.1f} s)")
    if self_test and not report["self_test"]["ok"]:
        raise WangpError("the generation self-test failed", code="self-test",
                         hint="rerun with WANGP_DEBUG=1 and -v for details")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
