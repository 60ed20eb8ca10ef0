"""Draft-and-verify constrained decoding: the same labels as sequential constrained decoding,
in far fewer decoder calls."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_hyperloader.model.decoding import DecodingStats, LabelTrie, constrained_greedy, draft_verify_greedy

from .tiny import make_model, randomize_

START, PAD = 0, 0
# Labels of 1 to 4 pieces sharing prefixes: end-or-continue choices, forced chains and leaves.
TASK_LABELS = [
    [[60], [60, 61], [62, 63, 64], [65]],
    [[70], [71], [72, 73]],
]
LONG_LABELS = [
    [[60], [60, 61], [60, 61, 62, 63], [62, 63, 64], [65, 66], [67]],
    [[70], [71, 72, 73, 74], [72, 73], [72, 75]],
]


def _sentinels(vocab_size: int) -> torch.Tensor:
    return torch.arange(vocab_size - 1, vocab_size - 101, -1)


def _args(tokenizer, task_ids, n_words, seed=0, length=9):
    torch.manual_seed(seed)
    input_ids = torch.randint(3, len(tokenizer) - 101, (len(task_ids), length))
    return dict(
        task_ids=torch.tensor(task_ids), input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
        n_words=torch.tensor(n_words), sentinel_ids=_sentinels(len(tokenizer)), decoder_start_id=START, pad_id=PAD,
    )


def _both(model, trie, args, **draft):
    sequential, drafted = DecodingStats(), DecodingStats()
    expected = constrained_greedy(model, trie, **args, stats=sequential)
    got = draft_verify_greedy(model, trie, **args, stats=drafted, **draft)
    return expected, got, sequential, drafted


_MODELS: dict[tuple, object] = {}


def _model(tokenizer, seed=0, std=0.5, n_tasks=2):
    key = (seed, std, n_tasks)
    if key not in _MODELS:
        model = make_model(tokenizer, tasks=[f"t{i}" for i in range(n_tasks)], seed=seed)
        _MODELS[key] = randomize_(model, std=std, seed=seed + 1).eval()
    return _MODELS[key]


@pytest.mark.parametrize("seed,std,labels", [(0, 0.5, TASK_LABELS), (1, 0.5, LONG_LABELS), (2, 1.0, TASK_LABELS), (3, 1.0, LONG_LABELS)])
def test_draft_and_verify_equals_sequential_on_random_models(tokenizer, seed, std, labels):
    model = _model(tokenizer, seed, std)
    trie = LabelTrie.build(labels)
    args = _args(tokenizer, [0, 1, 1, 0, 1, 0, 0], [0, 1, 2, 12, 30, 7, 25], seed=seed)
    expected, got, sequential, drafted = _both(model, trie, args)
    assert torch.equal(got, expected)
    assert got.shape == (7, 30) and (got[0] == -1).all()
    chosen = {(t, label) for t, row in zip(args["task_ids"].tolist(), expected.tolist()) for label in row if label >= 0}
    assert len(chosen) >= 4  # the models really had choices to make
    assert drafted.segments == sequential.segments == 6
    assert drafted.passes < sequential.passes / 2
    assert drafted.row_passes < sequential.row_passes / 2


def test_mixed_tasks_and_lengths_in_one_batch_equal_each_row_alone(tokenizer):
    model = _model(tokenizer, 4, 1.0)
    trie = LabelTrie.build(LONG_LABELS)
    args = _args(tokenizer, [1, 0, 1, 0, 0], [1, 0, 17, 3, 9], seed=4)
    _, got, _, _ = _both(model, trie, args)
    for row in range(5):
        alone = {k: (v[row : row + 1] if isinstance(v, torch.Tensor) and v.dim() and k != "sentinel_ids" else v) for k, v in args.items()}
        expected = constrained_greedy(model, trie, **alone)
        n = int(args["n_words"][row])
        assert got[row, :n].tolist() == expected[0, :n].tolist()
        assert (got[row, n:] == -1).all()


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    labels=st.lists(
        st.lists(st.lists(st.integers(40, 48), min_size=1, max_size=4), min_size=1, max_size=6, unique_by=tuple),
        min_size=1, max_size=3,
    ),
)
def test_draft_and_verify_equals_sequential_for_any_labels_tasks_and_lengths(tokenizer, data, labels):
    model = _model(tokenizer, 5, 0.7, n_tasks=len(labels))
    trie = LabelTrie.build(labels)
    batch = data.draw(st.integers(1, 5))
    task_ids = data.draw(st.lists(st.integers(0, len(labels) - 1), min_size=batch, max_size=batch))
    n_words = data.draw(st.lists(st.integers(0, 14), min_size=batch, max_size=batch))
    first = data.draw(st.lists(st.integers(0, 5), min_size=len(labels), max_size=len(labels)))
    args = _args(tokenizer, task_ids, n_words, seed=data.draw(st.integers(0, 1000)), length=6)
    expected, got, sequential, drafted = _both(model, trie, args, draft_labels=first)
    assert torch.equal(got, expected)
    assert drafted.passes <= sequential.passes


@pytest.mark.parametrize("tolerance", [0.0, float("inf")])
def test_near_tie_rechecks_keep_the_result(tokenizer, tolerance):
    """``inf`` treats every decision with a rival as a near tie: each is re-made in a call where it
    is the row's last real token (the sequential decoder's feed); ``0`` never re-checks."""
    model = _model(tokenizer, 6, 0.5)
    trie = LabelTrie.build(LONG_LABELS)
    args = _args(tokenizer, [0, 1, 0], [11, 6, 1], seed=6)
    expected, got, _, drafted = _both(model, trie, args, tie_tolerance=tolerance)
    assert torch.equal(got, expected)
    assert (drafted.tie_checks > 0) == (tolerance > 0)


def test_consistent_model_needs_one_or_two_calls_per_segment(tokenizer):
    model = _model(tokenizer, 7, 0.5)
    trie = LabelTrie.build(TASK_LABELS)
    # Push every decoder state towards the first pieces of labels 2 ([62, 63, 64]) and 1 ([71]).
    w = model.backbone.get_output_embeddings().weight.detach()
    push = (w[62] / w[62].norm() + w[71] / w[71].norm()) * 4.0
    hook = model.backbone.get_decoder().final_layer_norm.register_forward_hook(lambda m, a, out: out + push)
    try:
        args = _args(tokenizer, [0, 1, 0, 1], [10, 20, 30, 3], seed=7)
        expected, got, sequential, drafted = _both(model, trie, args)
        assert torch.equal(got, expected)
        assert set(expected[0, :10].tolist()) == {2}
        assert sequential.passes_per_segment > 10
        assert drafted.passes_per_segment <= 2.0  # the first call's choices make a right draft
        assert drafted.passes <= 2
        right = DecodingStats()
        assert torch.equal(draft_verify_greedy(model, trie, **args, stats=right, draft_labels=[2, 1]), expected)
        assert right.passes == 1 and right.passes_per_segment == 1.0  # a right first draft: one call
    finally:
        hook.remove()


def test_single_label_tasks_take_one_call_and_stats_add_up(tokenizer):
    model = _model(tokenizer, 0, 0.5)
    trie = LabelTrie.build([[[60, 61, 62]], [[70]]])
    stats = DecodingStats()
    for seed in range(2):
        args = _args(tokenizer, [0, 1], [5, 9], seed=seed)
        got = draft_verify_greedy(model, trie, **args, stats=stats)
        assert got[0, :5].tolist() == [0] * 5 and got[1].tolist() == [0] * 9
    assert stats.passes == 2 and stats.segments == 4 and stats.passes_per_segment == 1.0


def test_rows_without_words_and_too_many_words(tokenizer):
    model = _model(tokenizer, 0, 0.5)
    trie = LabelTrie.build(TASK_LABELS)
    stats = DecodingStats()
    got = draft_verify_greedy(model, trie, **_args(tokenizer, [0, 1], [0, 0]), stats=stats)
    assert got.shape == (2, 0) and stats.passes == 0 and stats.segments == 0
    with pytest.raises(ValueError, match="fit one segment"):
        draft_verify_greedy(model, trie, **_args(tokenizer, [0], [100]))


def test_draft_and_verify_is_the_same_when_weights_are_regenerated_every_forward(tokenizer):
    model = _model(tokenizer, 1, 0.5)
    trie = LabelTrie.build(TASK_LABELS)
    args = _args(tokenizer, [1, 0, 0], [5, 2, 6], seed=8)
    cached = draft_verify_greedy(model, trie, **args)
    with model.regenerating_every_forward():
        regenerated = draft_verify_greedy(model, trie, **args)
    assert torch.equal(regenerated, cached)
    assert torch.equal(cached, constrained_greedy(model, trie, **args))


def test_draft_and_verify_equals_sequential_on_a_trained_labeler(tokenizer, monkeypatch):
    """A (partly) trained tiny labeler with its real label tries: every decoding call agrees."""
    import spacy_hyperloader.labeler as labeler_module
    from spacy_hyperloader.model.training import build_optimizer, optimizer_step

    from .tiny import NER_DATA, POS_DATA, make_labeler

    labeler = make_labeler(tokenizer, adapter_bottleneck=16)
    items = [("ner", w, t) for w, t in NER_DATA] + [("pos", w, t) for w, t in POS_DATA]
    params = labeler.model.trainable_parameters()
    optimizer = build_optimizer(params, lr=3e-4)
    for _ in range(60):
        labeler.model.train()
        optimizer_step(labeler.loss(items), params, optimizer)
    labeler.model.eval()
    calls, sequential, drafted = [], DecodingStats(), DecodingStats()

    def checked(model, trie, **kwargs):
        kwargs.pop("stats", None)  # the labeler passes its own (None here)
        expected = constrained_greedy(model, trie, **kwargs, stats=sequential)
        got = draft_verify_greedy(model, trie, **kwargs, stats=drafted)
        calls.append(torch.equal(got, expected))
        return got

    for name in ("constrained_greedy", "draft_verify_greedy"):  # whichever the labeler calls
        monkeypatch.setattr(labeler_module, name, checked, raising=False)
    texts = [(t, w) for t, w, _ in items] + [("pos", ["the", "quick", "brown", "fox"] * 6), ("ner", ["EU"])]
    labeler.predict(texts)
    assert calls and all(calls)
    assert drafted.passes < sequential.passes
