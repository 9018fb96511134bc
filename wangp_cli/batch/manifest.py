"""Manifests: one generation job per record, in WanGP's exported-settings format or with our flag names.

A manifest is a JSON Lines file (one object per line), a JSON list of objects, or one object (a file from
``wangp export-settings`` or WanGP's "Export Settings" is a one-job manifest). Pure Python.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core import keys as K
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.safety import did_you_mean
from wangp_cli.generate.request import FLAG_KEYS, shown

#: Keys naming the definition, first found wins (WanGP's files use ``model_type``).
MODEL_KEYS = ("model_type", "model", "finetune")
#: Media inputs: our name -> WanGP's settings name (both accepted; paths relative to the manifest's folder).
MEDIA_KEYS = {"image": "image_start", "last_image": "image_end", "control_video": "video_guide",
              "mask": "video_mask", "reference_images": "image_refs"}
#: Informational keys of WanGP's files and videos that are not settings.
IGNORED_KEYS = ("type", "settings_version", "base_model_type", "model_filename", "generation_time", "$schema")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Keys a record may hold: ours, and every WanGP settings key (of July 2025 and later versions).
KNOWN_KEYS = sorted({"id", *MODEL_KEYS, *MEDIA_KEYS, *MEDIA_KEYS.values(), "quantization", "dtype", *IGNORED_KEYS,
                     *FLAG_KEYS, *K.SETTINGS_KEYS, *K.LATER_SETTINGS_KEYS, *K.MEDIA_KEYS})


class ManifestError(WangpError):
    """A record that cannot become a job (reported for that job; the others still run)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, code="manifest", hint=hint)


@dataclass
class Job:
    """One record of a manifest, normalised."""

    index: int  # 0-based position in the manifest
    line: int  # 1-based line of the record (JSONL) or of the list item
    id: str  # the record's "id", or a hash of what it asks for
    model_id: str | None
    settings: dict = field(default_factory=dict)  # WanGP settings keys
    media: dict = field(default_factory=dict)  # image / last_image / control_video / mask -> Path; refs -> [Path]
    quantization: str | None = None
    dtype: str | None = None
    error: str | None = None  # why the record is not a valid job
    warnings: list[str] = field(default_factory=list)  # what the record holds that has no effect

    @property
    def model_key(self) -> tuple:
        """Jobs with the same key share a loaded model."""
        return self.model_id or "", self.quantization or "", self.dtype or ""


