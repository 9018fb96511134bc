"""``wangp quantize``: WanGP's ``--save-quantized`` as a command (refusals, naming, JSON write-back).

Each definition is planned on its own (target v12: one job per transformer, ``URLs`` and ``URLs2``): ``skipped``
(nothing to do, or WanGP would not save one), ``refused`` (a problem to fix: path outside the home, missing file,
unwritable folder, malformed source), else ``pending``;
running it gives ``created`` or ``exists``. Outputs are made under a lock beside them (:mod:`.lock`), so a
source shared by several definitions, or two runs at once, is quantized once.

torch is imported only when a file is actually quantized (see :mod:`wangp_cli.quantize.quantizer`).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.definitions import Catalog, Definition
from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import rewrite_json_file
from wangp_cli.core.models import architecture_of, module_ids, resolved_modules, transformer_entries
from wangp_cli.core.outputs import OutputError, check_folder_writable, check_output_file, os_error
from wangp_cli.core.variants import (
    CHECKPOINT_ROOTS, Preference, checkpoint_candidates, dtype_token, local_path, quantized_kind, quantized_name,
    select_variant, variants,
)
from wangp_cli.core.locks import output_lock
from wangp_cli.quantize.safetensors_io import is_quantized_checkpoint

KIND = "quanto checkpoint"


def checked_family(arch_id: str | None):
    """The family package of an architecture whose layer rule (which Linear weights WanGP's quantizer turns to
    int8) wangp has checked against mmgp's output (``Family.quantize_checked``), else None: refused (v12)."""
    from wangp_cli.families import family_for_architecture

    family = family_for_architecture(arch_id or "")
    return family if family is not None and family.quantize_checked else None

#: The transformers WanGP 12's --save-quantized makes, in order: (URLs key, submodel number).
TRANSFORMER_PROPS = ("URLs", "URLs2")


@dataclass
class QuantizeJob:
    """One definition (or ``--input`` file) to quantize, or the reason it is skipped or refused."""

    id: str | None
    source: str | None = None  # local path of the 16-bit file (relative to home, or as given to --input)
    source_url: str | None = None
    output: str | None = None
    prop: str = "URLs"  # the definition key the output is appended to (v12: URLs2 for the second transformer)
    entry: str | None = None  # what is appended: the output path (July), its basename (v12)
    status: str = "pending"  # pending, created, exists, skipped, refused
    reason: str = ""
    written_back: bool = False
    details: dict = field(default_factory=dict)
    error: WangpError | None = field(default=None, repr=False)  # what an explicit id raises

    def to_dict(self) -> dict:
        return {"id": self.id, "prop": self.prop, "source": self.source, "output": self.output,
                "entry": self.entry, "status": self.status, "reason": self.reason, "written_back": self.written_back,
                "counts": self.details}

    def refuse(self, error: WangpError) -> QuantizeJob:
        self.status, self.reason, self.error = "refused", error.message, error
        return self


def wangp_config(arch_id: str | None) -> dict | None:
    """WanGP's ``configs/<arch>.json`` for the plain Wan architectures (None elsewhere: WanGP then reads its own)."""
    from wangp_cli.core.registry import ARCHITECTURES

    arch = ARCHITECTURES.get(arch_id or "")
    if arch is None or arch.id not in ("t2v", "t2v_1.3B", "i2v", "i2v_720p"):
        return None
    shape = arch.transformer
    return {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": shape["dim"], "eps": 1e-06,
            "ffn_dim": shape["ffn_dim"], "freq_dim": shape["freq_dim"], "in_dim": shape["in_channels"],
            "model_type": arch.io_class, "num_heads": shape["num_heads"], "num_layers": shape["num_layers"],
            "out_dim": shape["out_channels"], "text_len": 512}


def refusal(catalog: Catalog, definition: Definition, dtype: str) -> str | None:
    """Why WanGP would refuse to save a quantized file for this definition (None: it would not)."""
    reason = definition_refusal(catalog, definition)
    if reason:
        return reason
    if catalog.target == "v12":
        return entries_refusal(catalog, definition, "URLs")
    entries = transformer_entries(catalog, definition)
    if select_variant(entries, Preference("none", dtype)).quantized:
        return "it has no 16-bit (non-quanto) file to quantize"
    return None


