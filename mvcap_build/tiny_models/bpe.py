"""A byte-level BPE tokenizer trained on the spot: tiny test/demo models need no download."""

from __future__ import annotations


def train_byte_level_bpe(
    texts: list[str],
    *,
    vocab_size: int,
    special_tokens: list[str],
    unk_token: str | None = None,
    lowercase: bool = False,
):
    """Return a `tokenizers.Tokenizer` (no post-processor: callers add their own BOS/EOS rule).

    Special tokens get the first ids, in the order given.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=unk_token))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer
