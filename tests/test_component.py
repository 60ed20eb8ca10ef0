"""The spaCy component: overfit, exact predictions, save/load, pipe == call, odd docs, errors."""

from __future__ import annotations

import pytest
import spacy
import torch
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

from spacy_hyperloader.annotation.ptb_to_ud import ptb_to_ud
from spacy_hyperloader.model.backbone import build_backbone

from .tiny import TOY_TEXT, tiny_t5_config

TASKS = {
    "ner": {"target": "ents"},
    "tag": {"target": "tag"},
    "chunk": {"target": "spans", "spans_key": "chunks"},
}
TRAIN = [
    # words, tags, ents (start, end, label), chunks (start, end, label)
    ("Peter Blackburn went to Brussels".split(), ["NNP", "NNP", "VBD", "TO", "NNP"], [(0, 2, "PER"), (4, 5, "LOC")],
     [(0, 2, "NP"), (2, 3, "VP"), (3, 4, "PP"), (4, 5, "NP")]),
    ("EU rejects German call".split(), ["NNP", "VBZ", "JJ", "NN"], [(0, 1, "ORG"), (2, 3, "MISC")],
     [(0, 1, "NP"), (1, 2, "VP"), (2, 4, "NP")]),
    ("the lazy dog".split(), ["DT", "JJ", "NN"], [], [(0, 3, "NP")]),
]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    build_backbone(tiny_t5_config(len(tokenizer))).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def make_nlp(backbone_dir, **model):
    nlp = spacy.blank("en")
    settings = {"backbone": backbone_dir, "adapter_bottleneck": 16, "restrict_vocabulary": True,
                "loss_reduction": "mean"}
    settings.update(model)
    nlp.add_pipe("hyperloader", config={"tasks": TASKS, "model": settings})
    return nlp


def gold_examples(nlp):
    examples = []
    for words, tags, ents, chunks in TRAIN:
        ref = Doc(nlp.vocab, words=words, tags=tags, pos=[ptb_to_ud(t) for t in tags])
        ref.ents = [Span(ref, s, e, label=l) for s, e, l in ents]
        ref.spans["chunks"] = [Span(ref, s, e, label=l) for s, e, l in chunks]
        examples.append(Example(nlp.make_doc(" ".join(words)), ref))
    return examples


def annotations(doc):
    return (
        [(e.text, e.label_) for e in doc.ents],
        [t.tag_ for t in doc],
        [t.pos_ for t in doc],
        [(s.text, s.label_) for s in doc.spans.get("chunks", [])],
    )


def expected(words, tags, ents, chunks):
    return (
        [(" ".join(words[s:e]), l) for s, e, l in ents],
        tags,
        [ptb_to_ud(t) for t in tags],
        [(" ".join(words[s:e]), l) for s, e, l in chunks],
    )


@pytest.fixture(scope="module")
def trained(backbone_dir):
    nlp = make_nlp(backbone_dir)
    examples = gold_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e-3
    texts = [" ".join(w) for w, *_ in TRAIN]
    for step in range(300):
        losses = nlp.update(examples, sgd=optimizer)
        if step % 20 == 19 and [annotations(d) for d in nlp.pipe(texts)] == [expected(*t) for t in TRAIN]:
            break
    return nlp, step, losses


def test_overfits_then_predicts_exactly(trained):
    nlp, step, losses = trained
    for (words, tags, ents, chunks), doc in zip(TRAIN, nlp.pipe([" ".join(w) for w, *_ in TRAIN])):
        assert annotations(doc) == expected(words, tags, ents, chunks), f"after {step + 1} steps, loss {losses}"
    scores = nlp.evaluate(gold_examples(nlp))
    assert scores["ents_f"] == 1.0 and scores["tag_acc"] == 1.0 and scores["spans_chunks_f"] == 1.0
    assert "PER" in scores["ents_per_type"] and scores["pos_acc"] == 1.0


