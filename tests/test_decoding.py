"""Constrained greedy decoding: equals a brute-force reference, always well-formed."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_hyperloader.model.decoding import LabelTrie, constrained_greedy

from .tiny import make_model, randomize_

START, PAD = 0, 0
# Labels share prefixes ([60] is a prefix of [60, 61]) so the end-or-continue choice is exercised.
TASK_LABELS = [
    [[60], [60, 61], [62, 63, 64], [65]],
    [[70], [71], [72, 73]],
]


def _sentinels(vocab_size: int) -> torch.Tensor:
    return torch.arange(vocab_size - 1, vocab_size - 101, -1)


def reference_decode(model, task_labels, task, input_ids, n_words, sentinels):
    """One label at a time, recomputing the whole prefix, scoring the full vocabulary."""
    prefix = [START, int(sentinels[0])]
    labels = []
    with torch.no_grad(), model.task_context([task]):
        encoded = model.encode(input_ids[None], torch.ones_like(input_ids)[None])
        for w in range(n_words):
            partial: list[int] = []
            while True:
                hidden = model.backbone.get_decoder()(
                    input_ids=torch.tensor([prefix]), encoder_hidden_states=encoded, use_cache=False
                ).last_hidden_state[0, -1]
                logits = model.project(hidden)
                extend = {seq[len(partial)] for seq in task_labels[task] if seq[: len(partial)] == partial and len(seq) > len(partial)}
                can_end = partial in task_labels[task]
                best_tok = max(extend, key=lambda t: logits[t]) if extend else None
                end_id = int(sentinels[w + 1])
                if can_end and (best_tok is None or logits[end_id] >= logits[best_tok]):
                    break
                partial.append(best_tok)
                prefix.append(best_tok)
                if partial in task_labels[task] and not any(len(s) > len(partial) and s[: len(partial)] == partial for s in task_labels[task]):
                    break
            labels.append(task_labels[task].index(partial))
            prefix.append(int(sentinels[w + 1]))
    return labels


def test_constrained_decoding_equals_brute_force_reference(tokenizer):
    model = randomize_(make_model(tokenizer), std=0.5).eval()
    vocab = len(tokenizer)
    sentinels = _sentinels(vocab)
    trie = LabelTrie.build(TASK_LABELS)
    torch.manual_seed(5)
    task_ids = torch.tensor([0, 1, 0, 1, 0, 0])
    n_words = torch.tensor([6, 4, 1, 7, 3, 5])
    input_ids = torch.randint(3, vocab - 101, (6, 9))
    got = constrained_greedy(
        model, trie, task_ids=task_ids, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
        n_words=n_words, sentinel_ids=sentinels, decoder_start_id=START, pad_id=PAD,
    )
    chosen = set()
    for row in range(6):
        expected = reference_decode(model, TASK_LABELS, int(task_ids[row]), input_ids[row], int(n_words[row]), sentinels)
        assert got[row, : n_words[row]].tolist() == expected
        assert (got[row, n_words[row]:] == -1).all()
        chosen.update((int(task_ids[row]), label) for label in expected)
    assert len(chosen) >= 3  # the reference really had choices to make


@settings(max_examples=20, deadline=None)
@given(
    data=st.data(),
    labels=st.lists(
        st.lists(st.lists(st.integers(40, 48), min_size=1, max_size=3), min_size=1, max_size=6, unique_by=tuple),
        min_size=1, max_size=3,
    ),
)
def test_every_row_gets_exactly_one_valid_label_per_word(tokenizer, data, labels):
    model = _random_model(tokenizer, len(labels))
    trie = LabelTrie.build(labels)
    batch = data.draw(st.integers(1, 5))
    task_ids = torch.tensor(data.draw(st.lists(st.integers(0, len(labels) - 1), min_size=batch, max_size=batch)))
    n_words = torch.tensor(data.draw(st.lists(st.integers(0, 12), min_size=batch, max_size=batch)))
    input_ids = torch.randint(3, 30, (batch, 6))
    out = constrained_greedy(
        model, trie, task_ids=task_ids, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
        n_words=n_words, sentinel_ids=_sentinels(len(tokenizer)), decoder_start_id=START, pad_id=PAD,
    )
    assert out.shape[0] == batch
    for row in range(batch):
        n, task = int(n_words[row]), int(task_ids[row])
        predicted = out[row, :n].tolist()
        assert len(predicted) == n and all(0 <= p < len(labels[task]) for p in predicted)
        assert (out[row, n:] == -1).all()


_MODELS: dict[int, object] = {}


def _random_model(tokenizer, n_tasks):
    if n_tasks not in _MODELS:
        _MODELS[n_tasks] = randomize_(make_model(tokenizer, tasks=[f"t{i}" for i in range(n_tasks)]), std=0.5).eval()
    return _MODELS[n_tasks]


def test_trie_rejects_labels_it_could_not_tell_apart():
    import pytest

    with pytest.raises(ValueError, match="tokenize identically"):
        LabelTrie.build([[[5, 6], [5, 6]]], task_names=["ner"])
    with pytest.raises(ValueError, match="no labels"):
        LabelTrie.build([[]], task_names=["ner"])
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        LabelTrie.build([[[]]], task_names=["ner"])


def test_constrained_decoding_is_the_same_when_weights_are_regenerated_every_forward(tokenizer):
    model = randomize_(make_model(tokenizer), std=0.5).eval()
    sentinels = _sentinels(len(tokenizer))
    trie = LabelTrie.build(TASK_LABELS)
    torch.manual_seed(6)
    args = dict(
        task_ids=torch.tensor([1, 0, 0]), input_ids=torch.randint(3, len(tokenizer) - 101, (3, 8)),
        n_words=torch.tensor([5, 2, 6]), sentinel_ids=sentinels, decoder_start_id=START, pad_id=PAD,
    )
    args["attention_mask"] = torch.ones_like(args["input_ids"])
    cached = constrained_greedy(model, trie, **args)
    with model.regenerating_every_forward():
        regenerated = constrained_greedy(model, trie, **args)
    assert torch.equal(regenerated, cached)
    # the per-row position bias applies only inside decoding: elsewhere the backbone's own bias
    owner = model.architecture.position_bias_owner(model.backbone, "decoder")
    method = model.architecture.position_bias.compute
    assert torch.equal(getattr(owner, method)(3, 4), getattr(type(owner), method)(owner, 3, 4))
