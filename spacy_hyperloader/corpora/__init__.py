"""Corpus converters: CoNLL-2003, CoNLL-2000, UD (CoNLL-U), OntoNotes, MIT, ATIS/SNIPS and
mTOD files to spaCy ``DocBin`` files, one Doc per sentence.

Each Doc carries the gold annotation the corpus has: ``token.tag_`` (PTB/XPOS),
``token.pos_`` (UPOS; mapped from PTB by :mod:`.ptb_to_ud` where the corpus has no UPOS),
``doc.ents`` (NER or slots; every token is then O or inside an entity) and
``doc.spans["chunks"]`` (chunks, label = chunk type).  Words are joined by single spaces.
``doc.user_data["corpus"]`` records the source (format, file name -- ``atis/train`` for a
split directory --, sentence index in the file), plus ``intent`` (ATIS/SNIPS/mTOD) or
``sent_id`` (CoNLL-U) where the corpus has them.

Example (CoNLL-2003 train, the paper's 10 % low-resource subset)::

    stats = convert("conll2003", Path("train.txt"), Path("corpus/train.spacy"), fraction=0.1)
    stats.summary()
    # '1,404 sentences, 19,801 tokens, 2,324 entities, 9,766 chunk spans
    #  (10% sample of 14,041 sentences, seed 0)'
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from .base import CHUNKS_KEY, ConversionStats, CorpusFormatError, Sentence, build_doc, drop_blank_tokens, iob_spans
from .columns import read_conll2000, read_conll2003, read_ontonotes
from .conllu import read_conllu, read_mtod
from ..annotation.ptb_to_ud import PTB_TO_UD, ptb_to_ud
from .slots import read_mit, read_seq

__all__ = [
    "CHUNKS_KEY",
    "FORMATS",
    "ConversionStats",
    "CorpusFormat",
    "CorpusFormatError",
    "PTB_TO_UD",
    "Sentence",
    "convert",
    "iob_spans",
    "ptb_to_ud",
    "read_docs",
    "sample_indices",
]

Reader = Callable[[Path, ConversionStats], Iterator[Sentence]]


@dataclass(frozen=True)
class CorpusFormat:
    """A registered format: how to read it and what it gives."""

    name: str
    reader: Reader
    description: str
    input: str  # what INPUT must be, for messages and help
    is_directory: bool = False


FORMATS: dict[str, CorpusFormat] = {
    f.name: f
    for f in (
        CorpusFormat(
            "conll2003", read_conll2003,
            "CoNLL-2003 `word POS chunk NER` -> tag_, pos_, ents, spans['chunks']",
            "a CoNLL-2003 file (word POS chunk NER columns)",
        ),
        CorpusFormat(
            "conll2000", read_conll2000,
            "CoNLL-2000 `word POS chunk` -> tag_, pos_, spans['chunks']",
            "a CoNLL-2000 file (word POS chunk columns)",
        ),
        CorpusFormat(
            "conllu", read_conllu,
            "CoNLL-U (UD) -> pos_ from UPOS, tag_ from XPOS",
            "a CoNLL-U file",
        ),
        CorpusFormat(
            "ontonotes", read_ontonotes,
            "OntoNotes `word<TAB>POS<TAB>NER` -> tag_, pos_, ents",
            "an OntoNotes NER file (word, POS, NER tab-separated; may be .xz)",
        ),
        CorpusFormat(
            "mit", read_mit,
            "MIT Movie/Restaurant `word:TAG ... <=> <NULL>` lines -> ents",
            "an MIT corpus file (word:TAG items, one sentence per line)",
        ),
        CorpusFormat(
            "seq", read_seq,
            "ATIS/SNIPS split directory with seq.in + seq.out -> ents (+ intent from label)",
            "a split directory containing seq.in and seq.out",
            is_directory=True,
        ),
        CorpusFormat(
            "mtod", read_mtod,
            "mTOD CoNLL-U-like `idx word intent tag` -> ents (+ intent)",
            "an mTOD .conllu file (idx word intent tag columns)",
        ),
    )
}


def _check_fraction(fraction: float) -> float:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or math.isnan(fraction)
        or not 0 < fraction <= 1
    ):
        raise ValueError(f"fraction must be a number in (0, 1] (e.g. 0.1 for 10 %), got {fraction!r}")
    return float(fraction)


def _lookup(format: str) -> CorpusFormat:
    found = FORMATS.get(format) or FORMATS.get(str(format).lower())
    if found is None:
        raise ValueError(f"unknown corpus format {format!r}; known formats: {', '.join(FORMATS)}")
    return found


def _check_input(spec: CorpusFormat, input_path: Path) -> None:
    if spec.is_directory:
        if not input_path.is_dir():
            what = "does not exist" if not input_path.exists() else "is not a directory"
            raise FileNotFoundError(f"{input_path} {what}: the {spec.name} format expects {spec.input}")
    elif not input_path.is_file():
        what = "does not exist" if not input_path.exists() else "is not a file"
        raise FileNotFoundError(f"{input_path} {what}: the {spec.name} format expects {spec.input}")


def sample_indices(n: int, fraction: float, seed: int) -> list[int]:
    """Indices of the kept sentences, in order: ``round(n * fraction)`` (at least 1) drawn
    by ``random.Random(seed).sample``."""
    if fraction >= 1:
        return list(range(n))
    k = min(n, max(1, round(n * fraction)))
    return sorted(random.Random(seed).sample(range(n), k))


def read_docs(
    format: str,
    input_path: Path | str,
    *,
    vocab: Vocab | None = None,
    fraction: float = 1.0,
    seed: int = 0,
    lang: str = "en",
    progress: bool = False,
) -> tuple[list[Doc], ConversionStats]:
    """Read a corpus into Docs (one per sentence) without writing anything; see :func:`convert`."""
    spec = _lookup(format)
    fraction = _check_fraction(fraction)
    input_path = Path(input_path)
    _check_input(spec, input_path)
    stats = ConversionStats(format=spec.name, input_path=str(input_path), fraction=fraction, seed=seed)
    sentences: list[Sentence] = []
    try:
        for sentence in spec.reader(input_path, stats):
            sentence = drop_blank_tokens(sentence, stats)
            if not sentence.words:
                stats.empty_sentences += 1
                continue
            sentences.append(sentence)
    except CorpusFormatError as err:
        raise CorpusFormatError(f"{input_path} is not valid {spec.name} input: {err}") from None
    if not sentences:
        raise ValueError(f"no sentences found in {input_path}; is it {spec.input}?")
    stats.source_sentences = len(sentences)
    stats.source_tokens = sum(len(s.words) for s in sentences)
    if vocab is None:
        vocab = spacy.blank(lang).vocab
    keep = sample_indices(len(sentences), fraction, seed)
    indices: Iterator[int] | list[int] = keep
    if progress:
        from tqdm import tqdm

        indices = tqdm(keep, desc=f"{spec.name} {input_path.name}", unit="sent")
    docs = []
    # the file name; for a split directory (seq) also its parent: "atis/train"
    name = f"{input_path.parent.name}/{input_path.name}" if spec.is_directory else input_path.name
    for i in indices:
        sentence = sentences[i]
        sentence.user_data = {"corpus": {"format": spec.name, "file": name, "index": i}, **sentence.user_data}
        try:
            docs.append(build_doc(vocab, sentence, stats))
        except CorpusFormatError as err:
            raise CorpusFormatError(f"{input_path} is not valid {spec.name} input: {err}") from None
    return docs, stats


def convert(
    format: str,
    input_path: Path | str,
    output_path: Path | str,
    *,
    fraction: float = 1.0,
    seed: int = 0,
    lang: str = "en",
    progress: bool = False,
) -> ConversionStats:
    """Convert a corpus file (a split directory for ``seq``) to a ``DocBin`` at ``output_path``.

    ``format`` is a key of :data:`FORMATS`.  Compressed input (gzip, xz, bzip2) is read
    transparently.  ``fraction`` in (0, 1] keeps ``round(fraction * n)`` sentences (at least
    one) chosen by ``random.Random(seed).sample``, in their original order.  The parent
    folders of ``output_path`` are created.  Raises ``ValueError`` for an unknown format or a
    bad fraction (:class:`CorpusFormatError`, a ValueError, for malformed input) and
    ``FileNotFoundError`` for a missing input.
    """
    docs, stats = read_docs(format, input_path, fraction=fraction, seed=seed, lang=lang, progress=progress)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=True).to_disk(output_path)
    stats.output_path = str(output_path)
    return stats
