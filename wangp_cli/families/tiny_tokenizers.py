"""Tiny in-memory tokenizers for the families' random test models: a ``WordLevel`` vocabulary of :data:`VOCAB` ids
(specials at fixed ids, then a few common words, then dummy tokens). transformers / tokenizers imported inside."""

from __future__ import annotations

VOCAB = 1000

_WORDS = ("a", "an", "the", "of", "and", "in", "on", "with", "at", "to", "is", "are", "cat", "dog", "monkey", "fox",
          "bird", "horse", "person", "man", "woman", "child", "car", "boat", "tree", "forest", "river", "sea",
          "mountain", "city", "street", "sky", "sun", "moon", "night", "day", "rain", "snow", "red", "green", "blue",
          "white", "black", "small", "big", "fast", "slow", "running", "walking", "dancing", "flying", "swimming",
          "jumping", "sitting", "video", "scene", "camera", "shot", "slowly", "beautiful", "bright", "dark")


def word_tokenizer(specials: dict[int, str], *, bos: str | None, eos: str | None, pad: str, unk: str,
                   add_bos: bool, add_eos: bool, model_max_length: int):
    """A ``PreTrainedTokenizerFast`` over a ``WordLevel`` vocabulary of :data:`VOCAB` ids (specials at fixed ids,
    then :data:`_WORDS`, then dummy tokens), lower-casing, whitespace split, BOS/EOS added like the real one."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in specials.items()}
    free = (index for index in range(VOCAB) if index not in specials)
    for word in _WORDS:
        vocab[word] = next(free)
    for index in free:
        vocab[f"<extra_{index}>"] = index
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    single = " ".join(([bos] if add_bos else []) + ["$A"] + ([eos] if add_eos else []))
    used = [token for token, add in ((bos, add_bos), (eos, add_eos)) if add]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(token, vocab[token]) for token in used])
    kwargs = {"pad_token": pad, "unk_token": unk, "model_max_length": model_max_length}
    if bos:
        kwargs["bos_token"] = bos
    if eos:
        kwargs["eos_token"] = eos
    extra = [token for token in specials.values() if token not in (bos, eos, pad, unk)]
    if extra:
        kwargs["additional_special_tokens"] = extra
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **kwargs)