def definition_refusal(catalog: Catalog, definition: Definition) -> str | None:
    """What rules the whole definition out (base type, URLs reference in July, modules, v12: an unchecked family)."""
    if definition.source is None or definition.origin not in ("finetunes", "file"):
        return "base architectures ship their own quanto files; quantize a finetune definition"
    v12 = catalog.target == "v12"
    if not v12 and isinstance(definition.model.get("URLs"), str):
        return _reference_reason(definition, "URLs")
    if v12:
        of = architecture_of(catalog, definition)
        if of.problem:
            return of.problem
        if checked_family(of.known.id if of.known else None) is None:
            from wangp_cli.families import FAMILIES

            checked = ", ".join(f.title for f in FAMILIES.values() if f.quantize_checked)
            return (f"quantize supports {checked}; {of.id} ({of.family}) not yet (its layer rule is not checked "
                    f"against WanGP's quantizer)")
    if resolved_modules(catalog, definition) if v12 else module_ids(catalog, definition):
        return ("it declares modules, which WanGP merges at load: a quantized file would hold the merge "
                "(Wan2GP#410); quantize the weights alone with 'wangp quantize --input FILE'")
    return None


def _reference_reason(definition: Definition, prop: str) -> str:
    return f"its {prop} reference another definition ('{definition.model[prop]}'): quantize that one instead"


def entries_refusal(catalog: Catalog, definition: Definition, prop: str) -> str | None:
    """WanGP 12: why the transformer of ``prop`` (URLs, URLs2) gets no quantized file. The source is the FIRST
    entry; a reference, or a first entry that is quantized already (quanto, convrot, fp8, gguf, ...), is skipped."""
    if isinstance(definition.model.get(prop), str):
        return _reference_reason(definition, prop)
    first = transformer_entries(catalog, definition, prop)[0]
    kind = quantized_kind(first)
    if "quanto" in first or "convrot" in first or kind != "16-bit":
        return (f"its first {prop} entry is a {kind} file, not 16-bit: WanGP quantizes the first entry; "
                f"list the 16-bit file first")
    return None


def listed_quanto(entries: list[str], dtype: str) -> str | None:
    """The first entry that is a quanto file of ``dtype`` (None when there is none)."""
    return next((e for e in entries if "quanto" in local_path(e) and dtype_token(local_path(e)) == dtype), None)


def plan_jobs(catalog: Catalog, model_id: str, dtype: str, *, force: bool = False,
              second: bool = True) -> list[QuantizeJob]:
    """The jobs of one definition: its transformer (URLs) and, for target v12 with ``second``, its second one
    (URLs2) as WanGP 12's --save-quantized makes both (unless the model says ``save_quantized_submodel2: false``).
    A definition refused as a whole gives one job."""
    first = plan_job(catalog, model_id, dtype, force=force)
    if catalog.target != "v12" or not second or catalog.find(model_id) is None:
        return [first]
    definition = catalog.get(model_id)
    if "URLs2" not in definition.model or definition_refusal(catalog, definition):
        return [first]
    return [first, plan_job(catalog, model_id, dtype, force=force, prop="URLs2")]


def _submodel2_off(catalog: Catalog, definition: Definition) -> bool:
    """WanGP's ``save_quantized_submodel2`` (the model key, else the handler's; default True) is False."""
    from wangp_cli.core.registry import get_architecture

    value = definition.model.get("save_quantized_submodel2")
    if value is None:
        arch = get_architecture(definition.architecture or "", catalog.target)
        value = arch.handler_keys.get("save_quantized_submodel2") if arch is not None else None
    return value is False