def _records(path: Path) -> list[tuple[int, object]]:
    """(line, record) pairs; JSON Lines when the file is not one JSON document."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WangpError(f"cannot read manifest '{path}': {exc}", code="manifest") from None
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return [(1, data)]
        if isinstance(data, list):
            return [(_item_line(text, i), record) for i, record in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            records.append((number, json.loads(line)))
        except ValueError as exc:
            raise WangpError(f"{path}:{number}:{exc.colno}: not valid JSON: {exc.msg}", code="manifest",
                             hint="a manifest is JSON Lines (one object per line), a JSON list, or one object"
                             ) from None
    return records


def _item_line(text: str, index: int) -> int:
    """The line where the ``index``-th object of a top-level JSON list starts (best effort, for messages)."""
    depth, count = 0, -1
    in_string = escape = False
    for offset, char in enumerate(text):
        if in_string:
            escape = not escape and char == "\\"
            if char == '"' and not escape:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth == 2:
                count += 1
                if count == index:
                    return text.count("\n", 0, offset) + 1
        elif char in "]}":
            depth -= 1
    return 1


def _media_paths(value, base: Path, key: str) -> Path | list[Path]:
    def one(item) -> Path:
        if not isinstance(item, str) or not item:
            raise ManifestError(f"'{key}' must be a file path")
        path = Path(item)
        return path if path.is_absolute() else base / path

    if key == "reference_images":
        return [one(item) for item in (value if isinstance(value, list) else [value])]
    if isinstance(value, list):  # WanGP stores image_start / image_end as lists
        if len(value) != 1:
            raise ManifestError(f"'{key}' must name one file")
        value = value[0]
    return one(value)


def _preference_from_filename(filename: str) -> tuple[str, str | None]:
    from wangp_cli.core.variants import dtype_token

    return ("int8" if "quanto" in filename else "none"), dtype_token(filename)


def normalise(record, index: int, line: int, base: Path) -> Job:
    """A manifest record as a :class:`Job` (``error`` set when it is not valid)."""
    job = Job(index=index, line=line, id="", model_id=None)
    try:
        if not isinstance(record, dict):
            raise ManifestError("the record is not a JSON object")
        record = dict(record)
        job_id = record.pop("id", None)
        model = next((record.pop(k) for k in MODEL_KEYS if k in record), None)
        for key in MODEL_KEYS:
            record.pop(key, None)
        if not isinstance(model, str) or not model:
            raise ManifestError("no model: give 'model_type' (WanGP) or 'model'", hint='e.g. {"model": "t2v", ...}')
        job.model_id = model
        for ours, theirs in MEDIA_KEYS.items():
            given, wangp_value = record.pop(ours, None), record.pop(theirs, None)
            value = given if given is not None else wangp_value
            if value not in (None, "", []):
                job.media[ours] = _media_paths(value, base, ours)
        job.quantization = record.pop("quantization", None)
        job.dtype = record.pop("dtype", None)
        filename = record.get("model_filename")
        if job.quantization is None and isinstance(filename, str) and filename:
            job.quantization, found = _preference_from_filename(filename)
            job.dtype = job.dtype or found
        if job.quantization not in (None, "int8", "none"):
            raise ManifestError(f"quantization {shown(job.quantization)}: use int8 or none")
        if job.dtype not in (None, "bf16", "fp16"):
            raise ManifestError(f"dtype {shown(job.dtype)}: use bf16 or fp16")
        for key in IGNORED_KEYS:
            record.pop(key, None)
        job.warnings = [f"'{key}' is neither a manifest key nor a WanGP setting{did_you_mean(key, KNOWN_KEYS)}; "
                        "it has no effect" for key in record if key not in KNOWN_KEYS]
        settings = {}
        for key, value in record.items():  # our flag names become WanGP's keys; WanGP's keys pass through
            settings[FLAG_KEYS.get(key, key)] = value
        job.settings = settings
        if job_id is not None:
            if not isinstance(job_id, str) or not JOB_ID.match(job_id):
                raise ManifestError(f"id {shown(job_id)} is not a usable file name",
                                    hint="letters, digits, '.', '_' and '-', starting with a letter or digit")
            job.id = job_id
    except ManifestError as exc:
        job.error = exc.message
    if not job.id:
        job.id = job_hash(record, job) if job.error is None else f"record-{index + 1}"
    return job


def job_hash(record, job: Job) -> str:
    """A stable name for a job without an id: what it asks for, hashed (same request, same name)."""
    payload = {"model": job.model_id, "settings": job.settings, "quantization": job.quantization,
               "dtype": job.dtype, "media": {k: [str(p) for p in v] if isinstance(v, list) else str(v)
                                             for k, v in sorted(job.media.items())}}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{job.model_id}-{digest[:12]}"


def read_manifest(path: str | Path) -> list[Job]:
    """Every record of the manifest as a job; ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise WangpError(f"manifest '{path}' does not exist", code="manifest")
    jobs = [normalise(record, index, line, path.parent) for index, (line, record) in enumerate(_records(path))]
    seen: dict = {}
    for job in jobs:
        if job.id in seen and job.error is None:
            job.error = f"id '{job.id}' repeats the job of line {seen[job.id]}"
        seen.setdefault(job.id, job.line)
    return jobs


def _slurm_number(environ: dict, name: str, default: str | None = None) -> int:
    text = environ.get(name, default)
    if not re.fullmatch(r"\s*\d{1,9}\s*", text):
        raise UsageError(f"{name} {shown(text)} is not a number",
                         hint="Slurm sets it for array jobs (sbatch --array); fix or unset it, or pass --shard i/N")
    return int(text)


def parse_shard(text: str | None, environ: dict) -> tuple[int, int] | None:
    """``"i/N"`` (0-based i), or Slurm's SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when ``text`` is None."""
    if text is None:
        if environ.get("SLURM_ARRAY_TASK_ID") is None or environ.get("SLURM_ARRAY_TASK_COUNT") is None:
            return None
        task, count = (_slurm_number(environ, name) for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"))
        minimum = _slurm_number(environ, "SLURM_ARRAY_TASK_MIN", "0")
        if not minimum <= task < minimum + count:
            raise UsageError(f"SLURM_ARRAY_TASK_ID {task} is outside the array ({minimum}.."
                             f"{minimum + count - 1}: SLURM_ARRAY_TASK_MIN {minimum}, SLURM_ARRAY_TASK_COUNT {count})",
                             hint="pass --shard i/N")
        return task - minimum, count
    match = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise UsageError(f"shard '{text}' is not i/N with 0 <= i < N", hint="e.g. --shard 0/4 ... --shard 3/4")
    return int(match[1]), int(match[2])


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """The jobs of shard ``index`` of ``count``: every count-th job of the manifest, starting at ``index``."""
    return [job for job in jobs if job.index % count == index]


def grouped(jobs: list[Job]) -> list[Job]:
    """Jobs ordered so that those of one model run one after the other (first appearance order kept)."""
    first: dict = {}
    for job in jobs:
        first.setdefault(job.model_key, len(first))
    return sorted(jobs, key=lambda job: (first[job.model_key], job.index))
