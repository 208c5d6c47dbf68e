"""The embedder's warm path without torch: the model directory read as files, the tokenizer as `tokenizers`.

When the exported graph of a sentence-transformers model is already in the
export cache, nothing of torch is needed to serve it: the graph holds the whole
module pipeline, and tokenization is the model's ``tokenizer.json`` run by the
`tokenizers` library (Rust; what transformers' fast tokenizers wrap). Loading
that way skips importing torch, transformers and sentence-transformers.
Measured (VmRSS of a process that loads the default MiniLM from a warm cache
and embeds, openvino bf16): 778 MB with them, 266 MB without.

What sentence-transformers 6.3 does, reproduced here for a plain model
(modules Transformer -> Pooling -> [Normalize], no prompt):

- truncation to ``max_seq_length``: the Transformer module's config
  (``sentence_bert_config.json``) when it names one, else the tokenizer's
  ``model_max_length`` capped at the model's ``max_position_embeddings``;
  the provider's own ``max_seq_length`` replaces either;
- padding to the longest text of the batch, on the tokenizer's side, with its
  pad token (``tokenizer.json`` may carry other settings: MiniLM's pads every
  text to a fixed 128 and truncates at 128, which sentence-transformers
  overrides, and so does this module);
- special tokens and lowercasing as ``tokenizer.json`` encodes them.

Anything else (another module, a default prompt, ``do_lower_case`` on, a
tokenizer file missing) raises `Unavailable` with the reason, and the provider
loads with torch as before. And the reproduction is not taken on trust: when a
graph is exported (with torch, the cold path) `verify` compares this
tokenizer's arrays with the model's own ``preprocess`` on texts that reach
truncation, padding, unicode and whitespace, and records the outcome in the
cache entry; the warm path uses only an entry whose check passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The modules the exported graph reproduces with nothing left to Python but the tokenizer.
PLAIN_MODULES = {"Transformer", "Pooling", "Normalize"}
# The Transformer module's config file, under the names sentence-transformers still reads (first found wins).
TRANSFORMER_CONFIGS = (
    "sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
    "sentence_camembert_config.json", "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
# Keys of that config whose default values change nothing the light tokenizer does.
TRANSFORMER_KEYS_NEUTRAL = {"max_seq_length": None, "do_lower_case": False, "transformer_task": "feature-extraction",
                            "backend": "torch", "model_args": {}, "tokenizer_args": {}, "config_args": {},
                            "processor_kwargs": {}, "config_kwargs": {}, "model_kwargs": {}}
TOKENIZER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# transformers' "no limit" model_max_length (int(1e30)): a tokenizer_config without one means the position table.
NO_LIMIT = int(1e30)


class Unavailable(Exception):
    """Why the torch-free path cannot serve this model (the provider reports it and loads with torch)."""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise Unavailable(f"cannot read {path.name}: {exc}") from exc


def module_dirs(model_dir: str | Path) -> list[Path]:
    """The model's directory and those of the modules its ``modules.json`` lists (for the cache key)."""
    root = Path(model_dir)
    dirs = [root]
    try:
        modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return dirs
    for m in modules if isinstance(modules, list) else []:
        sub = m.get("path") if isinstance(m, dict) else None
        if sub and (root / sub).is_dir() and root / sub not in dirs:
            dirs.append(root / sub)
    return dirs


@dataclass(frozen=True)
class SentenceModelDir:
    root: Path
    transformer: Path  # the Transformer module's directory: tokenizer.json, config.json
    max_seq_length: int  # sentence-transformers' default for this model (before the provider's own)


