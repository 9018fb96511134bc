"""``wangp doctor``: versions, device, memory, attention kernels, the profile per architecture, and an offline
generation self-test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wangp_cli.cli._options import DataFormat, FormatOption
from wangp_cli.cli._output import emit, emit_json, handle_errors, settings
from wangp_cli.core.errors import UsageError, WangpError

GIB = 1024**3


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


def _attention_line(attention: dict) -> str:
    installed = [name for name, present in attention["installed"].items() if present]
    absent = [name for name, present in attention["installed"].items() if not present]
    auto = ", ".join(f"{name} for {family}" for family, name in attention["auto"].items())
    return (f"usable here {', '.join(attention['usable'])}; installed {', '.join(installed)}"
            + (f"; not installed {', '.join(absent)}" if absent else "") + f"; auto: {auto}")


def _profile_lines(profiles: dict | None) -> list[str]:
    """The per-architecture table (profile picked at 480p / 720p, 16-bit / int8, and the weights' size)."""
    if profiles is None:
        return [f"{'profiles':<16}no CUDA GPU: 'wangp doctor --vram 24' shows what a 24 GiB card would get"]
    sizes = profiles["sizes"]
    where = "--vram" if profiles["source"] == "--vram" else "this GPU's free VRAM"
    lines = [f"{'profiles':<16}for {_gib(profiles['vram_bytes'])} ({where}); "
             + ", ".join(f"{name} = {w}x{h}, {frames} frames" for name, (w, h, frames) in sizes.items())
             + " (image models: one frame)"]
    columns = [(size, weights) for size in sizes for weights in ("16-bit", "int8")]
    width = max([len("architecture")] + [len(arch_id) for arch_id in profiles["architectures"]]) + 2
    lines.append("  " + f"{'architecture':<{width}}" + "".join(f"{size + ' ' + weights:<13}"
                                                             for size, weights in columns) + "weights 16-bit / int8")
    for arch_id, plan in profiles["architectures"].items():
        first = next(iter(plan.values()))
        lines.append("  " + f"{arch_id:<{width}}" + "".join(f"{plan[size][weights]['profile']:<13}"
                                                       for size, weights in columns)
                     + f"{_gib(first['16-bit']['bytes'])} / {_gib(first['int8']['bytes'])}")
    return lines


@handle_errors
def doctor_command(
    ctx: typer.Context,
    self_test: Annotated[bool, typer.Option("--self-test/--no-self-test", help="Generate a few frames with a "
                                            "tiny random model through the same code path (offline).")] = True,
    vram: Annotated[Optional[float], typer.Option(metavar="GIB", help="Plan the profiles for a GPU with this many "
                                                  "GiB of free VRAM instead of this machine's (e.g. --vram 24).",
                                                  show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="DIR", help="Keep the self-test's "
                                                  "mp4 and its JSON sidecar in this folder (e.g. outputs) and print "
                                                  "its path and stage timings.", show_default=False)] = None,
    format: FormatOption = DataFormat.text,
) -> None:
    """Report versions, the GPU (capability, free VRAM, bf16), RAM, the attention kernels installed, the profile
    generate would pick for each architecture at 480p and 720p, and run an offline self-test of generation
    (--output DIR keeps its video)."""
    if vram is not None and not 0 < vram < 1e6:
        raise UsageError(f"--vram {vram}: a number of GiB above 0", hint="e.g. --vram 24")
    if output is not None and not self_test:
        raise UsageError("--output keeps the self-test's video: it cannot be combined with --no-self-test",
                         hint="wangp doctor --output outputs")
    from wangp_cli.generate.doctor import environment_report, self_test as run_self_test
    from wangp_cli.generate.engine import quiet_libraries

    if settings(ctx).verbose == 0:
        quiet_libraries()

    report = environment_report(vram)
    if self_test:
        report["self_test"] = run_self_test(output=Path(output) if output is not None else None)
    if format is DataFormat.json:
        emit_json(report)
    else:
        for key, value in report["versions"].items():
            emit(f"{key:<16}{value}")
        device = report["device"]
        if device.get("capability"):
            count = f", {device['count']} GPUs" if device["count"] > 1 else ""
            emit(f"{'device':<16}{device['name']} (compute capability {device['capability']}, bf16 "
                 f"{'yes' if device['bf16'] else 'no'}{count})")
        else:
            emit(f"{'device':<16}{device['name']}")
        if device.get("vram_free_bytes") is not None:
            emit(f"{'VRAM free':<16}{device['vram_free_bytes'] / GIB:.1f} of {_gib(device['vram_total_bytes'])}")
        emit(f"{'RAM available':<16}{_gib(report['ram_available_bytes'])}")
        emit(f"{'ffmpeg':<16}{report['ffmpeg']}")
        emit(f"{'attention':<16}{_attention_line(report['attention'])}")
        for line in _profile_lines(report["profiles"]):
            emit(line)
        if self_test:
            test = report["self_test"]
            state = "ok" if test["ok"] else f"FAILED: {test['error']}"
            emit(f"{'self-test':<16}{state} ({test.get('frames', 0)} frames "
                 f"{test.get('width', 0)}x{test.get('height', 0)} in {test['seconds']:.1f} s)")
            if test.get("timings"):
                emit(f"{'stages':<16}" + ", ".join(f"{name} {seconds:.2f} s"
                                                   for name, seconds in test["timings"].items()))
            if test.get("path"):
                emit(f"{'video':<16}{test['path']}")
    if self_test and not report["self_test"]["ok"]:
        raise WangpError("the generation self-test failed", code="self-test",
                         hint="rerun with WANGP_DEBUG=1 and -v for details")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
