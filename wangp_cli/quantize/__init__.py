"""``wangp quantize``: WanGP's ``--save-quantized`` as a command (refusals, naming, JSON write-back).

torch is imported only when a file is actually quantized (see :mod:`wangp_cli.quantize.quantizer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.definitions import Catalog, Definition
from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import rewrite_json_file
from wangp_cli.core.models import module_ids, transformer_entries
from wangp_cli.core.variants import Preference, dtype_token, local_path, quantized_name, select_variant


@dataclass
class QuantizeJob:
    """One definition to quantize, or the reason it is skipped."""

    id: str
    source: str | None = None  # local path of the 16-bit file (relative to home)
    source_url: str | None = None
    output: str | None = None
    status: str = "pending"  # pending, created, exists, skipped
    reason: str = ""
    written_back: bool = False
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "output": self.output, "status": self.status,
                "reason": self.reason, "written_back": self.written_back}


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
    if definition.source is None or definition.origin not in ("finetunes", "file"):
        return "base architectures ship their own quanto files; quantize a finetune definition"
    if isinstance(definition.model.get("URLs"), str):
        return ("its URLs reference another definition ('%s'): quantize that one instead"
                % definition.model["URLs"])
    if module_ids(catalog, definition):
        return ("it declares modules, which WanGP merges at load: a quantized file would hold the merge "
                "(Wan2GP#410); quantize the weights alone with 'wangp quantize --input FILE'")
    entries = transformer_entries(catalog, definition)
    if select_variant(entries, Preference("none", dtype)).quantized:
        return "it has no 16-bit (non-quanto) file to quantize"
    return None


def has_quanto_for(entries: list[str], dtype: str) -> bool:
    return any("quanto" in local_path(e) and dtype_token(local_path(e)) == dtype for e in entries)


def plan_job(catalog: Catalog, model_id: str, dtype: str) -> QuantizeJob:
    """The source, output and refusals for ``model_id``, without touching any file."""
    definition = catalog.get(model_id)
    job = QuantizeJob(model_id)
    reason = refusal(catalog, definition, dtype)
    if reason:
        job.status, job.reason = "skipped", reason
        return job
    chosen = select_variant(transformer_entries(catalog, definition), Preference("none", dtype))
    job.source, job.source_url = chosen.path, chosen.source if chosen.is_remote else None
    job.output = quantized_name(chosen.path, dtype)
    if catalog.home.exists(job.output):
        job.status, job.reason = "exists", f"{job.output} already exists"
    return job


def batch_jobs(catalog: Catalog, dtype: str) -> list[QuantizeJob]:
    """Every finetune with a 16-bit variant but no quanto file of ``dtype`` (the others skipped, with why)."""
    jobs = []
    for model_id in sorted(catalog.ids(include_hidden=True)):
        definition = catalog.definitions[model_id]
        if definition.origin != "finetunes":
            continue
        try:
            entries = transformer_entries(catalog, definition)
        except WangpError as exc:
            jobs.append(QuantizeJob(model_id, status="skipped", reason=exc.message))
            continue
        if has_quanto_for(entries, dtype):
            jobs.append(QuantizeJob(model_id, status="skipped", reason=f"already has a quanto {dtype} file"))
            continue
        jobs.append(plan_job(catalog, model_id, dtype))
    return jobs


def run_job(catalog: Catalog, job: QuantizeJob, dtype: str, *, progress=None) -> QuantizeJob:
    """Download the source if needed, quantize it, append the output to the definition's URLs."""
    if job.status == "skipped":
        return job
    home = catalog.home
    if job.status != "exists":
        source = home.resolve(job.source)
        if not source.is_file():
            if not job.source_url:
                raise WangpError(f"'{job.id}': the local file {job.source} is missing", code="missing")
            from wangp_cli import download

            plan = download.plan_for(catalog, [job.id], Preference("none", dtype), components=False)
            plan.files = [f for f in plan.files if f.dest == job.source]
            download.download(plan, home)
        from wangp_cli.quantize.quantizer import quantize_file

        config = wangp_config(catalog.get(job.id).architecture)
        result = quantize_file(source, home.resolve(job.output), dtype, config=config, progress=progress)
        job.details = dict(result.counts)
        job.status = "created"
    definition = catalog.get(job.id)
    job.written_back = rewrite_json_file(definition.source.path, ("model", "URLs"), job.output)
    return job


def quantize_path(source: str, output: str | None, dtype: str, *, progress=None) -> tuple[Path, dict]:
    """``--input SRC [--output DST]``: a bare checkpoint file; the output name follows WanGP's rule."""
    from wangp_cli.quantize.quantizer import quantize_file

    src = Path(source)
    if not src.is_file():
        raise WangpError(f"'{source}' does not exist", code="missing")
    dest = Path(output) if output else src.with_name(Path(quantized_name(src.name, dtype)).name)
    if dest.exists():
        raise WangpError(f"'{dest}' already exists", code="exists", hint="remove it or pass another --output")
    result = quantize_file(src, dest, dtype, progress=progress)
    return dest, dict(result.counts)
