"""``wangp gallery``: one self-contained HTML page of a batch's results file (docs/gallery.md).

Each job of the results JSONL a ``wangp generate --manifest`` run wrote becomes a card: a thumbnail of its
image or of its video's first frame (a JPEG decoded and scaled by ffmpeg, embedded as a ``data:`` URI), its
prompt, model, seed, timings and status, and a link to the file. The page loads nothing: no script, no URL
but ``data:`` in any ``src``, and a Content-Security-Policy that lets a browser fetch nothing else.

Only the standard library and imageio-ffmpeg's ffmpeg binary are used (no torch, numpy or Pillow).
"""

from __future__ import annotations

import base64
import html
import json
import os
import stat
import subprocess
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.core.outputs import OutputError, check_output_file
from wangp_cli.core.safety import clean

SCHEMA = "wangp.gallery/1"
THUMB_WIDTH = 256
THUMB_WIDTHS = (32, 1024)
#: Files whose first frame ffmpeg can decode (a video's first frame, or the image itself).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: One thumbnail's decode may take this long (a huge or broken file gets a placeholder, not a hang).
FFMPEG_TIMEOUT = 60
#: A sidecar larger than this is not read (ours are a few kB).
MAX_SIDECAR = 4 << 20
STAGES = ("download", "load", "encode", "denoise", "decode", "save")
STATUS_ORDER = ("ok", "skipped", "failed", "invalid")
#: The browser may fetch nothing: images only from data: URIs, styles only inline, no script at all.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


class GalleryError(WangpError):
    def __init__(self, message: str, *, code: str = "gallery", hint: str = ""):
        super().__init__(message, code=code, hint=hint, exit_code=1)


@dataclass
class Entry:
    """One job: its latest record, and the record (of this file, or the sidecar) that made its output."""

    record: dict
    line: int
    records: int = 1  # how many lines of the file are about this id
    made_by: dict | None = None  # the ``ok`` record (or the sidecar) with the seed and timings of the output
    path: Path | None = None
    thumbnail: bytes | None = None
    note: str = ""


@dataclass
class Results:
    entries: list[Entry] = field(default_factory=list)
    lines: int = 0  # records read
    skipped_lines: list[str] = field(default_factory=list)  # "line 7: not JSON (...)"


def read_results(path: Path) -> Results:
    """The records of a results file, one per id (its latest line; the first appearance keeps the order).

    Blank lines are skipped. A line that is not a JSON object with an ``id`` and a ``status`` (half a record
    left by a killed run, say) is skipped and named in ``skipped_lines``; a file where no line is a record is
    refused (it is not a results file)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GalleryError(f"results file '{path}' not found", code="not-found",
                           hint="name the results.jsonl a 'wangp generate --manifest' run wrote "
                                "(by default in its output folder)") from None
    except IsADirectoryError:
        raise GalleryError(f"'{path}' is a folder, not a results file", code="is-directory",
                           hint=f"name the file, e.g. {path / 'results.jsonl'}") from None
    results = Results()
    by_id: dict[str, Entry] = {}
    nonblank = 0
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        nonblank += 1
        try:
            record = json.loads(line)
        except ValueError as exc:
            results.skipped_lines.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or "status" not in record:
            results.skipped_lines.append(f"line {number}: not a job record (needs 'id' and 'status')")
            continue
        results.lines += 1
        job_id = record["id"]
        entry = by_id.get(job_id)
        if entry is None:
            entry = by_id[job_id] = Entry(record, number)
            results.entries.append(entry)
        else:
            entry.records += 1
            entry.record, entry.line = record, number
        if record.get("status") == "ok":
            entry.made_by = record
    if nonblank and not results.lines:
        raise GalleryError(f"'{path}' holds no job record: {results.skipped_lines[0]}", code="not-results",
                           hint="name the results.jsonl a 'wangp generate --manifest' run wrote")
    return results


def output_of(record: dict, folder: Path) -> Path | None:
    """The record's output file: its ``path`` as written (absolute: runs resolve their output folder), a
    relative one from the results file's folder, else from the current folder."""
    raw = record.get("path")
    if not isinstance(raw, str) or not raw or "\0" in raw:
        return None
    path = Path(raw)
    if path.is_absolute():
        return path
    beside = folder / path
    return beside if beside.exists() or not path.exists() else path.absolute()


