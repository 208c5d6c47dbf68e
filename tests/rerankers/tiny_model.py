"""A tiny random-weight BERT cross-encoder, written to a directory.

No download: the vocabulary is written here and the weights are random
(seeded), so the scores mean nothing but are deterministic. Used by the
cross-encoder tests and by ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = (
    "the a of to and in is on for what where who how capital france paris berlin germany "
    "cat dog mat sits runs population city river music revenue grew percent car road night"
).split()
POSITIONS = 64  # small, so truncation is easy to reach


def build_tiny_cross_encoder(directory: str | Path, seed: int = 0) -> str:
    """Save a 2-layer, 32-wide, one-label ``BertForSequenceClassification`` and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *("##" + c for c in letters)]
    vocab = list(dict.fromkeys(tokens))  # "a" is a word and a letter: one id
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=POSITIONS, num_labels=1,
        # BERT's default 0.02 gives near-identical logits for every pair;
        # wider weights spread the scores so orderings are not all ties.
        initializer_range=0.5,
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(str(path))
    make_tokenizer(path / "vocab.txt").save_pretrained(str(path))
    return str(path)


def make_tokenizer(vocab_file: Path) -> Any:
    """A WordPiece tokenizer over ``vocab_file``, in transformers 4 or 5.

    transformers 5 renamed the argument to ``vocab`` and silently ignores
    ``vocab_file``: every word then became [UNK] and all pairs scored alike.
    """
    import inspect

    from transformers import BertTokenizerFast

    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:
        return BertTokenizerFast(vocab=str(vocab_file))
    return BertTokenizerFast(vocab_file=str(vocab_file))
