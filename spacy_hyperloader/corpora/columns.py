"""Column corpora with one token per line and blank lines between sentences:
CoNLL-2003 (``word POS chunk NER``), CoNLL-2000 (``word POS chunk``) and OntoNotes 5
(``word<TAB>POS<TAB>NER``, xz-compressed).  ``-DOCSTART-`` lines are skipped (and end a
sentence); POS is PTB, kept as ``tag_`` and mapped to UPOS for ``pos_``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import ConversionStats, CorpusFormatError, Sentence, iter_lines
from ..annotation.ptb_to_ud import is_known_tag, ptb_to_ud

__all__ = ["read_conll2000", "read_conll2003", "read_ontonotes"]

DOCSTART = "-DOCSTART-"


def _read_columns(path: Path, stats: ConversionStats, columns: tuple[str, ...]) -> Iterator[Sentence]:
    width = len(columns)
    rows: list[list[str]] = []
    first_line = 0

    def flush() -> Sentence:
        by_name = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        tags = by_name["tag"]
        for tag in tags:
            if not is_known_tag(tag):
                stats.unmapped_pos[tag] = stats.unmapped_pos.get(tag, 0) + 1
        return Sentence(
            words=by_name["word"],
            tags=tags,
            pos=[ptb_to_ud(tag) for tag in tags],
            ner=by_name.get("ner"),
            chunks=by_name.get("chunk"),
            line=first_line,
        )

    for number, line in iter_lines(path):
        if not line.strip():
            if rows:
                yield flush()
                rows = []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if fields[0] == DOCSTART:
            stats.documents += 1
            if rows:  # a -DOCSTART- without a blank line before it still ends the sentence
                yield flush()
                rows = []
            continue
        if len(fields) != width:
            raise CorpusFormatError(
                f"{path}:{number}: expected {width} columns ({' '.join(columns)}), "
                f"got {len(fields)}: {line!r}"
            )
        if not rows:
            first_line = number
        rows.append(fields)
    if rows:
        yield flush()


def read_conll2003(path: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """CoNLL-2003: ``word POS chunk NER``; tag_, pos_, ents, chunk spans."""
    return _read_columns(path, stats, ("word", "tag", "chunk", "ner"))


def read_conll2000(path: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """CoNLL-2000: ``word POS chunk``; tag_, pos_, chunk spans."""
    return _read_columns(path, stats, ("word", "tag", "chunk"))


def read_ontonotes(path: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """OntoNotes 5 (CoNLL-style NER release): ``word<TAB>POS<TAB>NER``; tag_, pos_, ents."""
    return _read_columns(path, stats, ("word", "tag", "ner"))
