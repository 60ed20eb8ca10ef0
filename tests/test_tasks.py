"""The component's tasks as objects: conflicts, label checks, gold reading, writing and scoring."""

from __future__ import annotations

import warnings

import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_hyperloader.pipeline.tasks import EntsTask, PosTask, SpansTask, TagTask, Task, parse_tasks


@pytest.fixture(scope="module")
def vocab():
    return spacy.blank("en").vocab


def doc_of(vocab, text="Acme Corp hired Peter ."):
    return Doc(vocab, words=text.split())


def test_the_target_picks_the_class_and_settings_round_trip():
    tasks = parse_tasks({
        "ner": {"target": "ents"}, "chunk": {"target": "spans", "spans_key": "chunks", "labels": ["NP"]},
        "tag": {"target": "tag", "map_pos": False}, "upos": {"target": "pos"},
    })
    assert [type(t) for t in tasks] == [EntsTask, SpansTask, TagTask, PosTask]
    assert [Task.from_config(t.name, t.to_config()).to_config() for t in tasks] == [t.to_config() for t in tasks]
    assert tasks[1].spans_key == "chunks" and SpansTask("slots").spans_key == "slots"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"tag": {"target": "tag"}, "upos": {"target": "pos"}}, r"'tag' and 'upos' both write token.pos.*map_pos = false"),
        ({"a": {"target": "ents"}, "b": {"target": "ents"}}, "both write doc.ents"),
        ({"a": {"target": "spans", "spans_key": "k"}, "b": {"target": "spans", "spans_key": "k"}}, r"both write doc.spans\['k'\]"),
        ({"a": {"target": "deps"}}, "target must be one of ents, spans, tag, pos, got 'deps'"),
        ({"a": {"target": "ents", "spans_key": "x"}}, r"unknown settings \['spans_key'\]"),
        ({"a": "ents"}, "must be a table"),
        ({}, "at least one task"),
    ],
)
def test_bad_task_tables_are_refused_by_name(config, message):
    with pytest.raises(ValueError, match=message):
        parse_tasks(config)


def test_tag_without_pos_mapping_and_a_pos_task_can_share_a_component():
    assert [t.name for t in parse_tasks({"tag": {"target": "tag", "map_pos": False}, "upos": {"target": "pos"}})] == ["tag", "upos"]


@pytest.mark.parametrize(
    "task, labels, message",
    [
        (TagTask("tag"), "NN", "the string 'NN'"),
        (TagTask("tag"), [" NN"], "without surrounding whitespace"),
        (TagTask("tag"), [""], "non-empty string"),
        (TagTask("tag"), [5], "non-empty string"),
        (EntsTask("ner"), ["I"], "cannot be a span label"),
        (PosTask("upos"), ["NN"], "not Universal POS"),
    ],
)
def test_bad_labels_are_refused(task, labels, message):
    with pytest.raises(ValueError, match=message):
        task.add_labels(labels)
    assert task.labels == []


def test_labels_keep_their_order_and_ignore_repeats():
    task = TagTask("tag", ["NN", "VB"])
    assert task.add_labels(["VB", "DT", "DT"]) == 1
    assert task.labels == ["NN", "VB", "DT"]


def test_existing_entities_are_kept_unless_overwrite(vocab):
    predicted = ["B-PER", "I-PER", "O", "B-PER", "O"]
    doc = doc_of(vocab)
    doc.ents = [Span(doc, 0, 2, label="ORG")]  # as an entity_ruler before the component would
    EntsTask("ner").write(doc, predicted)
    assert [(e.text, e.label_) for e in doc.ents] == [("Acme Corp", "ORG"), ("Peter", "PER")]
    EntsTask("ner").write(doc, predicted, overwrite=True)
    assert [(e.text, e.label_) for e in doc.ents] == [("Acme Corp", "PER"), ("Peter", "PER")]
    fresh = doc_of(vocab)
    EntsTask("ner").write(fresh, ["I-ORG", "I-ORG", "O", "B-PER", "I-LOC"])  # IOB1 reads as seqeval does
    assert [(e.text, e.label_) for e in fresh.ents] == [("Acme Corp", "ORG"), ("Peter", "PER"), (".", "LOC")]
    assert all(t.ent_iob_ for t in fresh)  # the rest is annotated as outside, not missing