def plan_job(catalog: Catalog, model_id: str, dtype: str, *, force: bool = False, prop: str = "URLs") -> QuantizeJob:
    """The source, output, skip or refusal for ``model_id`` (``prop``: which transformer), without writing."""
    job = QuantizeJob(model_id, prop=prop)
    v12 = catalog.target == "v12"
    try:
        definition = catalog.get(model_id)
        if prop == "URLs":
            reason = refusal(catalog, definition, dtype)
        else:
            reason = entries_refusal(catalog, definition, prop) or (
                "the model sets save_quantized_submodel2 to false" if _submodel2_off(catalog, definition) else None)
        if reason:
            job.status, job.reason = "skipped", reason
            job.error = WangpError(f"cannot quantize '{model_id}' ({prop}): {reason}" if prop != "URLs" else
                                   f"cannot quantize '{model_id}': {reason}", code="refused")
            return job
        entries = transformer_entries(catalog, definition, prop)
        listed = listed_quanto(entries, dtype)
        if listed and not force:
            job.status = "skipped"
            job.reason = f"already has a quanto {dtype} file ({listed}); pass --force to quantize it again"
            return job
        home = catalog.home
        if v12:
            chosen = variants(entries[:1], "v12")[0]  # --save-quantized: the first entry
            job.source = home.locate(chosen.lookup) or chosen.path
            name = quantized_name(posixpath.basename(local_path(chosen.source, "v12")), dtype)
            job.entry = name  # WanGP 12 appends the basename and writes to the first checkpoint root
            job.output = home.locate(checkpoint_candidates(name)) or f"{CHECKPOINT_ROOTS[0]}/{name}"
        else:
            chosen = select_variant(entries, Preference("none", dtype))
            job.source = chosen.path
            job.output = job.entry = quantized_name(chosen.path, dtype)
        job.source_url = chosen.source if chosen.is_remote else None
        output = home.resolve(job.output)
        if not home.resolve(job.source).is_file() and not job.source_url:
            raise WangpError(f"the local file {job.source} is missing", code="missing",
                             hint="put the file there, or list its URL in the definition")
        check_folder_writable(output.parent, what="folder for the quantized file")
        if _needs_write_back(catalog, definition, job):
            _check_writable(definition.source.path)
        if output.exists():
            if not force and not is_quantized_checkpoint(output):
                raise OutputError(f"'{job.output}' already exists and is not a {KIND}", code="exists",
                                  hint="remove it, or pass --force to replace it")
            if not force:
                job.status = "exists"
    except WangpError as exc:
        return job.refuse(exc)
    return job


def _check_writable(path: Path) -> None:
    """The definition file can be rewritten (checked before the work whose result it records)."""
    check_folder_writable(path.parent, what="folder of the definition")
    if not os.access(path, os.W_OK):
        raise OutputError(f"cannot update '{path}': permission denied", code="not-writable",
                          hint="make the definition writable, or quantize with --input and add the file by hand")


def _needs_write_back(catalog: Catalog, definition: Definition, job: QuantizeJob) -> bool:
    """Whether the definition's ``job.prop`` list lacks the output: an entry whose local path is the output counts
    (v12: an entry WanGP finds at ``ckpts/<name>``, a URL, a bare name or ``ckpts/<name>``)."""
    urls = definition.model.get(job.prop)
    if not isinstance(urls, list):
        return True
    if catalog.target != "v12":
        return not any(isinstance(e, str) and local_path(e) == job.output for e in urls)
    where = set(checkpoint_candidates(job.entry))
    return not any(isinstance(e, str) and where & set(checkpoint_candidates(e)) for e in urls)


def batch_jobs(catalog: Catalog, dtype: str, *, force: bool = False, second: bool = True) -> list[QuantizeJob]:
    """Every finetune, planned on its own; a 16-bit file shared by several is made once (the first one)."""
    jobs = [job for model_id in sorted(catalog.ids(include_hidden=True))
            if catalog.definitions[model_id].origin == "finetunes"
            for job in plan_jobs(catalog, model_id, dtype, force=force, second=second)]
    first: dict[str, str] = {}
    for job in jobs:
        if job.status == "pending":
            owner = first.setdefault(job.output, job.id)
            if owner != job.id:
                job.reason = f"made once, for {owner}"
    return jobs


