"""What a model family provides to ``wangp generate``: the interface every ``families/<name>/`` package fills.

A family is a package (WanGP's ``models/<family>/``, diffusers' ``pipelines/<name>/``) whose ``__init__.py`` holds
one :class:`Family` object: data about the architectures it generates, plus hooks that live in the package's own
modules and are imported only when called (so that ``wangp list`` never loads them):

- ``convert.py``  the checkpoint side: ``recognises(tensors)``, ``config(tensors, embedded, arch_shape, where)``,
  ``to_diffusers(tensors, qmap, config)``, ``model_class(config)``, ``mismatch(config, arch_shape)``
- ``pipeline.py`` the diffusers side: ``parts(request, components)``, ``scheduler(pipe, request)``,
  ``call_arguments(request)``
- ``tiny.py``     tiny random models: ``KINDS`` (kind -> :class:`TinyKind`), ``components(kind)``,
  ``to_original_layout(kind, state)``, ``to_diffusers_layout(kind, original)``, ``wangp_config(kind, model)``
- ``lora.py``     (added by the LoRA work) and the second transformer of Wan 2.2 (added by the Wan 2.2 work).

Every hook takes and returns plain values (dicts of tensors, config dicts, keyword arguments); torch, diffusers
and transformers are imported inside the functions. The family-independent machinery (safetensors reading, quanto,
memory profiles, timings, the runner) stays in ``wangp_cli/generate/`` and calls these hooks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

#: The media inputs a generation request can carry (``GenerateRequest`` attributes).
MEDIA_INPUTS = ("image", "last_image", "control_video", "mask", "reference_images")


@dataclass(frozen=True)
class Generated:
    """An architecture a family generates with diffusers."""

    pipeline: str  # the diffusers pipeline class name
    needs: tuple[str, ...] = ()  # media inputs the request must give (of MEDIA_INPUTS)
    takes: tuple[str, ...] = ()  # media inputs it may give besides
    # where generation takes the other components from (WanGP 12 types the registry's July/Wan 2.2 tables lack;
    # read by ``core.registry`` for ``Architecture.diffusers_repo`` / ``components`` / ``transformer``)
    repo: str | None = None  # the diffusers repository of the other components
    components: tuple[str, ...] = ()  # its subfolders generation needs (never its transformer)
    shape: dict = field(default_factory=dict)  # the real transformer's shape (sizes, profiles, loaders)
    # the memory plan (``engine.estimated_bytes``) of a family the Wan formula does not fit: the transformer's
    # parameters, and each other component's (parameters, bytes per parameter as the pipeline loads it)
    params: float = 0.0
    component_params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TinyKind:
    """A tiny random model of a family (tests, benchmarks, ``doctor``): what it stands for and how it is built."""

    architecture: str  # the base architecture it stands in for by default
    transformer: str  # the diffusers transformer class name
    config: dict  # the diffusers transformer config (``Model(**config)``)
    call: dict  # small-call keyword arguments that run on CPU
    module_prefixes: tuple[str, ...] = ()  # original-layout keys WanGP ships in a separate module file
    settings: dict = field(default_factory=dict)  # the tiny definition's settings over tiny.TINY_SETTINGS (an
    # image family's video_length 1, LTX-2's 8k+1 frames, ...)


@dataclass(frozen=True)
class Family:
    """One model family. ``package`` is the module path whose ``convert`` / ``pipeline`` / ``tiny`` modules hold
    the hooks below; a family with other needs subclasses and overrides a method."""

    name: str  # the package's name, unique (the registry's family, ``Architecture.family``, may hold several:
    # "hunyuan" is HunyuanVideo 1.0 and 1.5, "flux" Flux 1 and 2)
    title: str  # as messages name it ("Wan", "HunyuanVideo")
    package: str
    architectures: dict[str, Generated]  # architecture id -> how it is generated
    quantized_blocks: tuple[str, ...] = ()  # quanto ``include`` patterns for auto_quantize (the repeated blocks)
    module_architectures: dict[str, str] = field(default_factory=dict)  # architecture -> the module its tiny
    # definitions list (WanGP ships VACE 14B as a t2v file plus a module)
    refused: dict[str, str] = field(default_factory=dict)  # architecture -> why this family does not generate it
    # although diffusers has a pipeline (README's table and ``wangp generate``'s message say so)
    quantize_checked: bool = False  # the layer rule (towers minus quantize_skip) was checked against mmgp's output:
    # ``wangp quantize`` takes the family's definitions
    quantize_skip: tuple[str, ...] = ()  # regexes of module names inside the blocks that WanGP's own quantization
    # leaves out for this family (checked against mmgp), on top of quantizer.LOCKED_MODULES

    def part(self, name: str):
        """The family's module ``name`` (``convert``, ``pipeline``, ``tiny``), imported on first use."""
        return importlib.import_module(f"{self.package}.{name}")

    # -- checkpoint: WanGP's original layout -> diffusers (convert.py) -------------------------------------------

    def recognises(self, tensors: dict) -> bool:
        """Whether original-layout tensor names are this family's."""
        return self.part("convert").recognises(tensors)

    def config(self, tensors: dict, embedded: dict, arch_shape: dict, where: str) -> dict:
        """The diffusers transformer config from the tensor shapes and the file's embedded config (WanGP's or
        diffusers' form, each value checked; errors name ``where``)."""
        return self.part("convert").config(tensors, embedded, arch_shape, where)

    def to_diffusers(self, tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
        """Original-layout tensors and quanto int8 map -> diffusers names (tensors may be quanto ``_data`` /
        ``_scale`` pieces; ``tensors`` and ``qmap`` are the caller's copies, free to change)."""
        return self.part("convert").to_diffusers(tensors, qmap, config)

    def model_class(self, config: dict):
        """The diffusers transformer class for a config."""
        return self.part("convert").model_class(config)

    def mismatch(self, config: dict, arch_shape: dict) -> str | None:
        """What makes weights of ``config`` unfit for the architecture's transformer (None: they fit)."""
        return self.part("convert").mismatch(config, arch_shape)

    # -- pipeline (pipeline.py) ----------------------------------------------------------------------------------

    def pipeline_class(self, arch_id: str, image: bool = False):
        """The diffusers pipeline class of ``arch_id``; ``image``: the request gives a start image (a family whose
        text model also takes an image, as Wan 2.2 TI2V 5B, switches pipelines on it)."""
        import diffusers

        return getattr(diffusers, self.architectures[arch_id].pipeline)

    def pipeline_parts(self, request, components) -> dict:
        """Components loaded by the family itself (``from_pretrained`` keyword arguments), e.g. in fp32."""
        return self.part("pipeline").parts(request, components)

    def set_scheduler(self, pipe, request) -> None:
        """WanGP's sampler settings (``flow_shift``, ``sample_solver``) applied to ``pipe.scheduler``."""
        self.part("pipeline").scheduler(pipe, request)

    def call_arguments(self, request) -> dict:
        """The family's keyword arguments of the pipeline call from WanGP settings (guidance, negative prompt);
        the runner adds prompt, size, frames (video outputs), steps, generator and the media inputs. A None value
        removes a keyword the runner would pass (a pipeline without ``negative_prompt``, say)."""
        return self.part("pipeline").call_arguments(request)

    def audio(self, pipe, output):
        """The audio track of a pipeline output as (numpy float array (channels, samples) in [-1, 1], sample rate),
        or None: ``pipeline.audio(pipe, output)`` where the family's pipeline module has it (LTX-2)."""
        hook = getattr(self.part("pipeline"), "audio", None)
        return hook(pipe, output) if hook is not None else None

    # -- request checks --------------------------------------------------------------------------------------------

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        """Settings this family cannot generate with, each a message (the media inputs are checked from
        :attr:`architectures`); nothing so far for Wan 2.1 and HunyuanVideo."""
        return []

    # -- tiny random models (tiny.py) --------------------------------------------------------------------------

    @property
    def tiny_kinds(self) -> dict[str, TinyKind]:
        return self.part("tiny").KINDS

    def tiny_components(self, kind: str) -> dict:
        """The tiny pipeline's components but the transformer (seeded random weights, in-memory tokenizers)."""
        return self.part("tiny").components(kind)

    def to_original_layout(self, kind: str, state: dict) -> dict:
        """A diffusers state dict in WanGP's original key layout (the exact inverse of :meth:`to_diffusers`)."""
        return self.part("tiny").to_original_layout(kind, state)

    def to_diffusers_layout(self, kind: str, original: dict) -> dict:
        """Original-layout tensors converted back by diffusers' own converter (the round-trip check)."""
        return self.part("tiny").to_diffusers_layout(kind, original)

    def wangp_config(self, kind: str, model) -> dict:
        """The WanGP-style config embedded in the tiny files (it carries the head count)."""
        return self.part("tiny").wangp_config(kind, model)

    # -- room for the next work ------------------------------------------------------------------------------------

    def loras(self):
        """The family's LoRA rules (``lora.py``: the folder under ``loras/``, the key converters of the formats
        WanGP users have), or None for a family whose LoRAs wangp does not apply yet."""
        try:
            return self.part("lora")
        except ModuleNotFoundError as exc:
            if exc.name != f"{self.package}.lora":
                raise
            return None

    def transformers(self, arch_id: str) -> dict[str, str]:
        """The pipeline's transformer slots and the definition list that fills each: one by default, Wan 2.2 A14B
        also ``transformer_2`` <- ``URLs2``."""
        return {"transformer": "URLs"}
