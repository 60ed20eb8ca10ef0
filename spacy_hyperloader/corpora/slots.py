"""Slot-filling corpora with one sentence per line.

* ``mit`` (MIT Movie, MIT Movie Trivia, MIT Restaurant as distributed with
  sz128/slot_filling_and_intent_detection_of_SLU): ``word:TAG word:TAG ... <=> <NULL>``;
  each item splits on its last ``:`` (words may contain ``:``); reading stops at ``<=>``.
* ``seq`` (ATIS, SNIPS as in MiuLab/SlotGated-SLU): a split directory with ``seq.in``
  (words) and ``seq.out`` (IOB2 tags), aligned line by line and word by word; an optional
  ``label`` file gives each sentence's intent (``doc.user_data["intent"]``).

Slot types are kept verbatim (``fromloc.city_name``, ``Restaurant_Name``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import ConversionStats, CorpusFormatError, Sentence, iter_lines

__all__ = ["MIT_END", "find_seq_file", "read_mit", "read_seq"]

MIT_END = "<=>"


def read_mit(path: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """MIT ``word:TAG`` lines -> ents."""
    for number, line in iter_lines(path):
        items = line.split()
        if not items:
            stats.skip("blank lines")
            continue
        words: list[str] = []
        tags: list[str] = []
        for item in items:
            if item == MIT_END:
                break
            word, colon, tag = item.rpartition(":")
            if not colon:
                raise CorpusFormatError(f"{path}:{number}: item {item!r} is not word:TAG")
            words.append(word)
            tags.append(tag)
        yield Sentence(words=words, ner=tags, line=number)


def find_seq_file(directory: Path, name: str) -> Path | None:
    """``directory/name``, or its ``.gz``/``.xz``/``.bz2`` form, whichever exists."""
    for suffix in ("", ".gz", ".xz", ".bz2"):
        candidate = directory / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_seq(directory: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """ATIS/SNIPS split directory (``seq.in`` + ``seq.out`` [+ ``label``]) -> ents."""
    seq_in = find_seq_file(directory, "seq.in")
    seq_out = find_seq_file(directory, "seq.out")
    if seq_in is None or seq_out is None:
        missing = "seq.in" if seq_in is None else "seq.out"
        raise FileNotFoundError(
            f"{directory / missing} not found: the seq format expects a split directory "
            "with seq.in (words) and seq.out (IOB tags)"
        )
    label_path = find_seq_file(directory, "label")
    labels = [line for _, line in iter_lines(label_path)] if label_path is not None else None
    outs = iter_lines(seq_out)
    n_lines = 0
    for number, line in iter_lines(seq_in):
        n_lines = number
        out = next(outs, None)
        if out is None:
            raise CorpusFormatError(f"{seq_out} has fewer lines than {seq_in} (which has line {number})")
        words, tags = line.split(), out[1].split()
        if len(words) != len(tags):
            raise CorpusFormatError(
                f"{seq_in}:{number}: {len(words)} words but {seq_out.name} line {number} has {len(tags)} tags"
            )
        if not words:
            stats.skip("blank lines")
            continue
        user_data = {}
        if labels is not None and number <= len(labels) and labels[number - 1].strip():
            user_data["intent"] = labels[number - 1].strip()
        yield Sentence(words=words, ner=tags, user_data=user_data, line=number)
    extra = sum(1 for _, rest in outs if rest.strip())
    if extra:
        raise CorpusFormatError(f"{seq_out} has {extra} more non-blank lines than {seq_in} ({n_lines} lines)")
