"""Evaluation scores for sequence labelling, computed by seqeval.

seqeval (default mode, IOB2 tags) is what the HyperLoader paper and most
sequence-labelling work report, so the numbers come from it rather than from
code of our own; this module only adds input checks and quiet handling of
empty input.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import (
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)

__all__ = ["span_scores", "token_accuracy"]

_AVG_ROWS = ("micro avg", "macro avg", "weighted avg")


def _as_lists(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    """Copy to lists of lists (seqeval only treats *lists* as sentences) and
    check that sentences pair up, naming the first that does not."""
    gold_l = [list(sent) for sent in gold]
    pred_l = [list(sent) for sent in pred]
    if len(gold_l) != len(pred_l):
        raise ValueError(
            f"gold has {len(gold_l)} sentences but pred has {len(pred_l)}"
        )
    for i, (g, p) in enumerate(zip(gold_l, pred_l)):
        if len(g) != len(p):
            raise ValueError(
                f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}"
            )
    return gold_l, pred_l


def span_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict:
    """Span-level micro precision/recall/F1 plus per-type scores.

    Returns ``{"p": float, "r": float, "f": float, "per_type": {type:
    {"p", "r", "f"}}}`` with values in 0..1, from seqeval's default mode.
    Input without sentences or without any span gives zeros (and an empty
    ``per_type``) instead of an error or UndefinedMetricWarning.
    """
    gold_l, pred_l = _as_lists(gold, pred)
    if not gold_l:
        return {"p": 0.0, "r": 0.0, "f": 0.0, "per_type": {}}
    # zero_division=0: no gold and/or no predicted spans score 0, as seqeval's default does,
    # without its UndefinedMetricWarning.
    with warnings.catch_warnings():
        # classification_report averages an empty per-type table (numpy warns).
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(precision_score(gold_l, pred_l, zero_division=0))
        r = float(recall_score(gold_l, pred_l, zero_division=0))
        f = float(f1_score(gold_l, pred_l, zero_division=0))
        report = classification_report(gold_l, pred_l, output_dict=True, zero_division=0)
    per_type = {
        type_: {
            "p": float(row["precision"]),
            "r": float(row["recall"]),
            "f": float(row["f1-score"]),
        }
        for type_, row in report.items()
        if type_ not in _AVG_ROWS
    }
    return {"p": p, "r": r, "f": f, "per_type": per_type}


def token_accuracy(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (seqeval's
    accuracy_score); 0.0 when there are no tokens."""
    gold_l, pred_l = _as_lists(gold, pred)
    if not any(gold_l):
        return 0.0
    return float(accuracy_score(gold_l, pred_l))
