"""Behavioural tests for spacy_hyperloader.metrics (seqeval-backed scores)."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_hyperloader.metrics import span_scores, token_accuracy

ZEROS = {"p": 0.0, "r": 0.0, "f": 0.0, "per_type": {}}


def test_two_gold_spans_one_right_one_wrong_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]
    s = span_scores(gold, pred)
    assert s["p"] == pytest.approx(0.5)
    assert s["r"] == pytest.approx(0.5)
    assert s["f"] == pytest.approx(0.5)
    assert s["per_type"] == {
        "PER": {"p": 1.0, "r": 1.0, "f": 1.0},
        "LOC": {"p": 0.0, "r": 0.0, "f": 0.0},
        "ORG": {"p": 0.0, "r": 0.0, "f": 0.0},
    }


def test_asymmetric_precision_recall():
    # gold: PER(0-1), LOC(3), PER(5); pred: PER(0-1) correct, PER(3) wrong type
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-PER", "O", "O"]]
    s = span_scores(gold, pred)
    assert s["p"] == pytest.approx(1 / 2)
    assert s["r"] == pytest.approx(1 / 3)
    assert s["f"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))  # 0.4
    assert s["per_type"]["PER"] == pytest.approx({"p": 0.5, "r": 0.5, "f": 0.5})
    assert s["per_type"]["LOC"] == {"p": 0.0, "r": 0.0, "f": 0.0}
    assert set(s["per_type"]) == {"PER", "LOC"}
    assert all(isinstance(s[k], float) for k in "prf")
    assert all(isinstance(v, float) for row in s["per_type"].values() for v in row.values())


def test_partial_span_boundary_is_wrong():
    s = span_scores([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
    assert (s["p"], s["r"], s["f"]) == (0.0, 0.0, 0.0)


def test_sentences_are_not_merged_and_tuples_work():
    # An I- at the start of sentence 2 must not continue sentence 1's span.
    # (seqeval only splits sentences that are *lists*; tuples must still work.)
    gold = (("B-PER", "I-PER"), ("I-PER", "O"))
    pred = (("B-PER", "I-PER"), ("O", "O"))
    s = span_scores(gold, pred)
    assert s["p"] == pytest.approx(1.0)
    assert s["r"] == pytest.approx(0.5)
    assert s["f"] == pytest.approx(2 / 3)


def test_default_mode_reads_leading_i_as_span_start():
    # seqeval default (non-strict) mode: "I-PER" alone is a PER span.
    s = span_scores([["I-PER", "O"]], [["B-PER", "O"]])
    assert (s["p"], s["r"], s["f"]) == (1.0, 1.0, 1.0)


def test_types_with_dashes_and_dots():
    gold = [["B-art-name", "I-art-name", "B-fromloc.city_name"]]
    s = span_scores(gold, gold)
    assert set(s["per_type"]) == {"art-name", "fromloc.city_name"}
    assert s["f"] == 1.0


@pytest.mark.parametrize(
    "gold, pred",
    [
        ([], []),
        ([[]], [[]]),
        ([[], []], [[], []]),
        ([["O", "O"]], [["O", "O"]]),
    ],
)
def test_empty_input_gives_zeros_without_warnings(gold, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert span_scores(gold, pred) == ZEROS


def test_no_gold_spans_or_no_pred_spans_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        only_pred = span_scores([["O", "O"]], [["B-X", "O"]])
        only_gold = span_scores([["B-X", "O"]], [["O", "O"]])
    for s in (only_pred, only_gold):
        assert (s["p"], s["r"], s["f"]) == (0.0, 0.0, 0.0)
        assert s["per_type"] == {"X": {"p": 0.0, "r": 0.0, "f": 0.0}}


def test_token_accuracy_hand_example():
    gold = [["B-PER", "I-PER", "O"], ["O", "B-LOC"]]
    pred = [["B-PER", "O", "O"], ["O", "B-ORG"]]
    assert token_accuracy(gold, pred) == pytest.approx(3 / 5)
    # plain POS labels work too
    assert token_accuracy([["NOUN", "VERB"], ["DET"]], [["NOUN", "NOUN"], ["DET"]]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("empty", [[], [[]], [[], []]])
def test_token_accuracy_empty_is_zero(empty):
    assert token_accuracy(empty, empty) == 0.0


@pytest.mark.parametrize("fn", [span_scores, token_accuracy])
def test_sentence_length_mismatch_names_index(fn):
    gold = [["O", "B-X"], ["O", "O", "O"], ["O"]]
    pred = [["O", "B-X"], ["O", "O"], ["O"]]
    with pytest.raises(ValueError, match="sentence 1"):
        fn(gold, pred)


@pytest.mark.parametrize("fn", [span_scores, token_accuracy])
def test_sentence_count_mismatch_raises(fn):
    with pytest.raises(ValueError, match="2"):
        fn([["O"], ["O"]], [["O"]])


_tag = st.one_of(st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BI"), st.sampled_from(["PER", "LOC", "a-b"])))
_sent = st.lists(_tag, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(_sent, max_size=6), st.data())
def test_scores_are_consistent(gold, data):
    pred = [data.draw(st.lists(_tag, min_size=len(s), max_size=len(s))) for s in gold]
    s = span_scores(gold, pred)
    for v in (s["p"], s["r"], s["f"]):
        assert 0.0 <= v <= 1.0
    if s["p"] + s["r"] > 0:
        assert s["f"] == pytest.approx(2 * s["p"] * s["r"] / (s["p"] + s["r"]))
    else:
        assert s["f"] == 0.0
    perfect = span_scores(gold, gold)
    if any(t != "O" for sent in gold for t in sent):
        assert (perfect["p"], perfect["r"], perfect["f"]) == (1.0, 1.0, 1.0)
        assert all(row == {"p": 1.0, "r": 1.0, "f": 1.0} for row in perfect["per_type"].values())
    else:
        assert perfect == ZEROS
    n_tokens = sum(len(x) for x in gold)
    acc = token_accuracy(gold, pred)
    expected = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p)) / n_tokens if n_tokens else 0.0
    assert acc == pytest.approx(expected)