def _sidecar(path: Path) -> dict | None:
    """The JSON sidecar wangp writes next to each output (``<id>.json``), or None."""
    sidecar = path.with_suffix(".json")
    try:
        if sidecar.stat().st_size > MAX_SIDECAR:
            return None
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_ffmpeg() -> str | None:
    """imageio-ffmpeg's ffmpeg (``IMAGEIO_FFMPEG_EXE`` overrides it), else one on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        import shutil

        return shutil.which("ffmpeg")


def thumbnail(ffmpeg: str, path: Path, width: int = THUMB_WIDTH) -> bytes:
    """A JPEG of the first frame of ``path`` (video or image), ``width`` pixels wide at most, aspect kept.

    ffmpeg decodes and scales (no Python image library needed); raises GalleryError saying why not."""
    # one thread each: the files are done in parallel, one process per file
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-threads", "1", "-i", str(path),
               "-map", "0:v:0", "-frames:v", "1", "-vf", f"scale='min({width},iw)':-2:flags=bicubic",
               "-threads", "1", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "5", "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise GalleryError(f"no first frame within {FFMPEG_TIMEOUT} s") from None
    except OSError as exc:
        raise GalleryError(f"cannot run ffmpeg: {exc.strerror or exc}") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise GalleryError("cannot decode its first frame" + (f": {lines[-1]}" if lines else ""))
    return done.stdout


def _preview(entry: Entry, ffmpeg: str | None, width: int) -> None:
    """Fill in ``entry.thumbnail`` (or ``entry.note`` saying why there is none)."""
    path, status = entry.path, entry.record.get("status")
    if status not in ("ok", "skipped"):  # failed or invalid: no output of this run to show
        return
    if path is None:
        entry.note = "the record names no output file"
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        entry.note = "file not found"
        return
    if not stat.S_ISREG(mode):
        entry.note = "not a regular file"
    elif path.suffix.lower() not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
        entry.note = f"no preview for {path.suffix or 'a file without suffix'}"
    elif ffmpeg is None:
        entry.note = "no preview: ffmpeg not found (pip install imageio-ffmpeg)"
    else:
        try:
            entry.thumbnail = thumbnail(ffmpeg, path, width)
        except GalleryError as exc:
            entry.note = exc.message


def prepare(results: Results, folder: Path, *, width: int = THUMB_WIDTH, workers: int | None = None) -> None:
    """Resolve every entry's file, read the sidecars where the file lacks the output's record, and make the
    thumbnails (ffmpeg runs in parallel: one process per file)."""
    ffmpeg = find_ffmpeg()
    for entry in results.entries:
        entry.path = output_of(entry.record, folder)
        if entry.made_by is None and entry.path is not None and entry.record.get("status") == "skipped":
            entry.made_by = _sidecar(entry.path)
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda entry: _preview(entry, ffmpeg, width), results.entries))


# --- the page ------------------------------------------------------------------------------------------------


def text(value) -> str:
    """Text for the page: secrets redacted, control characters as visible escapes (newlines kept), HTML
    escaped."""
    lines = str(value).replace("\r\n", "\n").split("\n")
    return html.escape("\n".join(clean(line) for line in lines), quote=True)


def href(target: Path, out_dir: Path) -> str:
    """A link to ``target`` from a page in ``out_dir``: relative where it can be, percent-encoded."""
    try:
        relative = os.path.relpath(target, out_dir)
    except ValueError:  # another drive (Windows)
        return html.escape(target.as_uri(), quote=True)
    # percent-encoded bytes (the file system's own, so an undecodable name still links); ':' is encoded too, so
    # a first segment like 'a:b.mp4' is never read as a URL scheme
    return html.escape(urllib.parse.quote(os.fsencode(relative.replace(os.sep, "/")), safe="/"), quote=True)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def job_seconds(entry: Entry) -> float | None:
    """The time that made the job's output: the record's ``seconds`` (of the run that made it), else the sum of
    its stage timings (a sidecar has no total)."""
    source = entry.made_by or entry.record
    seconds = _number(source.get("seconds"))
    if seconds is None and source is not entry.record:
        seconds = _number(entry.record.get("seconds"))
    if seconds is None:
        stages = [_number(v) for v in _timings(entry).values()]
        seconds = sum(v for v in stages if v is not None) if stages else None
    return seconds


def _timings(entry: Entry) -> dict:
    for source in (entry.record, entry.made_by or {}):
        timings = source.get("timings")
        if isinstance(timings, dict) and timings:
            return timings
    return {}


def _seconds_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def _memory_text(peak) -> str:
    if not isinstance(peak, dict):
        return ""
    parts = []
    for key, name in (("vram_bytes", "VRAM"), ("ram_bytes", "RAM")):
        value = _number(peak.get(key))
        if value is not None:
            parts.append(f"{name} {value / 2 ** 30:.2f} GiB")
    return ", ".join(parts)


def _field(record: dict, fallback: dict | None, key: str):
    value = record.get(key)
    if value is None and fallback:
        value = fallback.get(key)
    return value


STYLE = """
:root{color-scheme:light dark;--bg:#f6f6f4;--card:#fff;--ink:#1d1d1f;--dim:#6b6b70;--line:#d9d9de;
--ok:#1f7a3a;--skipped:#5b5f97;--failed:#b3261e;--invalid:#9a6700}
@media (prefers-color-scheme:dark){:root{--bg:#141416;--card:#1f1f23;--ink:#ececf0;--dim:#9d9da6;--line:#34343a}}
*{box-sizing:border-box}
body{margin:0;padding:1.5rem;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,sans-serif}
header{margin-bottom:1.25rem}
h1{font-size:1.3rem;margin:0 0 .4rem}
.summary{margin:.2rem 0;color:var(--dim)}
.summary b{color:var(--ink)}
.jumps a{margin-right:.6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:1rem;margin:0;padding:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden;
display:flex;flex-direction:column}
.card.failed,.card.invalid{border-color:var(--failed)}
.thumb{display:block;aspect-ratio:16/10;background:#0003;overflow:hidden}
.thumb img{display:block;width:100%;height:100%;object-fit:contain}
.placeholder{display:flex;align-items:center;justify-content:center;text-align:center;padding:1rem;
color:var(--dim);font-style:italic}
.body{padding:.6rem .75rem .75rem}
.card h2{font-size:.95rem;margin:0 0 .35rem;word-break:break-all}
.badge{display:inline-block;font-size:.75rem;font-weight:600;padding:.05rem .45rem;border-radius:99px;
color:#fff;margin-left:.35rem;vertical-align:1px}
.badge.ok{background:var(--ok)}.badge.skipped{background:var(--skipped)}
.badge.failed{background:var(--failed)}.badge.invalid{background:var(--invalid)}
.prompt{white-space:pre-wrap;word-break:break-word;margin:.2rem 0 .5rem;max-height:9.5em;overflow:auto}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;margin:0;font-size:.85rem}
dt{color:var(--dim)}dd{margin:0;word-break:break-word}
.error{white-space:pre-wrap;word-break:break-word;color:var(--failed);margin:.5rem 0 0;font-size:.85rem}
.note{color:var(--dim);margin:.4rem 0 0;font-size:.85rem}
.file{display:block;margin-top:.5rem;font-size:.85rem;word-break:break-all}
"""


def _card(number: int, entry: Entry, out_dir: Path) -> str:
    record, made = entry.record, entry.made_by
    status = record.get("status") if record.get("status") in STATUS_ORDER else "other"
    job_id = text(record.get("id"))
    shown = entry.path is not None and status in ("ok", "skipped") and entry.note != "file not found"
    link = href(entry.path, out_dir) if shown else None
    if entry.thumbnail is not None:
        data = base64.b64encode(entry.thumbnail).decode("ascii")
        image = f'<img src="data:image/jpeg;base64,{data}" alt="first frame of {job_id}">'
        thumb = f'<a class="thumb" href="{link}">{image}</a>' if link else f'<div class="thumb">{image}</div>'
    else:
        why = entry.note or {"failed": "failed: no output", "invalid": "invalid: not run"}.get(status, "no preview")
        thumb = f'<div class="thumb placeholder">{text(why)}</div>'
    rows = [("model", record.get("model"))]
    seed = _field(record, made, "seed")
    if isinstance(seed, bool) or not isinstance(seed, (int, str, type(None))):
        seed = None
    rows.append(("seed", "random (not drawn)" if seed is None and record.get("path") else seed))
    shape = [str(record[key]) for key in ("resolution",) if record.get(key)]
    for key, unit in (("frames", "frames"), ("steps", "steps")):
        if _number(record.get(key)) is not None:
            shape.append(f"{record[key]} {unit}")
    rows.append(("size", ", ".join(shape) or None))
    seconds = job_seconds(entry)
    if seconds is not None:
        timings = _timings(entry)
        stages = [f"{name} {_number(timings[name]):.1f}" for name in list(STAGES) + sorted(set(timings) - set(STAGES))
                  if _number(timings.get(name)) is not None]
        rows.append(("time", _seconds_text(seconds) + (f" ({', '.join(stages)})" if stages else "")))
        if status == "skipped":
            rows.append(("made", "by an earlier run" + (" (sidecar)" if made is not None and "status" not in made
                                                        else "")))
    rows.append(("memory", _memory_text(_field(record, made, "peak_memory")) or None))
    placement = [str(v) for v in (_field(record, made, "device"), _field(record, made, "profile")) if v]
    rows.append(("device", " / ".join(placement) or None))
    if record.get("retried_profile"):
        rows.append(("retried", f"profile {record['retried_profile']}"))
    if record.get("worker") is not None:
        rows.append(("worker", record.get("worker")))
    if entry.records > 1:
        rows.append(("records", f"{entry.records} lines (latest: line {entry.line})"))
    items = "".join(f"<dt>{name}</dt><dd>{text(value)}</dd>" for name, value in rows if value not in (None, ""))
    prompt = record.get("prompt")
    if prompt is None and made and isinstance(made.get("settings"), dict):
        prompt = made["settings"].get("prompt")
    parts = [f'<article class="card {status}" id="job-{number}">', thumb, '<div class="body">',
             f'<h2>{job_id}<span class="badge {status}">{text(record.get("status"))}</span></h2>',
             f'<p class="prompt">{text(prompt)}</p>' if prompt else '<p class="prompt note">(no prompt)</p>',
             f"<dl>{items}</dl>"]
    if record.get("error"):
        parts.append(f'<p class="error">{text(record.get("error"))}</p>')
    warnings = record.get("warnings")
    if isinstance(warnings, list):
        parts += [f'<p class="note">warning: {text(w)}</p>' for w in warnings]
    if entry.note and entry.thumbnail is None and entry.path is not None:
        parts.append(f'<p class="note">{text(entry.note)}: {text(entry.path)}</p>')
    if link:
        parts.append(f'<a class="file" href="{link}">{text(entry.path.name)}</a>')
    parts.append("</div></article>")
    return "".join(parts)


def summary(results: Results) -> dict:
    counts = {status: 0 for status in STATUS_ORDER}
    for entry in results.entries:
        status = entry.record.get("status")
        key = status if status in STATUS_ORDER else "other"
        counts[key] = counts.get(key, 0) + 1
    seconds = [job_seconds(e) for e in results.entries]
    return {"jobs": len(results.entries), **counts, "records": results.lines,
            "generation_seconds": round(sum(s for s in seconds if s is not None), 3),
            "thumbnails": sum(e.thumbnail is not None for e in results.entries),
            "missing_files": sum(e.note == "file not found" for e in results.entries),
            "skipped_lines": list(results.skipped_lines)}


def render(results: Results, results_path: Path, out_dir: Path) -> str:
    """The page (one string; nothing in it is fetched)."""
    counts = summary(results)
    title = f"wangp gallery: {results_path.name}"
    shown = ", ".join(f"<b>{counts[s]}</b> {s}" for s in STATUS_ORDER + ("other",) if counts.get(s))
    head = [f"<h1>{text(title)}</h1>",
            f'<p class="summary"><b>{counts["jobs"]}</b> job{"s" * (counts["jobs"] != 1)}'
            + (f": {shown}" if shown else "")
            + f"; generation time <b>{_seconds_text(counts['generation_seconds'])}</b> "
            f"(the sum of each job's); {counts['records']} record{'s' * (counts['records'] != 1)} read from "
            f"{text(results_path)}; written {time.strftime('%Y-%m-%d %H:%M:%S')}</p>"]
    if counts["missing_files"]:
        head.append(f'<p class="summary">{counts["missing_files"]} output file(s) not found</p>')
    for line in results.skipped_lines:
        head.append(f'<p class="summary">skipped {text(line)}</p>')
    failing = [(i, e) for i, e in enumerate(results.entries, 1) if e.record.get("status") in ("failed", "invalid")]
    if failing:
        jumps = "".join(f'<a href="#job-{i}">{text(e.record.get("id"))}</a>' for i, e in failing)
        head.append(f'<p class="summary jumps">not done: {jumps}</p>')
    cards = "\n".join(_card(i, e, out_dir) for i, e in enumerate(results.entries, 1))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width,initial-scale=1">\n'
            f"<meta name=\"generator\" content=\"{SCHEMA}\">\n"
            f"<title>{text(title)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
            f"<header>{''.join(head)}</header>\n<main class=\"cards\">\n{cards}\n</main>\n</body></html>\n")


def check_output(output: Path, results_path: Path, force: bool) -> None:
    """The page never replaces the results file, and an existing file only with ``--force`` (a folder, a long
    name, a read-only folder: refused, as for every -o)."""
    if output.exists() and results_path.exists() and os.path.samefile(output, results_path):
        raise OutputError(f"-o '{output}' is the results file", code="exists", hint="name an .html file")
    check_output_file(output, force=force, kind="gallery",
                      exists_hint="pass --force to replace it, or choose another name")


def write_gallery(results_path: str | os.PathLike, output: str | os.PathLike | None = None, *, force: bool = False,
                  width: int = THUMB_WIDTH, workers: int | None = None) -> dict:
    """Read the results, write the page (a temporary name, then a rename); the summary, with ``output``,
    ``bytes`` and ``seconds_taken``."""
    from wangp_cli.core.jsonio import atomic_write_text

    started = time.perf_counter()
    results_path = Path(results_path)
    output = Path(output) if output is not None else results_path.parent / "gallery.html"
    if not THUMB_WIDTHS[0] <= width <= THUMB_WIDTHS[1]:
        from wangp_cli.core.errors import UsageError

        raise UsageError(f"--thumb-width {width}: must be {THUMB_WIDTHS[0]}..{THUMB_WIDTHS[1]} pixels")
    check_output(output, results_path, force)
    results = read_results(results_path)
    prepare(results, results_path.parent.absolute(), width=width, workers=workers)
    page = render(results, results_path, output.parent.absolute())
    atomic_write_text(output, page, overwrite=force)  # without --force, a file that appeared meanwhile stays
    return {"schema": SCHEMA, "output": str(output), "bytes": len(page.encode("utf-8")), **summary(results),
            "seconds_taken": round(time.perf_counter() - started, 3)}
