"""Reading IOB-style tags as spans, the way seqeval's default mode does: used by the corpus
converters (gold) and by the component's tasks (gold of spans it must rebuild)."""

from __future__ import annotations

from collections.abc import Sequence


def _split_tag(tag: str) -> tuple[str, str]:
    """``(prefix, type)``; prefix ``O`` for outside.  A tag without a B-/I-/E-/S-/L-/U- prefix
    is a bare type (IO scheme) and reads as ``I``."""
    if tag == "O" or tag == "":
        return "O", ""
    if len(tag) >= 2 and tag[1] == "-" and tag[0] in "BIESLU":
        return tag[0], tag[2:]
    return "I", tag


def iob_spans(tags: Sequence[str]) -> tuple[list[tuple[int, int, str]], int]:
    """Decode IOB tags into ``(start, end, label)`` spans, as seqeval (default mode) reads them.

    ``B-X`` starts a span; ``I-X`` continues a span of type X, and otherwise (after ``O`` or
    a span of another type: IOB1-style) starts a new one; a bare ``X`` reads as ``I-X`` (so in
    IO data consecutive tokens of one type form one span); ``E-``/``L-`` end and ``S-``/``U-``
    are one-token spans (BIOES/BILUO).  Returns the spans and the number of tags with an empty
    type (``"B-"``), which read as ``O``.
    """
    spans: list[tuple[int, int, str]] = []
    invalid = 0
    start: int | None = None
    label = ""
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag)
        if prefix != "O" and not kind:
            invalid += 1
            prefix = "O"
        if prefix == "O":
            if start is not None:
                spans.append((start, i, label))
                start = None
            continue
        if start is None or prefix in "BSU" or kind != label:
            if start is not None:
                spans.append((start, i, label))
            start, label = i, kind
        if prefix in "ESLU":
            spans.append((start, i + 1, label))
            start = None
    if start is not None:
        spans.append((start, len(tags), label))
    return spans, invalid
