"""What every corpus reader shares: the sentence record, the statistics, transparent
decompression, and Doc building."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy.tokens import Doc, Span
from spacy.util import filter_spans
from spacy.vocab import Vocab

from ..annotation.iob import iob_spans
from ..annotation.ptb_to_ud import UD_POS_TAGS

__all__ = [
    "CHUNKS_KEY",
    "ConversionStats",
    "CorpusFormatError",
    "Sentence",
    "build_doc",
    "iob_spans",
    "iter_lines",
    "open_text",
]

#: ``doc.spans`` key of the chunk spans (CoNLL-2003, CoNLL-2000).
CHUNKS_KEY = "chunks"

_MAGIC = ((b"\x1f\x8b", gzip.open), (b"\xfd7zXZ\x00", lzma.open), (b"BZh", bz2.open))


class CorpusFormatError(ValueError):
    """A line of the input does not fit the format; the message names file and line."""


@dataclass
class Sentence:
    """One sentence as a reader found it: words plus aligned gold columns (``None`` = the
    corpus does not annotate that layer)."""

    words: list[str]
    tags: list[str] | None = None  # token.tag_ (verbatim)
    pos: list[str] | None = None  # token.pos_ (UPOS)
    ner: list[str] | None = None  # IOB tags -> doc.ents
    chunks: list[str] | None = None  # IOB tags -> doc.spans["chunks"]
    user_data: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # 1-based line of the first token, for messages


@dataclass
class ConversionStats:
    """What a conversion read and wrote.  ``sentences``/``tokens``/``entities``/``spans`` count
    the written Docs (after ``fraction``); ``source_sentences`` counts all sentences read."""

    format: str = ""
    input_path: str = ""
    output_path: str = ""
    sentences: int = 0
    tokens: int = 0
    entities: int = 0
    spans: int = 0  # chunk spans in doc.spans["chunks"]
    source_sentences: int = 0
    source_tokens: int = 0
    fraction: float = 1.0
    seed: int = 0
    documents: int = 0  # -DOCSTART- lines seen
    dropped_entities: int = 0  # removed by filter_spans (overlaps)
    blank_tokens: int = 0  # tokens whose word was empty/whitespace: skipped
    empty_sentences: int = 0  # sentences with no (non-blank) word: skipped
    invalid_tags: int = 0  # tags like "B-" with no type: read as O
    skipped_lines: dict[str, int] = field(default_factory=dict)  # structural lines skipped, by kind
    unmapped_pos: dict[str, int] = field(default_factory=dict)  # PTB tags mapped to X by fallback
    entity_labels: dict[str, int] = field(default_factory=dict)
    span_labels: dict[str, int] = field(default_factory=dict)

    def skip(self, kind: str, n: int = 1) -> None:
        self.skipped_lines[kind] = self.skipped_lines.get(kind, 0) + n

    def summary(self) -> str:
        """One line: ``"1,234 sentences, 23,456 tokens, 2,345 entities, 3,456 chunk spans"``
        plus notes on sampling and on anything dropped or skipped."""
        text = (
            f"{self.sentences:,} sentences, {self.tokens:,} tokens, "
            f"{self.entities:,} entities, {self.spans:,} chunk spans"
        )
        notes = []
        if self.sentences != self.source_sentences:
            notes.append(f"{self.fraction * 100:g}% sample of {self.source_sentences:,} sentences, seed {self.seed}")
        for count, what in (
            (self.dropped_entities, "overlapping entities dropped"),
            (self.blank_tokens, "blank tokens skipped"),
            (self.empty_sentences, "empty sentences skipped"),
            (self.invalid_tags, "invalid tags read as O"),
        ):
            if count:
                notes.append(f"{count:,} {what}")
        return text + (f" ({'; '.join(notes)})" if notes else "")


def open_text(path: Path) -> io.TextIOBase:
    """Open a UTF-8 text file, decompressing gzip, xz or bzip2 transparently (sniffed from the
    first bytes, so the suffix does not matter)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without its line ending)`` for every line of ``path``."""
    with open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            yield number, line.rstrip("\r\n")


def drop_blank_tokens(sentence: Sentence, stats: ConversionStats) -> Sentence:
    """Remove tokens whose word is empty or whitespace (with their tags), counting them."""
    keep = [i for i, word in enumerate(sentence.words) if word.strip()]
    if len(keep) == len(sentence.words):
        return sentence
    stats.blank_tokens += len(sentence.words) - len(keep)

    def pick(column: list[str] | None) -> list[str] | None:
        return None if column is None else [column[i] for i in keep]

    return Sentence(
        words=[sentence.words[i] for i in keep],
        tags=pick(sentence.tags),
        pos=pick(sentence.pos),
        ner=pick(sentence.ner),
        chunks=pick(sentence.chunks),
        user_data=sentence.user_data,
        line=sentence.line,
    )


def build_doc(vocab: Vocab, sentence: Sentence, stats: ConversionStats) -> Doc:
    """One Doc for one sentence: tag_, pos_, ents (every token O or in an entity when the
    corpus has NER) and ``doc.spans["chunks"]`` (when it has chunks); counts go to ``stats``."""
    words = sentence.words
    n = len(words)
    for name in ("tags", "pos", "ner", "chunks"):
        column = getattr(sentence, name)
        if column is not None and len(column) != n:
            raise CorpusFormatError(
                f"line {sentence.line}: {len(column)} {name} for {n} words"
            )
    if sentence.pos is not None:
        for tag in sentence.pos:
            if tag not in UD_POS_TAGS:
                raise CorpusFormatError(f"line {sentence.line}: {tag!r} is not a Universal POS tag")
    doc = Doc(
        vocab,
        words=words,
        spaces=[True] * (n - 1) + [False],
        tags=sentence.tags,
        pos=sentence.pos,
    )
    if sentence.ner is not None:
        found, invalid = iob_spans(sentence.ner)
        stats.invalid_tags += invalid
        spans = [Span(doc, start, end, label=label) for start, end, label in found]
        kept = filter_spans(spans)
        stats.dropped_entities += len(spans) - len(kept)
        doc.set_ents(kept, default="outside")
        stats.entities += len(kept)
        _count(stats.entity_labels, (span.label_ for span in kept))
    if sentence.chunks is not None:
        found, invalid = iob_spans(sentence.chunks)
        stats.invalid_tags += invalid
        doc.spans[CHUNKS_KEY] = [Span(doc, start, end, label=label) for start, end, label in found]
        stats.spans += len(found)
        _count(stats.span_labels, (label for _, _, label in found))
    if sentence.user_data:
        doc.user_data.update(sentence.user_data)
    stats.sentences += 1
    stats.tokens += n
    return doc


def _count(counter: dict[str, int], labels: Iterable[str]) -> None:
    for label, k in Counter(labels).items():
        counter[label] = counter.get(label, 0) + k
