"""A randomly initialised T5 backbone saved as a local Hugging Face model directory.

``python -m spacy_hyperloader init-backbone OUTPUT_DIR --shape tiny --train-text corpus/train.spacy``
writes ``config.json``, ``model.safetensors`` and the tokenizer files, so that both
``AutoModelForSeq2SeqLM.from_pretrained(OUTPUT_DIR, use_safetensors=True)`` and
:func:`spacy_hyperloader.tokenizer.load_tokenizer` load it offline, and a pipeline config can
name the directory as its ``backbone``.  The vocabulary comes from an existing SentencePiece
vocabulary (``vocab``) or is trained on local text (``train_text``); the model's ``vocab_size``
always equals ``len(tokenizer)`` (SentencePiece pieces plus the 100 ``<extra_id_N>`` sentinels).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .text_sources import expand_sources, iter_training_text, source_lines
from ..sentt.tokenizer import check_t5_tokenizer

__all__ = ["SHAPES", "count_parameters", "init_backbone", "iter_training_text", "load_vocabulary", "train_vocabulary"]

# T5 v1.0-style shapes (ReLU feed-forward, tied input/output embeddings).  ``small`` and ``base``
# are the t5-small / t5-base shapes; ``tiny`` and ``mini`` train on a CPU in minutes.
_COMMON: dict[str, Any] = {
    "feed_forward_proj": "relu",
    "tie_word_embeddings": True,
    "relative_attention_num_buckets": 32,
    "decoder_start_token_id": 0,
    "pad_token_id": 0,
    "eos_token_id": 1,
}
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "d_ff": 256, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "d_kv": 16, **_COMMON},
    "mini": {"d_model": 256, "d_ff": 1024, "num_layers": 4, "num_decoder_layers": 4, "num_heads": 4, "d_kv": 64, **_COMMON},
    "small": {"d_model": 512, "d_ff": 2048, "num_layers": 6, "num_decoder_layers": 6, "num_heads": 8, "d_kv": 64, **_COMMON},
    "base": {"d_model": 768, "d_ff": 3072, "num_layers": 12, "num_decoder_layers": 12, "num_heads": 12, "d_kv": 64, **_COMMON},
}

#: At most this many sentences (lines) train the SentencePiece model; more are sampled down.
MAX_SENTENCES = 2_000_000
# Files written by ``save_pretrained`` that ``force=True`` removes first, so none is left stale.
_HF_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
    "pytorch_model.bin", "pytorch_model.bin.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "spiece.model", "added_tokens.json",
)


def _shape_config(shape: str) -> dict[str, Any]:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    return dict(SHAPES[shape])


def _check_output_dir(output_dir: Path, force: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not force:
        raise FileExistsError(
            f"output directory {output_dir} exists and is not empty; pass --force (force=True) to overwrite it"
        )


# --- vocabulary ---------------------------------------------------------------------------


def load_vocabulary(vocab: str | Path):
    """A T5 tokenizer from a SentencePiece ``.model`` file, a ``tokenizer.json`` or a tokenizer
    directory; never from the hub."""
    from ..sentt.tokenizer import load_tokenizer

    path = Path(vocab)
    if not path.exists():
        raise FileNotFoundError(
            f"vocabulary {str(vocab)!r} does not exist; give a SentencePiece .model file, a "
            f"tokenizer.json or a tokenizer directory"
        )
    if path.is_file() and path.suffix != ".model" and path.name != "tokenizer.json":
        if path.suffix == ".json":  # a tokenizer.json under another name
            from transformers import T5TokenizerFast

            from ..sentt.tokenizer import word_initial_pieces

            return word_initial_pieces(T5TokenizerFast(tokenizer_file=str(path)))
        raise ValueError(f"vocabulary {path} is neither a SentencePiece .model file, a tokenizer.json nor a directory")
    return load_tokenizer(path)


def _sample(lines: Iterable[str], limit: int, seed: int) -> tuple[list[str], int]:
    """Reservoir sample of at most ``limit`` lines (all of them, in order, when there are fewer)."""
    rng = random.Random(seed)
    kept: list[str] = []
    seen = 0
    for line in lines:
        seen += 1
        if len(kept) < limit:
            kept.append(line)
        else:
            j = rng.randrange(seen)
            if j < limit:
                kept[j] = line
    return kept, seen


def train_vocabulary(
    sources: Iterable[str | Path],
    *,
    vocab_size: int = 8000,
    seed: int = 0,
    max_sentences: int = MAX_SENTENCES,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
):
    """A T5 tokenizer with a SentencePiece unigram vocabulary trained on ``sources`` (see
    :func:`iter_training_text`); at most ``max_sentences`` lines, sampled with ``seed``."""
    from ..sentt.tokenizer import train_sentencepiece

    files = expand_sources(sources)  # fail on a missing source before reading anything
    lines: Iterable[str] = (line for path in files for line in source_lines(path))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(lines, desc="reading training text", unit=" lines", mininterval=0.5)
        lines = bar
    sentences, seen = _sample(lines, max_sentences, seed)
    if bar is not None:
        bar.close()
    if not sentences:
        raise ValueError(f"no text found in {', '.join(str(p) for p in files)}")
    if log:
        sampled = f" (sampled from {seen:,})" if seen > len(sentences) else ""
        log(
            f"Training a SentencePiece vocabulary (at most {vocab_size:,} pieces) on "
            f"{len(sentences):,} lines{sampled} from {len(files)} file(s)"
        )
    return train_sentencepiece(sentences, vocab_size=vocab_size)


# --- model -------------------------------------------------------------------------------


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def init_backbone(
    output_dir: str | Path,
    shape: str,
    *,
    vocab: str | Path | None = None,
    train_text: str | Path | Sequence[str | Path] = (),
    vocab_size: int = 8000,
    seed: int = 0,
    force: bool = False,
    max_sentences: int = MAX_SENTENCES,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Path:
    """Build a T5ForConditionalGeneration of ``shape`` (a key of :data:`SHAPES`) with random
    weights (seeded), its ``vocab_size`` set to ``len(tokenizer)``, and save it with the tokenizer
    to ``output_dir``: ``config.json``, ``model.safetensors`` and the tokenizer files.

    Exactly one of ``vocab`` (a SentencePiece ``.model`` file, a ``tokenizer.json`` or a tokenizer
    directory) and ``train_text`` (text sources for :func:`train_vocabulary`) is required.  An
    existing non-empty ``output_dir`` needs ``force=True``.  Returns ``output_dir``.
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    config_values = _shape_config(shape)
    if isinstance(train_text, (str, Path)):
        train_text = [train_text]
    train_text = list(train_text)
    if (vocab is None) == (not train_text):
        raise ValueError(
            "give exactly one of --vocab (an existing SentencePiece vocabulary) and --train-text "
            "(text to train one on)" + ("" if vocab is None else ", not both")
        )
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, force)
    if vocab is not None:
        tokenizer = load_vocabulary(vocab)
        source = str(vocab)
    else:
        tokenizer = train_vocabulary(
            train_text, vocab_size=vocab_size, seed=seed, max_sentences=max_sentences, log=log, progress=progress
        )
        source = ", ".join(str(t) for t in train_text)
    check_t5_tokenizer(tokenizer, source)

    config_values.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    config = T5Config(**config_values)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.eval()

    if output_dir.is_dir() and force:
        for name in _HF_FILES:
            (output_dir / name).unlink(missing_ok=True)
        for stale in output_dir.glob("model-*-of-*.safetensors"):
            stale.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    return output_dir
