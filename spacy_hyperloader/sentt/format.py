"""The "SentT'" seq2seq format that HyperLoader uses for sequence labelling.

A labelled sentence becomes a source and a target with one T5 sentinel before
each word (and one after the last), so the model only has to emit a label
after each sentinel::

    source: <extra_id_0> show <extra_id_1> me ... <extra_id_5> hanks <extra_id_6>
    target: <extra_id_0> O <extra_id_1> O ... <extra_id_4> Actor <extra_id_5> I <extra_id_6>

The token ids are built by :mod:`.codec`; this module holds the rules on
strings: BIO tags are simplified to shorten the target (``B-X`` -> ``X``,
``I-X`` -> ``I``; POS-style tags are used as plain labels), generated text is
read back into one label per word (:func:`parse_target`), and since T5 has
100 sentinels, a segment holds at most 99 words: longer sentences are cut with
:func:`plan_segments` and the per-segment labels rejoined with
:func:`join_segments`.

Everything here is pure Python so it can be tested and used without torch or
spaCy.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence

__all__ = [
    "MAX_WORDS_PER_SEGMENT",
    "sentinel",
    "simplify_bio",
    "expand_bio",
    "parse_target",
    "plan_segments",
    "plan_source_segments",
    "join_segments",
]

#: T5 has sentinels ``<extra_id_0>`` .. ``<extra_id_99>``; a segment of n words
#: needs n + 1 of them, so 99 words is the most one segment can hold.
MAX_WORDS_PER_SEGMENT = 99
#: A word contributes at most this many subword pieces to the source (the rest are dropped; the
#: word keeps its label). One pathological token then costs what a normal word costs.
MAX_WORD_PIECES = 16

_N_SENTINELS = MAX_WORDS_PER_SEGMENT + 1
_SENTINEL_RE = re.compile(r"<extra_id_(\d+)>")
_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def sentinel(i: int) -> str:
    """Return the T5 sentinel token ``<extra_id_{i}>``.

    Only 0..99 exist in the T5 vocabulary; anything else would be split into
    ordinary subwords silently, so it is an error here.
    """
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < _N_SENTINELS:
        raise ValueError(
            f"sentinel index must be an int in 0..{_N_SENTINELS - 1}, got {i!r}"
        )
    return f"<extra_id_{i}>"


# ---------------------------------------------------------------------------
# BIO <-> simplified labels
# ---------------------------------------------------------------------------


def _split_bio(tag: object, position: int) -> tuple[str, str]:
    """Split an IOB2 tag into (prefix, type); prefix is "O", "B" or "I"."""
    if tag == "O":
        return "O", ""
    if not isinstance(tag, str) or tag[:2] not in ("B-", "I-"):
        raise ValueError(
            f"invalid BIO tag {tag!r} at position {position}: "
            "expected 'O', 'B-<type>' or 'I-<type>'"
        )
    type_ = tag[2:]  # split on the first '-' only: types may contain '-'
    if type_ == "":
        raise ValueError(
            f"invalid BIO tag {tag!r} at position {position}: empty entity type; "
            "expected 'B-<type>' or 'I-<type>' with a non-empty type"
        )
    if type_ in ("I", "O"):
        raise ValueError(
            f"invalid BIO tag {tag!r} at position {position}: entity type "
            f"{type_!r} is ambiguous in the simplified scheme (where 'I' and 'O' "
            "are labels of their own); expected a type other than 'I' or 'O'"
        )
    return tag[0], type_


def simplify_bio(tags: Sequence[str]) -> list[str]:
    """Map BIO tags to the shorter labels the model emits.

    ``B-X`` -> ``X``, ``I-X`` -> ``I``, ``O`` -> ``O``.  An ``I-X`` that does
    not continue an open span of type X is read as ``B-X`` (as seqeval's
    default mode reads it), so the spans seqeval sees are unchanged by
    ``expand_bio(simplify_bio(tags))``.
    """
    out: list[str] = []
    open_type: str | None = None
    for pos, tag in enumerate(tags):
        prefix, type_ = _split_bio(tag, pos)
        if prefix == "O":
            out.append("O")
            open_type = None
        elif prefix == "I" and open_type == type_:
            out.append("I")
        else:  # "B", or an "I" that starts a new span
            out.append(type_)
            open_type = type_
    return out


def expand_bio(labels: Sequence[str]) -> list[str]:
    """Inverse of :func:`simplify_bio`: turn simplified labels into IOB2 tags.

    ``O`` -> ``O``; ``I`` -> ``I-<type of the open span>``, or ``O`` when no
    span is open (a model may emit a stray ``I``); any other label X ->
    ``B-X``.
    """
    out: list[str] = []
    open_type: str | None = None
    for label in labels:
        if label == "O":
            out.append("O")
            open_type = None
        elif label == "I":
            out.append("O" if open_type is None else f"I-{open_type}")
        else:
            out.append(f"B-{label}")
            open_type = label
    return out


# ---------------------------------------------------------------------------
# Generated text -> labels
# ---------------------------------------------------------------------------


def parse_target(text: str, n_words: int) -> list[str]:
    """Read one label per word from (possibly malformed) model output.

    Labels are aligned by sentinel *number*, not by position, so a dropped or
    repeated sentinel only affects its own word: the label of word i is the
    stripped text after the first ``<extra_id_i>`` up to the next sentinel
    (any number) or the end, with ``<pad>``, ``</s>`` and ``<unk>`` removed.
    A word whose sentinel is missing, or whose text is empty, gets ``"O"``;
    sentinels numbered ``>= n_words`` only act as delimiters.  Always returns
    exactly ``n_words`` labels.
    """
    if isinstance(n_words, bool) or not isinstance(n_words, int):
        raise ValueError(f"n_words must be an int, got {n_words!r}")
    if not 0 <= n_words <= MAX_WORDS_PER_SEGMENT:
        raise ValueError(
            f"n_words must be in 0..{MAX_WORDS_PER_SEGMENT}, got {n_words}"
        )
    labels: list[str | None] = [None] * n_words
    matches = list(_SENTINEL_RE.finditer(text))
    for k, m in enumerate(matches):
        idx = int(m.group(1))
        if idx >= n_words or labels[idx] is not None:
            continue
        stop = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        chunk = text[m.end() : stop]
        for special in _SPECIAL_TOKENS:
            chunk = chunk.replace(special, "")
        labels[idx] = chunk.strip()
    return [label if label else "O" for label in labels]


# ---------------------------------------------------------------------------
# Segmentation of long sentences
# ---------------------------------------------------------------------------


def _check_lengths(name: str, lengths: Sequence[int]) -> list[int]:
    out = []
    for i, value in enumerate(lengths):
        try:
            n = operator.index(value)
        except TypeError:
            raise ValueError(
                f"{name}[{i}] must be an integer token count, got {value!r}"
            ) from None
        if n < 0:
            raise ValueError(f"{name}[{i}] must be >= 0, got {n}")
        out.append(n)
    return out


def plan_segments(
    source_lengths: Sequence[int],
    target_lengths: Sequence[int],
    *,
    max_words: int = MAX_WORDS_PER_SEGMENT,
    max_source_tokens: int = 128,
    max_target_tokens: int = 128,
) -> list[range]:
    """Cut a sentence into consecutive word ranges that each fit one T5 example.

    ``source_lengths[i]`` / ``target_lengths[i]`` are the subword counts of
    word i / label i.  A k-word segment costs ``sum(lengths) + (k + 1) + 1``
    tokens on each side (k + 1 sentinels and EOS).  Segments are cut greedily,
    each as long as ``max_words`` and both budgets allow.  A word too long to
    fit even alone becomes a segment on its own: nothing is ever truncated or
    dropped, so the ranges always cover ``range(n)`` exactly, in order.
    """
    src = _check_lengths("source_lengths", source_lengths)
    tgt = _check_lengths("target_lengths", target_lengths)
    if len(src) != len(tgt):
        raise ValueError(
            f"source_lengths and target_lengths must have equal length, got "
            f"{len(src)} and {len(tgt)}"
        )
    if isinstance(max_words, bool) or not isinstance(max_words, int) or not (
        1 <= max_words <= MAX_WORDS_PER_SEGMENT
    ):
        raise ValueError(
            f"max_words must be an int in 1..{MAX_WORDS_PER_SEGMENT}, got {max_words!r}"
        )
    for name, budget in (
        ("max_source_tokens", max_source_tokens),
        ("max_target_tokens", max_target_tokens),
    ):
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 3:
            raise ValueError(
                f"{name} must be an int >= 3 (the cost of a one-word segment "
                f"with an empty word), got {budget!r}"
            )

    segments: list[range] = []
    n = len(src)
    start = 0
    while start < n:
        # The first word is always taken, even when it alone is over budget.
        end = start + 1
        src_sum, tgt_sum = src[start], tgt[start]
        while end < n and end - start < max_words:
            k = end - start + 1
            if (
                src_sum + src[end] + k + 2 > max_source_tokens
                or tgt_sum + tgt[end] + k + 2 > max_target_tokens
            ):
                break
            src_sum += src[end]
            tgt_sum += tgt[end]
            end += 1
        segments.append(range(start, end))
        start = end
    return segments


def plan_source_segments(source_lengths: Sequence[int], *, max_source_tokens: int = 128) -> list[range]:
    """The segment plan budgeted on the source alone (pieces, sentinels, at most 99 words): the
    one plan training and prediction share, so a sentence is cut identically in both. The target
    is not budgeted: T5's relative positions let it run past the source budget."""
    n = len(source_lengths)
    return plan_segments(source_lengths, [0] * n, max_source_tokens=max_source_tokens,
                         max_target_tokens=MAX_WORDS_PER_SEGMENT + 2)


def join_segments(parts: Sequence[Sequence[str]]) -> list[str]:
    """Rejoin per-segment label lists (in segment order) into one sentence."""
    return [label for part in parts for label in part]