def test_save_load_and_bytes_round_trip(trained, tmp_path):
    nlp, *_ = trained
    texts = [" ".join(w) for w, *_ in TRAIN] + ["Peter went to the EU"]
    before = [annotations(d) for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [annotations(d) for d in loaded.pipe(texts)] == before
    assert [annotations(loaded(t)) for t in texts] == before  # pipe == __call__
    fresh = make_nlp(str(tmp_path / "pipeline" / "hyperloader" / "model" / "backbone"))
    fresh.get_pipe("hyperloader").from_bytes(nlp.get_pipe("hyperloader").to_bytes())
    assert [annotations(d) for d in fresh.pipe(texts, batch_size=2)] == before


def test_multiprocess_pipe_equals_single_process(trained):
    nlp, *_ = trained
    texts = [" ".join(w) for w, *_ in TRAIN] * 4
    assert [annotations(d) for d in nlp.pipe(texts, n_process=2, batch_size=3)] == [
        annotations(d) for d in nlp.pipe(texts)
    ]


def test_task_switching_leaves_other_annotation_alone(trained):
    nlp, *_ = trained
    pipe = nlp.get_pipe("hyperloader")
    doc = nlp.make_doc("Peter Blackburn went to Brussels")
    doc.ents = [Span(doc, 2, 3, label="KEEP")]
    with pipe.use_tasks("tag"):
        out = nlp(doc)
    assert [(e.text, e.label_) for e in out.ents] == [("went", "KEEP")]
    assert "chunks" not in out.spans
    assert [t.tag_ for t in out] == ["NNP", "NNP", "VBD", "TO", "NNP"]
    assert pipe.active_tasks == ["ner", "tag", "chunk"]
    pipe.active_tasks = ["chunk"]
    try:
        doc = nlp("Peter Blackburn went to Brussels")
        assert not doc.ents and not doc.has_annotation("TAG") and len(doc.spans["chunks"]) == 4
    finally:
        pipe.active_tasks = None
    with pytest.raises(KeyError, match="Unknown task 'pos'"):
        pipe.active_tasks = ["pos"]


def test_odd_documents(trained):
    nlp, *_ = trained
    docs = list(nlp.pipe(["", "   ", "Peter", "Peter  went \n to\tBrussels", " ".join(["Brussels"] * 2000)]))
    assert len(docs[0]) == 0 and not docs[0].ents
    assert all(len(d) == len(nlp.make_doc(t)) for d, t in zip(docs, ["", "   ", "Peter"]))
    assert docs[2][0].tag_  # one token gets a tag
    assert all(t.tag_ for t in docs[3])  # whitespace tokens are labelled too, nothing shifts
    assert len(docs[4]) == 2000 and all(t.tag_ for t in docs[4])  # long docs: no truncation


def test_entry_points_register_everything():
    assert "hyperloader" in registry.factories.get_all()
    assert registry.architectures.get("spacy-hyperloader.HyperLoaderModel.v1")
    assert registry.readers.get("spacy-hyperloader.MultiCorpus.v1")
    assert registry.scorers.get("spacy-hyperloader.scorer.v1")
    import importlib.metadata as md

    groups = {ep.group for ep in md.distribution("spacy-hyperloader").entry_points}
    assert {"spacy_factories", "spacy_architectures", "spacy_readers", "spacy_scorers"} <= groups


def test_clear_errors(backbone_dir, tmp_path, trained):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="target must be one of"):
        nlp.add_pipe("hyperloader", config={"tasks": {"x": {"target": "deps"}}})
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="not Universal POS"):
        nlp.add_pipe("hyperloader", config={"tasks": {"upos": {"target": "pos", "labels": ["NN"]}}})
    nlp = make_nlp(backbone_dir)
    with pytest.raises(ValueError, match="no labels"):
        nlp.initialize(lambda: [Example(nlp.make_doc("a b"), nlp.make_doc("a b"))])
    nlp = make_nlp(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nlp.initialize(lambda: gold_examples(nlp))
    nlp = make_nlp(backbone_dir)
    with pytest.raises(ValueError, match="nlp.initialize"):
        nlp("an uninitialized pipeline")
    trained_nlp, *_ = trained
    trained_nlp.to_disk(tmp_path / "p")
    with pytest.raises(ValueError, match="unknown to the saved model"):
        spacy.load(tmp_path / "p", config={"components": {"hyperloader": {"tasks": {"ner": {"target": "ents", "labels": ["NEW"]}, "tag": {"target": "tag"}, "chunk": {"target": "spans", "spans_key": "chunks"}}}}})


def test_gpu_ops_put_the_model_on_cuda(trained, backbone_dir, tmp_path, monkeypatch):
    """`spacy.require_gpu()` and `spacy train --gpu-id 0` make thinc's current ops CupyOps; the
    component must then build (initialize) and load (from_disk) its torch model on CUDA. No GPU
    here: the ops are faked and the model's `.to()` calls recorded."""
    from thinc.api import CupyOps

    import spacy_hyperloader.pipeline.component as component
    from spacy_hyperloader.model import HyperLoaderModel

    nlp, *_ = trained
    nlp.to_disk(tmp_path / "pipeline")
    moved = []
    monkeypatch.setattr(component, "get_current_ops", lambda: CupyOps.__new__(CupyOps))
    monkeypatch.setattr(HyperLoaderModel, "to", lambda self, *args, **kwargs: (moved.append(torch.device(*args)), self)[1])
    cuda = torch.device("cuda")
    # (thinc's PyTorchShim then moves the model to its own default device, which the fake ops
    # leave at cpu here and real CupyOps make cuda too)
    spacy.load(tmp_path / "pipeline")
    assert moved.count(cuda) == 1
    fresh = make_nlp(backbone_dir)
    fresh.initialize(lambda: gold_examples(fresh))
    assert moved.count(cuda) == 2
