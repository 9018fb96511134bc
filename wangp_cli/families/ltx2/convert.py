"""LTX-2 checkpoints in WanGP's original layout (Lightricks' ``LTXModel``: ``patchify_proj``, ``adaln_single``,
``audio_*``, maybe under ``model.diffusion_model.``): the diffusers config from their shapes and embedded config,
their keys converted with diffusers' own converter."""

from __future__ import annotations

from wangp_cli.families.ltx2.layout import PREFIXES, PROMPT_ADALN
from wangp_cli.generate.tensors import (
    EmbeddedConfig,
    convert_map,
    count_blocks,
    has_weight,
    weight_shape,
)

#: Config keys whose value follows from the tensor shapes: an embedded diffusers-form config must agree with them.
SHAPE_KEYS = ("in_channels", "out_channels", "audio_in_channels", "audio_out_channels", "cross_attention_dim",
              "audio_cross_attention_dim", "num_layers", "caption_channels", "gated_attn", "audio_gated_attn",
              "cross_attn_mod", "audio_cross_attn_mod", "use_prompt_embeddings", "ff_bias", "audio_ff_bias",
              "use_prompt_adaln_single", "use_keyframes_abs_pos_embedding")
#: Values that shapes cannot give, the WanGP (Lightricks) config key each comes from, its rule, and how it maps.
_WANGP_VALUES = {
    "rope_type": ("rope_type", "a string or null", str),
    "rope_double_precision": ("frequencies_precision", "a string or null", lambda v: v == "float64"),
    "cross_attn_timestep_scale_multiplier": ("av_ca_timestep_scale_multiplier", "a positive number", int),
    "timestep_scale_multiplier": ("timestep_scale_multiplier", "a positive number", int),
    "rope_theta": ("positional_embedding_theta", "a positive number", float),
    "norm_eps": ("norm_eps", "a positive number", float),
}
#: Defaults where neither the file nor the architecture says (the real models' values).
_DEFAULTS = {"rope_type": "split", "rope_double_precision": True, "cross_attn_timestep_scale_multiplier": 1000,
             "timestep_scale_multiplier": 1000, "rope_theta": 10000.0, "norm_eps": 1e-6}


def strip_prefix(name: str) -> str:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def recognises(tensors: dict) -> bool:
    """Names only: an ``audio_patchify_proj`` next to ``transformer_blocks`` (the audio-video LTX-2 model)."""
    names = {strip_prefix(name) for name in tensors}
    return (any(n.startswith("audio_patchify_proj.") for n in names)
            and any(n.startswith("transformer_blocks.") for n in names))


def _plain(tensors: dict) -> dict:
    return {strip_prefix(name): tensor for name, tensor in tensors.items()}


