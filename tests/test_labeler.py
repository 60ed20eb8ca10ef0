"""The engine end to end: SentT' ids, long and odd input, mixed tasks, overfitting, save/load."""

from __future__ import annotations

import pytest
import torch

from spacy_hyperloader.sentt.codec import SentTCodec
from spacy_hyperloader.labeler import Labeler, TaskLabels
from spacy_hyperloader.metrics import span_scores, token_accuracy
from spacy_hyperloader.model.training import build_optimizer, optimizer_step

from .tiny import NER_DATA, POS_DATA, make_labeler, randomize_

ODD_WORDS = ["", "  ", "<extra_id_5>", "</s>", "<pad>", "naïve", "東京", "🙂", "x" * 300, "fromloc.city_name"]
NER_TYPES = {"PER", "LOC", "ORG", "MISC"}
POS_TAGS = {"DT", "JJ", "NN", "VB", "PRP"}


def _valid_bio(tags):
    for i, tag in enumerate(tags):
        assert tag == "O" or tag[2:] in NER_TYPES, tag
        if tag.startswith("I-"):
            assert i > 0 and tags[i - 1] != "O" and tags[i - 1][2:] == tag[2:]


def test_codec_keeps_every_word_in_its_own_slot(tokenizer):
    codec = SentTCodec(tokenizer)
    pieces = codec.piece_ids(ODD_WORDS)
    ids = codec.interleave(pieces)
    sentinels = codec.sentinel_ids.tolist()
    # exactly n + 1 sentinels, in order, then </s>: text spelling a special token stays text
    assert [i for i in ids if i in sentinels] == sentinels[: len(ODD_WORDS) + 1]
    assert ids[-1] == codec.eos_id and ids.count(codec.eos_id) == 1
    reserved = set(sentinels) | {codec.eos_id, codec.pad_id}
    assert pieces[2] and pieces[3] and not reserved & {i for p in pieces for i in p}
    assert pieces[6] == [i for i in pieces[6] if i == tokenizer.unk_token_id or i > 2] and pieces[6]  # unknown script: <unk>, kept
    assert pieces[0] == [] and codec.interleave([[]]) == [sentinels[0], sentinels[1], codec.eos_id]


def test_untrained_predictions_are_well_formed_for_odd_and_long_input(tokenizer):
    labeler = make_labeler(tokenizer)
    randomize_(labeler.model, std=0.5)
    labeler.max_source_tokens = 40  # forces many segments
    long = [f"w{i % 7}" for i in range(2000)]
    items = [("ner", ODD_WORDS), ("pos", ODD_WORDS), ("ner", long), ("pos", []), ("ner", ["one"])]
    out = labeler.predict(items, batch_size=16)
    assert [len(o) for o in out] == [len(w) for _, w in items]
    _valid_bio(out[0])
    _valid_bio(out[2])
    assert set(out[1]) <= POS_TAGS


def test_mixed_task_prediction_equals_per_task_prediction(tokenizer):
    labeler = make_labeler(tokenizer)
    randomize_(labeler.model, std=0.5)
    items = [("ner", w) for w, _ in NER_DATA] + [("pos", w) for w, _ in POS_DATA]
    mixed = labeler.predict(items[::-1] + items, batch_size=4)
    alone = [labeler.predict([item])[0] for item in items]
    assert mixed == alone[::-1] + alone


def test_unconstrained_mode_returns_one_label_per_word(tokenizer):
    labeler = make_labeler(tokenizer)
    items = [("ner", w) for w, _ in NER_DATA] + [("pos", [])]
    out = labeler.predict(items, constrained=False)
    assert [len(o) for o in out] == [len(w) for _, w in items]


def test_tasks_and_labels_are_checked(tokenizer):
    labeler = make_labeler(tokenizer)
    with pytest.raises(KeyError, match="Unknown task 'chunk'"):
        labeler.predict([("chunk", ["a"])])
    with pytest.raises(ValueError, match="clash"):
        TaskLabels("ner", "bio", ["PER", "I"])
    with pytest.raises(ValueError, match="scheme"):
        TaskLabels("ner", "iob", [])
    with pytest.raises(ValueError, match="do not match"):
        Labeler(labeler.model, tokenizer, [TaskLabels("pos", "tags", ["NN"]), TaskLabels("ner", "bio", ["PER"])])
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        labeler.loss([("ner", ["a", "b"], ["O"])])
    with pytest.raises(ValueError, match=r"no label\(s\) \['DATE'\]"):
        labeler.loss([("ner", ["May", "1"], ["B-DATE", "I-DATE"])], restrict_vocabulary=True)
    assert labeler.loss([("ner", ["May", "1"], ["B-DATE", "I-DATE"])]) > 0  # the full vocabulary can


@pytest.mark.parametrize("restrict", [False, True], ids=["full-vocab", "label-vocab"])
def test_a_tiny_model_overfits_two_tasks_then_round_trips(tokenizer, tmp_path, restrict):
    labeler = make_labeler(tokenizer, adapter_bottleneck=16)
    items = [("ner", w, t) for w, t in NER_DATA] + [("pos", w, t) for w, t in POS_DATA]
    params = labeler.model.trainable_parameters()
    optimizer = build_optimizer(params, lr=3e-4)
    for step in range(400):
        labeler.model.train()
        loss = labeler.loss(items, restrict_vocabulary=restrict)
        optimizer_step(loss, params, optimizer)
        if step % 20 == 19 and labeler.predict([(t, w) for t, w, _ in items]) == [g for _, _, g in items]:
            break
    predicted = labeler.predict([(t, w) for t, w, _ in items])
    assert predicted == [g for _, _, g in items], f"no overfit after {step + 1} steps"
    assert span_scores([g for _, _, g in items[:3]], predicted[:3])["f"] == 1.0
    assert token_accuracy([g for _, _, g in items[3:]], predicted[3:]) == 1.0

    labeler.save(tmp_path / "labeler")
    loaded = Labeler.load(tmp_path / "labeler")
    assert loaded.predict([(t, w) for t, w, _ in items]) == predicted
    batch = [(t, w) for t, w, _ in items]
    with torch.no_grad():
        labeler.model.eval(), loaded.model.eval()
        assert torch.equal(
            labeler.loss([(t, w, g) for (t, w), g in zip(batch, predicted)]),
            loaded.loss([(t, w, g) for (t, w), g in zip(batch, predicted)]),
        )