def run_job(catalog: Catalog, job: QuantizeJob, dtype: str, *, force: bool = False, progress=None,
            on_start=None, on_wait=None) -> QuantizeJob:
    """Download the source if needed, quantize it (under the output's lock), append the output to the URLs.

    The output is looked at again once the lock is held: another run (or an earlier job sharing the source)
    may have made it meanwhile; it then counts as ``exists``.
    """
    if job.status in ("skipped", "refused"):
        return job
    home = catalog.home
    output = home.resolve(job.output)
    with output_lock(output, on_wait):
        if output.exists() and not force:
            job.status = "exists"
        else:
            source = home.resolve(job.source)
            if not source.is_file():
                from wangp_cli import download

                plan = download.build_plan(catalog, [job.id], Preference("none", dtype), components=False)
                plan.files = [f for f in plan.files if f.dest == job.source]
                download.resolve_plan(plan, home, network=not download.offline())
                if plan.missing and download.offline():
                    raise download.offline_error(plan)
                download.download(plan, home)
            from wangp_cli.quantize.quantizer import quantize_file

            architecture = catalog.get(job.id).architecture
            family = checked_family(architecture)
            result = quantize_file(source, output, dtype, config=wangp_config(architecture), progress=progress,
                                   on_start=on_start, family=family.name if family else None)
            job.details = dict(result.counts)
            job.status = "created"
    definition = catalog.get(job.id)
    if _needs_write_back(catalog, definition, job):
        job.written_back = rewrite_json_file(definition.source.path, ("model", job.prop), job.entry)
    return job


def run_jobs(catalog: Catalog, jobs: list[QuantizeJob], dtype: str, *, force: bool = False,
             keep_going: bool = True, progress_for=None, on_start=None, on_wait=None) -> list[QuantizeJob]:
    """Run every pending job; with ``keep_going`` a failing one is marked ``refused`` and the others go on.

    ``progress_for(job)``: a context manager giving the job's progress callback; ``on_start(job)`` and
    ``on_wait(job)`` as in :func:`run_job`. Each output is made at most once (also with ``force``).
    """
    made: set[str] = set()
    for job in jobs:
        if job.status in ("skipped", "refused"):
            continue
        try:
            with (progress_for(job) if progress_for else contextlib.nullcontext()) as progress:
                run_job(catalog, job, dtype, force=force and job.output not in made, progress=progress,
                        on_start=on_start and (lambda job=job: on_start(job)),
                        on_wait=on_wait and (lambda job=job: on_wait(job)))
        except (WangpError, OSError) as exc:
            if not keep_going:
                raise
            job.refuse(exc if isinstance(exc, WangpError) else os_error(exc))
        if job.status == "created":
            made.add(job.output)
    return jobs


def plan_path(source: str, output: str | None, dtype: str, *, force: bool = False) -> QuantizeJob:
    """``--input SRC [--output DST]``: a bare checkpoint file; the output name follows WanGP's rule.

    ``--output`` naming a folder (existing, or written with a trailing slash) puts the file there under that
    name; an existing output that is not a quanto checkpoint is refused unless ``force``.
    """
    src = Path(source)
    if not src.exists():
        raise WangpError(f"'{source}' does not exist", code="missing")
    name = Path(quantized_name(src.name, dtype)).name
    if output is None:
        dest = src.with_name(name)
    elif Path(output).is_dir() or output.endswith(("/", os.sep)):
        dest = Path(output) / name
    else:
        dest = Path(output)
    if dest.exists() and os.path.samefile(dest, src):
        raise OutputError(f"--output '{dest}' is the source file itself", code="exists",
                          hint="name another output file")
    check_output_file(dest, force=force, kind=KIND, is_own_kind=is_quantized_checkpoint, option="--output")
    job = QuantizeJob(None, source=str(src), output=str(dest))
    if dest.exists() and not force:
        job.status, job.reason = "exists", "pass --force to make it again"
    return job


def quantize_path(job: QuantizeJob, dtype: str, *, force: bool = False, progress=None, on_start=None,
                  on_wait=None) -> QuantizeJob:
    """Quantize a :func:`plan_path` job under its output's lock (``exists`` when another run made it)."""
    from wangp_cli.quantize.quantizer import quantize_file

    output = Path(job.output)
    with output_lock(output, on_wait):
        if output.exists() and not force:
            job.status = "exists"
            return job
        result = quantize_file(job.source, output, dtype, progress=progress, on_start=on_start)
    job.details, job.status = dict(result.counts), "created"
    return job