def test_existing_span_groups_are_kept_unless_overwrite(vocab):
    doc = doc_of(vocab)
    doc.spans["chunks"] = [Span(doc, 3, 4, label="NP")]
    task = SpansTask("chunk", spans_key="chunks")
    task.write(doc, ["B-NP", "I-NP", "B-VP", "B-PP", "O"])
    assert [(s.start, s.end, s.label_) for s in doc.spans["chunks"]] == [(0, 2, "NP"), (2, 3, "VP"), (3, 4, "NP")]
    task.write(doc, ["B-NP", "I-NP", "B-VP", "B-PP", "O"], overwrite=True)
    assert [(s.start, s.end, s.label_) for s in doc.spans["chunks"]] == [(0, 2, "NP"), (2, 3, "VP"), (3, 4, "PP")]


def test_existing_tags_and_pos_are_kept_unless_overwrite(vocab):
    doc = doc_of(vocab, "the dog runs")
    doc[0].tag_ = "PDT"
    doc[2].pos_ = "AUX"
    TagTask("tag").write(doc, ["DT", "NN", "VBZ"])
    assert [t.tag_ for t in doc] == ["PDT", "NN", "VBZ"]
    assert [t.pos_ for t in doc] == ["DET", "NOUN", "AUX"]  # pos of the kept tag; the set pos stays
    TagTask("tag").write(doc, ["DT", "NN", "VBZ"], overwrite=True)
    assert [(t.tag_, t.pos_) for t in doc] == [("DT", "DET"), ("NN", "NOUN"), ("VBZ", "VERB")]
    PosTask("upos").write(doc, ["PRON", "NOUN", "NN"], overwrite=True)
    assert [t.pos_ for t in doc] == ["PRON", "NOUN", "X"]  # a non-UD prediction cannot be stored


def test_missing_entity_annotation_is_read_as_outside_with_a_numbered_warning(vocab):
    doc = doc_of(vocab)
    doc.set_ents([Span(doc, 3, 4, label="PER")], default="unmodified")  # the rest stays missing
    with pytest.warns(UserWarning, match=r"\[HLW002\] Task 'ner'"):
        assert EntsTask("ner").gold_tags(doc) == ["O", "O", "O", "B-PER", "O"]
    complete = doc_of(vocab)
    complete.ents = [Span(complete, 0, 2, label="ORG")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EntsTask("ner").gold_tags(complete) == ["B-ORG", "I-ORG", "O", "O", "O"]


def test_overlapping_gold_spans_are_dropped_with_a_numbered_warning(vocab):
    doc = doc_of(vocab)
    doc.spans["chunks"] = [Span(doc, 0, 2, label="NP"), Span(doc, 1, 2, label="NP"), Span(doc, 3, 4, label="NP")]
    with pytest.warns(UserWarning, match=r"\[HLW001\] Task 'chunk'.*doc.spans\['chunks'\]"):
        tags = SpansTask("chunk", spans_key="chunks").gold_tags(doc)
    assert tags == ["B-NP", "I-NP", "O", "B-NP", "O"]


def test_gold_is_read_only_for_the_tasks_a_corpus_marks(vocab):
    doc = doc_of(vocab, "the dog")
    doc[0].tag_, doc[1].tag_ = "DT", "NN"
    assert TagTask("tag").has_gold(doc) and not EntsTask("ner").has_gold(doc)
    doc.user_data["hyperloader_tasks"] = ["ner"]
    assert not TagTask("tag").has_gold(doc)
    assert not TagTask("tag").has_gold(Doc(vocab, words=[]))


def test_each_task_scores_its_own_target(vocab):
    gold = Doc(vocab, words="the dog runs".split(), tags=["DT", "NN", "VBZ"], pos=["DET", "NOUN", "VERB"])
    gold.ents = [Span(gold, 1, 2, label="ANIMAL")]
    gold.spans["chunks"] = [Span(gold, 0, 2, label="NP")]
    pred = Doc(vocab, words="the dog runs".split())
    TagTask("tag").write(pred, ["DT", "NN", "NN"])
    EntsTask("ner").write(pred, ["O", "B-ANIMAL", "O"])
    SpansTask("chunk", spans_key="chunks").write(pred, ["B-NP", "O", "O"])
    examples = [Example(pred, gold)]
    assert TagTask("tag").score(examples) == {"tag_acc": pytest.approx(2 / 3), "pos_acc": pytest.approx(2 / 3)}
    assert EntsTask("ner").score(examples)["ents_f"] == 1.0
    assert SpansTask("chunk", spans_key="chunks").score(examples)["spans_chunks_f"] == 0.0
    assert set(SpansTask("chunk", spans_key="chunks").score(examples)) == set(SpansTask("chunk", spans_key="chunks").score_keys())
