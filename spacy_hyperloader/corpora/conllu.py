"""CoNLL-U and its relatives: blocks of tab-separated token lines after ``#`` comment lines,
separated by blank lines.

* ``conllu`` (UD English EWT): UPOS -> ``pos_``, XPOS -> ``tag_``; multi-word token ranges
  (``1-2``) and empty nodes (``1.1``) are skipped; nothing else (lemmas, morphology, heads,
  MISC entities, SpaceAfter) is carried over.
* ``mtod`` (Multilingual TOD, English): ``# text:``, ``# intent:``, ``# slots:`` comments, then
  ``idx word intent tag``; ``NoLabel`` is O; slot tags -> ``doc.ents``; the intent goes to
  ``doc.user_data["intent"]`` and the ``# text:`` line (original casing) to
  ``doc.user_data["original_text"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import ConversionStats, CorpusFormatError, Sentence, iter_lines

__all__ = ["read_conllu", "read_mtod"]


def _blocks(path: Path) -> Iterator[tuple[int, list[str], list[tuple[int, list[str]]]]]:
    """``(first line, comment lines, [(line number, fields)])`` per blank-line separated block."""
    comments: list[str] = []
    rows: list[tuple[int, list[str]]] = []
    start = 0
    for number, line in iter_lines(path):
        if not line.strip():
            if rows:
                yield start, comments, rows
            comments, rows = [], []
            continue
        if not rows and not comments:
            start = number
        if line.startswith("#") and not rows:
            comments.append(line)
            continue
        rows.append((number, line.split("\t")))
    if rows:
        yield start, comments, rows


def _comment_value(comments: list[str], key: str, sep: str) -> str | None:
    prefix = f"# {key}"
    for comment in comments:
        if comment.startswith(prefix):
            rest = comment[len(prefix):].lstrip()
            if rest.startswith(sep):
                return rest[len(sep):].strip()
    return None


def read_conllu(path: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """CoNLL-U: one Sentence per block, ``pos_`` from UPOS and ``tag_`` from XPOS."""
    for start, comments, rows in _blocks(path):
        words: list[str] = []
        upos: list[str] = []
        xpos: list[str] = []
        for number, fields in rows:
            if len(fields) != 10:
                raise CorpusFormatError(
                    f"{path}:{number}: expected 10 tab-separated CoNLL-U columns, got {len(fields)}"
                )
            token_id = fields[0]
            if "-" in token_id:
                stats.skip("multi-word token lines")
                continue
            if "." in token_id:
                stats.skip("empty nodes")
                continue
            words.append(fields[1])
            upos.append(fields[3])
            xpos.append(fields[4])
        if not words:
            continue
        user_data = {}
        sent_id = _comment_value(comments, "sent_id", "=")
        if sent_id:
            user_data["sent_id"] = sent_id
        # "_" means unannotated in CoNLL-U: leave the attribute unset rather than write "_".
        has_upos = any(tag != "_" for tag in upos)
        has_xpos = any(tag != "_" for tag in xpos)
        yield Sentence(
            words=words,
            tags=[("" if t == "_" else t) for t in xpos] if has_xpos else None,
            pos=[("X" if t == "_" else t) for t in upos] if has_upos else None,
            user_data=user_data,
            line=start,
        )


def read_mtod(path: Path, stats: ConversionStats) -> Iterator[Sentence]:
    """mTOD: ``idx word intent tag`` rows; ``NoLabel`` is O; slot tags -> ents."""
    for start, comments, rows in _blocks(path):
        words: list[str] = []
        tags: list[str] = []
        intent = _comment_value(comments, "intent", ":")
        for number, fields in rows:
            if len(fields) != 4:
                raise CorpusFormatError(
                    f"{path}:{number}: expected 4 tab-separated columns (idx word intent tag), got {len(fields)}"
                )
            words.append(fields[1])
            tag = fields[3]
            tags.append("O" if tag in ("NoLabel", "O", "_") else tag)
            if intent is None:
                intent = fields[2]
        user_data = {"intent": intent} if intent else {}
        text = _comment_value(comments, "text", ":")
        if text is not None:
            user_data["original_text"] = text
        yield Sentence(words=words, ner=tags, user_data=user_data, line=start)
