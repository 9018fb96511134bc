"""``wangp gallery``: a batch's results as one self-contained HTML page (logic in wangp_cli.batch.gallery)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from wangp_cli.cli._options import DataFormat, FormatOption
from wangp_cli.cli._output import emit, emit_json, handle_errors, log, warn


@handle_errors
def gallery_command(
    ctx: typer.Context,
    results: Annotated[str, typer.Argument(help="The results JSONL of a 'wangp generate --manifest' run.",
                                           show_default=False)],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="The HTML file to write (default: "
                                                  "gallery.html beside the results file).", show_default=False)]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file at -o.")] = False,
    thumb_width: Annotated[int, typer.Option("--thumb-width", help="Thumbnail width in pixels (32..1024).")]
    = 256,
    format: FormatOption = DataFormat.text,
) -> None:
    """Write one HTML page showing every job of a results file: its first frame (or image), prompt, model,
    seed, timings, status and a link to the file.

    The page is self-contained: thumbnails are embedded (JPEG data: URIs made with ffmpeg), there is no
    script, and it loads nothing from the network. One card per job id (its latest record: a rerun's
    'skipped' shows the run that made the file). Lines that are not job records are skipped with a warning.

    Examples: wangp gallery outputs/results.jsonl; wangp gallery results.jsonl -o gallery.html --force
    """
    from pathlib import Path

    from wangp_cli.batch.gallery import write_gallery

    done = write_gallery(Path(results), output, force=force, width=thumb_width)
    for line in done["skipped_lines"]:
        warn(f"{results}: skipped {line}")
    if format is DataFormat.json:
        emit_json(done)
        return
    counts = ", ".join(f"{done[s]} {s}" for s in ("ok", "skipped", "failed", "invalid", "other") if done.get(s))
    log(ctx, f"{done['thumbnails']} thumbnail(s); {done['missing_files']} output file(s) not found")
    emit(f"wrote {done['output']}: {done['jobs']} job(s){': ' + counts if counts else ''}; "
         f"{done['bytes']:,} bytes in {done['seconds_taken']:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("gallery")(gallery_command)
