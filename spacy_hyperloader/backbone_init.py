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
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
# SentencePiece silently skips sentences over ``max_sentence_length`` (4192 bytes): split them.
_MAX_LINE_CHARS = 2000
# Members of NLTK corpus zips that are not corpus text.
_SKIP_MEMBERS = {"readme", "contents", "cats.txt", "license", "license.txt", "citation.txt", "fileids"}
_BINARY_SUFFIXES = {".zip", ".gz", ".xz", ".bz2", ".pickle", ".pkl", ".npy", ".bin", ".model", ".png", ".jpg", ".pdf"}
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
    from .tokenizer import load_tokenizer

    path = Path(vocab)
    if not path.exists():
        raise FileNotFoundError(
            f"vocabulary {str(vocab)!r} does not exist; give a SentencePiece .model file, a "
            f"tokenizer.json or a tokenizer directory"
        )
    if path.is_file() and path.suffix != ".model" and path.name != "tokenizer.json":
        if path.suffix == ".json":  # a tokenizer.json under another name
            from transformers import T5TokenizerFast

            return T5TokenizerFast(tokenizer_file=str(path))
        raise ValueError(f"vocabulary {path} is neither a SentencePiece .model file, a tokenizer.json nor a directory")
    return load_tokenizer(path)


def _split_long(line: str) -> Iterator[str]:
    while len(line) > _MAX_LINE_CHARS:
        cut = line.rfind(" ", 0, _MAX_LINE_CHARS)
        if cut <= 0:
            cut = _MAX_LINE_CHARS
        yield line[:cut]
        line = line[cut:].lstrip()
    if line:
        yield line


def _is_tagged(lines: Sequence[str]) -> bool:
    """Whether the text is ``word/tag`` tokens (the Brown corpus and other tagged NLTK corpora)."""
    tokens = [t for line in lines for t in line.split()][:500]
    if len(tokens) < 5:
        return False
    tagged = sum(1 for t in tokens if "/" in t[1:] and not t.endswith("/") and "://" not in t)
    return tagged / len(tokens) >= 0.9


def _strip_tags(line: str) -> str:
    return " ".join(t.rsplit("/", 1)[0] if "/" in t[1:] else t for t in line.split())


def _text_lines(text: str, *, tagged: bool | None = None) -> Iterator[str]:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if tagged is None:
        tagged = _is_tagged(lines[:50])
    for line in lines:
        if tagged:
            line = _strip_tags(line)
        yield from _split_long(line)


def _zip_lines(path: Path) -> Iterator[str]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or not name or name.startswith("."):
                continue
            if name.lower() in _SKIP_MEMBERS or name.lower().startswith("readme"):
                continue
            if Path(name).suffix.lower() in _BINARY_SUFFIXES:
                continue
            data = archive.read(info)
            if b"\x00" in data[:4096]:
                continue  # binary
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
            yield from _text_lines(text)


def _docbin_lines(path: Path) -> Iterator[str]:
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("xx").vocab
    for doc in DocBin().from_disk(path).get_docs(vocab):
        words = [token.text for token in doc if token.text.strip()]
        if words:
            yield from _split_long(" ".join(words))


def _file_lines(path: Path) -> Iterator[str]:
    if path.suffix == ".spacy":
        yield from _docbin_lines(path)
    elif path.suffix == ".zip":
        yield from _zip_lines(path)
    else:
        from .corpora.base import open_text  # transparent gzip / xz / bzip2

        with open_text(path) as fh:
            yield from _text_lines(fh.read())


def _expand_sources(sources: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"training text {str(source)!r} does not exist")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".spacy"))
            if not found:
                raise ValueError(f"training text directory {path} has no .txt or .spacy files")
            files.extend(found)
        else:
            files.append(path)
    return files


def iter_training_text(sources: Iterable[str | Path]) -> Iterator[str]:
    """Lines of text from ``.txt`` files (any other suffix is read as text too, gzip/xz/bzip2
    decompressed), directories of ``.txt``/``.spacy`` files, ``.spacy`` DocBins (each doc's words
    joined by spaces) and NLTK corpus ``.zip`` files (the text members; READMEs and binary
    members skipped; ``word/tag`` corpora such as Brown have their tags stripped)."""
    for path in _expand_sources(sources):
        yield from _file_lines(path)


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
    from .tokenizer import train_sentencepiece

    files = _expand_sources(sources)  # fail on a missing source before reading anything
    lines: Iterable[str] = (line for path in files for line in _file_lines(path))
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


def _check_tokenizer(tokenizer, source: str) -> None:
    sentinel = tokenizer.convert_tokens_to_ids("<extra_id_0>")
    if sentinel is None or sentinel == tokenizer.unk_token_id:
        raise ValueError(
            f"vocabulary {source} has no <extra_id_N> sentinel tokens; HyperLoader's target format "
            f"needs a T5-style vocabulary"
        )
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError(f"vocabulary {source} has no pad or eos token; a T5-style vocabulary has pad 0 and </s> 1")


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
    _check_tokenizer(tokenizer, source)

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
