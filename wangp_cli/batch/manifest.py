"""Manifests: one generation job per record, in WanGP's exported-settings format or with our flag names.

A manifest is a JSON Lines file (one object per line), a JSON list of objects, or one object (a file from
``wangp export-settings`` or WanGP's "Export Settings" is a one-job manifest); WanGP's queue files
(``queue.json``, ``queue.zip`` with its media); or a video or image carrying WanGP settings (one job).
Pure Python (Pillow for images, imported when one is read).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
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
#: Every media key of WanGP (wgp.py ``ATTACHMENT_KEYS``): the files a queue zip embeds.
ATTACHMENT_KEYS = ("image_start", "image_end", "image_refs", "image_guide", "image_mask", "video_guide",
                   "video_guide2", "video_mask", "video_source", "audio_guide", "audio_guide2", "audio_source",
                   "replace_voice_sample", "replace_voice_sample2", "custom_guide")
#: Informational keys of WanGP's files and of the settings in its outputs that are not settings.
IGNORED_KEYS = ("type", "settings_version", "base_model_type", "model_filename", "generation_time", "$schema",
                "creation_date", "creation_timestamp", "modules", "transformer_loras_filenames",
                "transformer_loras_multipliers", "video_quality", "image_quality", "hdr", "hdr_video_crf",
                "window_no", "alt_prompt", "_settings_bundle_task_count")
#: Outputs whose embedded settings are a one-job manifest (``--manifest clip.mp4``), by reader.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: Limits on what a queue zip may unpack (bytes): one attachment, all of them, queue.json.
MAX_ATTACHMENT_BYTES = 4 << 30
MAX_ATTACHMENTS_BYTES = 16 << 30
MAX_QUEUE_JSON_BYTES = 64 << 20
_UNSAFE_PART = re.compile(r"[\x00-\x1f\x7f\\:]")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Keys a record may hold: ours, and every WanGP settings key (of July 2025 and later versions).
KNOWN_KEYS = sorted({"id", "loras", "image_format", "no_audio", *MODEL_KEYS, *MEDIA_KEYS, *MEDIA_KEYS.values(),
                     "quantization", "dtype", *IGNORED_KEYS,
                     *FLAG_KEYS, *K.SETTINGS_KEYS, *K.LATER_SETTINGS_KEYS, *K.MEDIA_KEYS, *ATTACHMENT_KEYS})
#: WanGP's media keys that wangp's pipelines do not take (kept in the settings, with a warning).
UNUSED_MEDIA_KEYS = tuple(key for key in ATTACHMENT_KEYS if key not in MEDIA_KEYS.values())


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
    image_format: str | None = None  # png | jpeg | webp: an image job's file format
    no_audio: bool | None = None  # true: the mp4 without the model's audio track
    error: str | None = None  # why the record is not a valid job
    warnings: list[str] = field(default_factory=list)  # what the record holds that has no effect

    @property
    def model_key(self) -> tuple:
        """Jobs with the same key share a loaded model."""
        return self.model_id or "", self.quantization or "", self.dtype or ""


#: A record read from a manifest: its line, the object, and why it cannot be a job (or None).
Entry = tuple[int, object, "str | None"]


def _is_queue(data: list) -> bool:
    """WanGP's rule for a queue manifest: a list whose every item is an object with ``params``."""
    return bool(data) and all(isinstance(item, dict) and "params" in item for item in data)


def _queue_entries(text: str, data: list) -> list[Entry]:
    """The ``params`` of each ``{"id", "params", "plugin_data"}`` task (its id and plugin data are not used:
    jobs are named by what they ask for, so that two queues never share an output name)."""
    entries = []
    for index, item in enumerate(data):
        params = item.get("params") if isinstance(item, dict) else None
        problem = None if isinstance(params, dict) else 'the task is not a WanGP task {"id", "params": {...}}'
        entries.append((_item_line(text, index), params, problem))
    return entries


def _json_entries(text: str, data) -> list[Entry] | None:
    """The records of a JSON document (one object, a list of them, a WanGP queue); None for other JSON."""
    if isinstance(data, dict):
        return [(1, data, None)]
    if isinstance(data, list):
        if _is_queue(data):
            return _queue_entries(text, data)
        return [(_item_line(text, i), record, None) for i, record in enumerate(data)]
    return None


def _records(path: Path) -> list[Entry]:
    """The records of a text manifest; JSON Lines when the file is not one JSON document."""
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
        entries = _json_entries(text, data)
        if entries is not None:
            return entries
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            records.append((number, json.loads(line), None))
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


# ---------------------------------------------------------------------------------------------------- queue zips