def _heads(check: EmbeddedConfig, tensors: dict, gate: str, key: str, dim: int, shape_value, per_head: int):
    """A head count: the gated attention's gate rows (one per head), else the embedded config, else the
    architecture's when its width is the same, else ``dim / per_head``."""
    if has_weight(tensors, gate):
        return weight_shape(tensors, gate)[0]
    return check.divisor(key, dim) or shape_value or max(dim // per_head, 1)


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers ``LTX2VideoTransformer3DModel`` config from the shapes; WanGP's embedded config (Lightricks'
    ``{"transformer": {...}}``) or a diffusers-form one gives the RoPE and timestep values (checked)."""
    tensors = _plain(tensors)
    diffusers_form = str(embedded.get("_class_name", "")).startswith("LTX2")
    values = embedded if diffusers_form else (embedded.get("transformer") or {})
    check = EmbeddedConfig(values if isinstance(values, dict) else {}, where)
    dim, in_channels = weight_shape(tensors, "patchify_proj.weight")
    audio_dim, audio_in = weight_shape(tensors, "audio_patchify_proj.weight")
    same_width = arch_shape.get("num_attention_heads", 0) * arch_shape.get("attention_head_dim", 0) == dim
    heads = _heads(check, tensors, "transformer_blocks.0.attn1.to_gate_logits.weight", "num_attention_heads", dim,
                   arch_shape.get("num_attention_heads") if same_width else None, 128)
    audio_heads = _heads(check, tensors, "transformer_blocks.0.audio_attn1.to_gate_logits.weight",
                         "audio_num_attention_heads", audio_dim,
                         arch_shape.get("audio_num_attention_heads") if same_width else None, 64)
    block = "transformer_blocks.0."
    derived = {
        "in_channels": in_channels, "out_channels": weight_shape(tensors, "proj_out.weight")[0],
        "patch_size": 1, "patch_size_t": 1,
        "num_attention_heads": heads, "attention_head_dim": dim // heads,
        "cross_attention_dim": weight_shape(tensors, block + "attn2.to_k.weight")[1],
        "audio_in_channels": audio_in, "audio_out_channels": weight_shape(tensors, "audio_proj_out.weight")[0],
        "audio_num_attention_heads": audio_heads, "audio_attention_head_dim": audio_dim // audio_heads,
        "audio_cross_attention_dim": weight_shape(tensors, block + "audio_attn2.to_k.weight")[1],
        "num_layers": count_blocks(tensors, "transformer_blocks"),
        "gated_attn": has_weight(tensors, block + "attn1.to_gate_logits.weight"),
        "audio_gated_attn": has_weight(tensors, block + "audio_attn1.to_gate_logits.weight"),
        # 9 modulation rows instead of 6: the cross-attention is modulated too (LTX-2.3)
        "cross_attn_mod": next(iter(tensors[block + "scale_shift_table"].shape)) == 9,
        "audio_cross_attn_mod": next(iter(tensors[block + "audio_scale_shift_table"].shape)) == 9,
        "use_prompt_embeddings": has_weight(tensors, "caption_projection.linear_1.weight"),
        "ff_bias": block + "ff.net.0.proj.bias" in tensors,
        "audio_ff_bias": block + "audio_ff.net.0.proj.bias" in tensors,
        "use_prompt_adaln_single": has_weight(tensors, "prompt_adaln_single.linear.weight"),
        "use_keyframes_abs_pos_embedding": "keyframes_abs_pos_embedding" in tensors,
    }
    derived["caption_channels"] = (weight_shape(tensors, "caption_projection.linear_1.weight")[1]
                                   if derived["use_prompt_embeddings"] else arch_shape.get("caption_channels", 3840))
    # LTX-2.3 and later skip self-attention for STG in their own processor (no weights say so; the gates do)
    derived["perturbed_attn"] = derived["gated_attn"]
    if diffusers_form:
        check.checked({"rope_type": "a string or null", "rope_double_precision": "true or false"})
        return check.merged(derived, SHAPE_KEYS)
    for key, (wangp_key, rule, mapped) in _WANGP_VALUES.items():
        value = check.get(wangp_key, rule)
        derived[key] = mapped(value) if value is not None else arch_shape.get(key, _DEFAULTS[key])
    positions = values.get("positional_embedding_max_pos") if isinstance(values, dict) else None
    if isinstance(positions, list) and len(positions) == 3 and all(isinstance(p, int) and p > 0 for p in positions):
        derived["pos_embed_max_pos"], derived["base_height"], derived["base_width"] = positions
    audio_positions = values.get("audio_positional_embedding_max_pos") if isinstance(values, dict) else None
    if isinstance(audio_positions, list) and len(audio_positions) == 1 and isinstance(audio_positions[0], int):
        derived["audio_pos_embed_max_pos"] = audio_positions[0]
    return derived


def _diffusers_names(tensors: dict) -> dict:
    """diffusers' ``convert_ltx2_transformer_to_diffusers`` (prefix, ``patchify_proj``, ``adaln_single``, ``av_ca_*``,
    ``q_norm``...), then LTX-2.3's ``prompt_adaln_single`` renames, which only diffusers' conversion script has."""
    from diffusers.loaders.single_file_utils import (
        convert_ltx2_transformer_to_diffusers,
    )

    plain = _plain(tensors)
    converted = convert_ltx2_transformer_to_diffusers(plain)
    out = {}
    for key, tensor in converted.items():
        for old, new in PROMPT_ADALN:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = tensor
    return out


#: Text connectors a transformer file may carry: diffusers' converter drops them (the pipeline's ``connectors``
#: come from the components repo).
_CONNECTORS = ("video_embeddings_connector", "audio_embeddings_connector")


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    """The original names -> diffusers' (quanto ``_data`` / ``_scale`` pieces follow their module's name)."""
    qmap = {module: entry for module, entry in qmap.items() if not any(c in module for c in _CONNECTORS)}
    return _diffusers_names(tensors), convert_map(qmap, _diffusers_names)


def model_class(config: dict):
    import diffusers

    return diffusers.LTX2VideoTransformer3DModel


def version(config: dict) -> str:
    """The LTX-2 generation a config is: gated attention came with 2.3, 2.5 dropped the video feed-forward biases."""
    if not config.get("gated_attn"):
        return "2.0"
    return "2.3" if config.get("ff_bias", True) else "2.5"


def mismatch(config: dict, arch_shape: dict) -> str | None:
    """The weights must be of the architecture's LTX-2 generation: its text connectors, VAE and vocoder come from
    that generation's diffusers repo."""
    if not arch_shape:
        return None
    found, expected = version(config), version(arch_shape)
    return None if found == expected else f"LTX-{found} weights, the architecture is LTX-{expected}"