def read_sentence_model(model_dir: str | Path) -> SentenceModelDir:
    """What the light path needs of a sentence-transformers model directory, or `Unavailable`."""
    root = Path(model_dir)
    modules = _json(root / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise Unavailable("no modules.json: not a sentence-transformers model directory")
    kinds = []
    for m in modules:
        kind = str(m.get("type", "")) if isinstance(m, dict) else ""
        name = kind.rsplit(".", 1)[-1]
        if not kind.startswith("sentence_transformers.") or name not in PLAIN_MODULES:
            raise Unavailable(f"modules.json lists {kind or m!r}; the light path knows only "
                              f"{', '.join(sorted(PLAIN_MODULES))}")
        kinds.append(name)
    if kinds[0] != "Transformer" or kinds.count("Transformer") != 1:
        raise Unavailable(f"modules.json has modules {kinds}; the light path needs one Transformer, first")
    transformer = root / (modules[0].get("path") or "")
    st_config = _json(root / "config_sentence_transformers.json") or {}
    if st_config.get("default_prompt_name"):
        raise Unavailable(f"the model prepends its default prompt {st_config['default_prompt_name']!r}")
    module_config: dict[str, Any] = {}
    for name in TRANSFORMER_CONFIGS:
        found = _json(transformer / name)
        if found is not None:
            module_config = found
            break
    for key, value in module_config.items():
        if key not in TRANSFORMER_KEYS_NEUTRAL:
            raise Unavailable(f"the Transformer module's config sets {key!r}, which the light path does not reproduce")
        if key != "max_seq_length" and value not in (TRANSFORMER_KEYS_NEUTRAL[key], None):
            raise Unavailable(f"the Transformer module's config sets {key}={value!r}")
    if not (transformer / "tokenizer.json").is_file():
        raise Unavailable("no tokenizer.json beside the model (a slow-only tokenizer)")
    length = module_config.get("max_seq_length")
    if not length:
        tokenizer_config = _json(transformer / "tokenizer_config.json") or {}
        positions = (_json(transformer / "config.json") or {}).get("max_position_embeddings")
        length = tokenizer_config.get("model_max_length") or NO_LIMIT
        if positions and positions != -1:
            length = min(length, positions)
    if not isinstance(length, int) or length >= NO_LIMIT:
        raise Unavailable("the model names no maximum sequence length")
    return SentenceModelDir(root, transformer, length)


def _token(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


class TextTokenizer:
    """Texts -> the graph's int64 inputs, as the model's ``preprocess`` makes them (see the module docstring)."""

    def __init__(self, model: SentenceModelDir, max_length: int, input_names: list[str]) -> None:
        from tokenizers import Tokenizer

        missing = [n for n in input_names if n not in TOKENIZER_INPUTS]
        if missing:
            raise Unavailable(f"the graph takes {missing}, which a tokenizer does not make")
        directory = model.transformer
        config = _json(directory / "tokenizer_config.json") or {}
        special = _json(directory / "special_tokens_map.json") or {}
        try:
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # the Rust side raises its own Exception type
            raise Unavailable(f"tokenizers cannot read tokenizer.json: {exc}") from exc
        pad = _token(config.get("pad_token")) or _token(special.get("pad_token"))
        pad_id = tokenizer.token_to_id(pad) if pad else None
        if pad_id is None:
            raise Unavailable(f"no pad token id (pad token {pad!r})")
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.enable_truncation(max_length, strategy="longest_first",
                                    direction=config.get("truncation_side", "right"))
        # length=None: pad to the longest of the batch (sentence-transformers' padding=True)
        tokenizer.enable_padding(direction=config.get("padding_side", "right"), pad_id=pad_id, pad_type_id=0,
                                 pad_token=pad, length=None)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = list(input_names)

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        return {n: np.asarray([getattr(e, fields[n]) for e in encodings], dtype=np.int64) for n in self.input_names}


def check_texts(max_length: int) -> list[str]:
    """Texts for `verify`: truncation (past ``max_length``, a word longer than WordPiece's 100 characters),
    padding (lengths differ), the empty text, whitespace, accents, CJK, emoji, control characters."""
    return ["", "  padded with spaces  ", "Héllo Wörld, naïve café — ÇA VA?", "日本語のテキストと中文", "emoji 🙂 ok",
            "tab\tand\nnewline\u200bzero width", "The cat sat on the mat.", "a" * 300,
            " ".join(f"word{i}" for i in range(max_length + 20))]


def verify(model: Any, model_dir: str, override: int | None, input_names: list[str]) -> dict[str, Any]:
    """At export time (torch loaded): whether `TextTokenizer` makes what ``model.preprocess`` makes for this
    model, and what the warm path must report (recorded in the cache entry). Never raises: a failure
    is the recorded reason."""
    try:
        files = read_sentence_model(model_dir)
        expected_length = override or files.max_seq_length
        if model.max_seq_length != expected_length:
            raise Unavailable(f"max_seq_length: read {expected_length} from the files, sentence-transformers "
                              f"uses {model.max_seq_length}")
        tokenizer = TextTokenizer(files, expected_length, input_names)
        texts = check_texts(expected_length)
        want = model.preprocess(texts)
        got = tokenizer(texts)
        for name in input_names:
            theirs = want[name].numpy()
            if got[name].shape != theirs.shape or not (got[name] == theirs).all():
                raise Unavailable(f"tokenizer.json's {name} differ from sentence-transformers' "
                                  f"(shapes {got[name].shape} and {theirs.shape})")
        return {"tokenizer": "same", "dimension": int(model.get_embedding_dimension()),
                "checked_texts": len(texts)}
    except Unavailable as exc:
        return {"tokenizer": f"not used: {exc}"}
    except Exception as exc:  # a check, not the export: never fail the export for it
        return {"tokenizer": f"not used: the check failed: {type(exc).__name__}: {exc}"}