def _member_problem(info: zipfile.ZipInfo, count: int) -> str | None:
    """Why a zip member may not be extracted (None when it may): the name must stay inside the folder."""
    name, parts = info.filename, info.filename.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") or _UNSAFE_PART.search(part) for part in parts):
        return "its name is not a safe relative path (absolute, '..', a drive, a backslash or a control character)"
    mode = info.external_attr >> 16
    problems = ((count > 1, "the zip holds that name twice"), (info.is_dir(), "it is a folder"),
                (stat.S_ISLNK(mode), "it is a symbolic link"),
                (stat.S_IFMT(mode) not in (0, stat.S_IFREG), "it is not a regular file"),
                (bool(info.flag_bits & 0x1), "it is encrypted"),
                (info.file_size > MAX_ATTACHMENT_BYTES, f"it is larger than {MAX_ATTACHMENT_BYTES:,} bytes"))
    return next((why for bad, why in problems if bad), None)


def _media_folder(media_dir: Path | None) -> Path:
    """Where a zip's attachments go: a fresh folder in ``media_dir``, else a temporary one removed at exit."""
    if media_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="wangp-queue-"))
        atexit.register(shutil.rmtree, folder, True)
        return folder
    Path(media_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".unpacking-", dir=media_dir))


def _settle(staging: Path, zip_path: Path, media_dir: Path | None) -> Path:
    """``media_dir/<zip stem>-<12 hex of its SHA-256>`` (shared by the shards and reruns of one zip)."""
    if media_dir is None:
        return staging
    digest = hashlib.sha256()
    with open(zip_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    final = Path(media_dir) / f"{zip_path.stem[:64]}-{digest.hexdigest()[:12]}"
    try:
        os.rename(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if not final.is_dir():
            raise WangpError(f"cannot unpack the queue's media into '{final}': {exc}", code="manifest") from None
        # another shard (or an earlier run) unpacked the same zip: its copy is the same
    return final


def _unpack(archive: zipfile.ZipFile, wanted: dict, folder: Path) -> tuple[dict, dict]:
    """Copy the ``wanted`` members (name -> ZipInfo) into ``folder``: ``({name: relative path}, {name: why
    not})``; ZipFile never yields more than a member's declared size, which the limits bound."""
    if sum(info.file_size for info in wanted.values()) > MAX_ATTACHMENTS_BYTES:
        raise WangpError(f"the queue's attachments hold more than {MAX_ATTACHMENTS_BYTES:,} bytes",
                         code="manifest", hint="split the queue, or give the media as files in a JSON manifest")
    paths, problems = {}, {}
    for name, info in wanted.items():
        relative = Path(*name.split("/"))
        target = folder / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "xb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        except (OSError, EOFError, RuntimeError, ValueError, NotImplementedError, zipfile.BadZipFile) as exc:
            problems[name] = f"it could not be extracted ({exc})"
            if target.is_file():
                target.unlink()
            continue
        paths[name] = relative
    return paths, problems


def _rewrite_media(record: dict, names: set, paths: dict, problems: dict) -> str | None:
    """Point the record's media keys at the extracted files; why it cannot, or None."""
    for key in ATTACHMENT_KEYS:
        value = record.get(key)
        if value in (None, "", []):
            continue
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            if isinstance(item, str) and item in names:
                if item in problems:
                    return f"'{key}' names {shown(item)} in the zip, not extracted: {problems[item]}"
                items[position] = str(paths[item])
            elif isinstance(item, str) and not os.path.isabs(item):  # WanGP reads absolute paths from disk
                return f"'{key}' names {shown(item)}, which is not in the zip"
        record[key] = items if isinstance(value, list) else items[0]
    return None


def _zip_entries(path: Path, media_dir: Path | None) -> list[Entry]:
    """The tasks of a WanGP queue zip (``queue.json`` + attachments), media keys pointing at extracted files."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WangpError(f"cannot read queue zip '{path}': {exc}", code="manifest",
                         hint="a WanGP queue (Save Queue, or Export Settings with media) is a zip with queue.json"
                         ) from None
    with archive:
        infos = archive.infolist()
        members = {info.filename: info for info in infos}
        if "queue.json" not in members:
            raise WangpError(f"'{path}': queue.json not found in zip file", code="manifest",
                             hint="a WanGP queue zip holds queue.json and its attachments")
        queue = members["queue.json"]
        if queue.file_size > MAX_QUEUE_JSON_BYTES:
            raise WangpError(f"'{path}': queue.json is larger than {MAX_QUEUE_JSON_BYTES:,} bytes", code="manifest")
        try:
            text = archive.read(queue).decode("utf-8")
        except (OSError, EOFError, RuntimeError, ValueError, zipfile.BadZipFile) as exc:
            raise WangpError(f"'{path}': cannot read queue.json: {exc}", code="manifest") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise WangpError(f"{path}: queue.json:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}",
                             code="manifest") from None
        if not isinstance(data, list):
            raise WangpError(f"'{path}': queue.json must hold a list of tasks", code="manifest",
                             hint='[{"id": 1, "params": {"model_type": ..., ...}}, ...]')
        entries = _queue_entries(text, data)
        counts: dict = {}
        for info in infos:
            counts[info.filename] = counts.get(info.filename, 0) + 1
        referenced = {item for _, record, _ in entries if isinstance(record, dict) for key in ATTACHMENT_KEYS
                      for item in (record.get(key) if isinstance(record.get(key), list) else [record.get(key)])
                      if isinstance(item, str) and item in members}
        problems = {name: why for name in referenced
                    if (why := _member_problem(members[name], counts[name])) is not None}
        staging = _media_folder(media_dir)
        paths, failed = _unpack(archive, {name: members[name] for name in referenced - set(problems)}, staging)
    folder = _settle(staging, path, media_dir).resolve()
    problems.update(failed)
    paths = {name: folder / relative for name, relative in paths.items()}
    return [(line, record, problem or _rewrite_media(record, set(members), paths, problems))
            for line, record, problem in entries]


def _output_entries(path: Path, media_dir: Path | None) -> list[Entry]:
    """The settings a WanGP (or wangp) video or image carries, as a one-job manifest."""
    from wangp_cli.generate.video import read_image_metadata, read_metadata

    reader = read_metadata if path.suffix.lower() in VIDEO_SUFFIXES else read_image_metadata
    try:
        settings = reader(path)
    except OSError as exc:
        raise WangpError(f"cannot read '{path}': {exc}", code="manifest") from None
    if settings is None or "WanGP" not in str(settings.get("type", "")):
        raise WangpError(f"'{path}' carries no WanGP settings", code="manifest",
                         hint="WanGP embeds them unless its metadata setting is 'json' (then use the .json "
                         "next to the file) or off")
    return [(1, settings, None)]


#: How each kind of manifest file is read (by suffix; anything else is a text manifest).
_READERS = {".zip": _zip_entries, **{suffix: _output_entries for suffix in VIDEO_SUFFIXES + IMAGE_SUFFIXES}}


# ------------------------------------------------------------------------------------------------------- records


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


def _lora_values(value, base: Path) -> list[str]:
    """A record's ``loras`` (``--lora`` values: FILE_OR_URL[:MULTIPLIER]): a list of strings, local files relative
    to the manifest's folder."""
    from wangp_cli.core.variants import is_remote
    from wangp_cli.generate.loras import split_flag

    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise ManifestError("'loras' must be a list of FILE_OR_URL[:MULTIPLIER] strings",
                            hint='e.g. "loras": ["fast.safetensors:1"]')
    values = []
    for item in items:
        entry, token = split_flag(item.strip())
        if not is_remote(entry) and not Path(entry).is_absolute():
            entry = str(base / entry)
        values.append(entry if token is None else f"{entry}:{token}")
    return values


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
        mode = record.get("mode")
        if isinstance(mode, str) and mode.startswith("edit_"):
            raise ManifestError(f"a WanGP edit task (mode {shown(mode)}): wangp generates videos, it does not "
                                "post-process them", hint="run it in WanGP: python wgp.py --process FILE")
        model = next((record.pop(k) for k in MODEL_KEYS if k in record), record.get("base_model_type"))
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
        given_loras = record.pop("loras", None)
        if given_loras is not None:
            job.media["loras"] = _lora_values(given_loras, base)
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
        job.image_format = record.pop("image_format", None)
        if job.image_format not in (None, "png", "jpeg", "webp"):
            raise ManifestError(f"image_format {shown(job.image_format)}: use png, jpeg or webp")
        job.no_audio = record.pop("no_audio", None)
        if job.no_audio is not None and not isinstance(job.no_audio, bool):
            raise ManifestError(f"no_audio {shown(job.no_audio)}: use true or false")
        for key in IGNORED_KEYS:
            record.pop(key, None)
        job.warnings = [f"'{key}' is neither a manifest key nor a WanGP setting{did_you_mean(key, KNOWN_KEYS)}; "
                        "it has no effect" for key in record if key not in KNOWN_KEYS]
        job.warnings += [f"'{key}' is a WanGP media input wangp does not use; it has no effect"
                         for key in UNUSED_MEDIA_KEYS if record.get(key) not in (None, "", [])]
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
    if job.no_audio is not None:  # another file; records without it keep the names they always had
        payload["no_audio"] = job.no_audio
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{job.model_id}-{digest[:12]}"


def read_manifest(path: str | Path, media_dir: str | Path | None = None) -> list[Job]:
    """Every record of the manifest as a job; ids must be unique.

    A queue zip's attachments are extracted into ``media_dir/<zip stem>-<hash>/`` (a temporary folder removed
    when the process exits when ``media_dir`` is None); media paths of other manifests are relative to its folder.
    """
    path = Path(path)
    if not path.is_file():
        raise WangpError(f"manifest '{path}' does not exist", code="manifest")
    reader = _READERS.get(path.suffix.lower())
    entries = reader(path, Path(media_dir) if media_dir else None) if reader else _records(path)
    jobs = []
    for index, (line, record, problem) in enumerate(entries):
        job = normalise(record, index, line, path.parent)
        if problem and (job.error is None or not isinstance(record, dict)):  # what the record asks comes first
            job.error, job.id = problem, f"record-{index + 1}"
        jobs.append(job)
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
