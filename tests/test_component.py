"""The spaCy component: overfit, exact predictions, save/load, pipe == call, odd docs, errors."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_hyperloader.annotation.ptb_to_ud import ptb_to_ud


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


def test_entry_points_resolve_in_a_fresh_interpreter():
    """Nothing imported beforehand: spaCy must find every name through the entry points alone."""
    code = """
import sys, spacy
from spacy.util import registry
assert "spacy_hyperloader" not in sys.modules
registry.architectures.get("spacy-hyperloader.HyperLoaderModel.v1")
registry.readers.get("spacy-hyperloader.MultiCorpus.v1")
registry.readers.get("spacy-hyperloader.MultiCorpus.v2")
registry.scorers.get("spacy-hyperloader.scorer.v1")
spacy.blank("en").add_pipe("hyperloader", config={"tasks": {"ner": {"target": "ents"}}})
print("resolved")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and "resolved" in done.stdout, done.stderr[-2000:]


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
    with pytest.raises(ValueError, match="are not in .*cfg.json.*the saved model.s labels"):
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


# ---------------------------------------------------------------- one source of truth for settings
def test_every_variant_builds_from_the_defaults(backbone_dir):
    from spacy_hyperloader.model import VARIANTS

    for variant in VARIANTS:
        nlp = spacy.blank("en")
        nlp.add_pipe("hyperloader", config={"tasks": TASKS, "model": {"backbone": backbone_dir, "variant": variant}})
        nlp.initialize(lambda: gold_examples(nlp))
        assert nlp.get_pipe("hyperloader").labeler.model.config.variant == variant


def test_model_defaults_live_in_the_architecture_signature_only():
    from spacy_hyperloader.pipeline.architecture import build_hyperloader_model

    assert spacy.blank("en").get_factory_meta("hyperloader").default_config["model"] == {
        "@architectures": "spacy-hyperloader.HyperLoaderModel.v1", "backbone": "t5-small",
    }
    defaults = {n: p.default for n, p in inspect.signature(build_hyperloader_model).parameters.items() if n != "backbone"}
    nlp = spacy.blank("en")
    nlp.add_pipe("hyperloader", config={"tasks": TASKS})
    filled = nlp.config["components"]["hyperloader"]["model"]
    assert {k: v for k, v in filled.items() if k not in ("@architectures", "backbone")} == defaults
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf8")
    documented = {}
    for names, values in re.findall(r"^\| ((?:`model\.\w+`(?:, )?)+) \| ([^|]+) \|", readme, flags=re.M):
        keys = re.findall(r"`model\.(\w+)`", names)
        for key, value in zip(keys, [v.strip().strip("`") for v in values.split(",")]):
            documented[key] = json.loads(value)
    assert documented.pop("backbone") == "t5-small"
    assert documented == defaults  # the README's config reference cannot drift either


def test_load_time_config_overrides_win_over_saved_files(trained, tmp_path):
    nlp, *_ = trained
    pipe = nlp.get_pipe("hyperloader")
    with pipe.use_tasks("ner"):
        nlp.to_disk(tmp_path / "p")  # a run-time task switch is not saved
    assert spacy.load(tmp_path / "p").get_pipe("hyperloader").active_tasks == ["ner", "tag", "chunk"]
    loaded = spacy.load(tmp_path / "p", config={"components": {"hyperloader": {
        "batch_size": 2, "active_tasks": ["tag"], "constrained": False, "batching": "per_task", "overwrite": True,
    }}}).get_pipe("hyperloader")
    assert loaded.active_tasks == ["tag"]
    assert loaded.cfg == {"batch_size": 2, "constrained": False, "decoding": "draft", "batching": "per_task", "overwrite": True, "threads": None}
    assert loaded.label_data == pipe.label_data


# ---------------------------------------------------------------- the TrainablePipe contract
def test_add_label_before_initialize_only(backbone_dir):
    nlp = make_nlp(backbone_dir)
    pipe = nlp.get_pipe("hyperloader")
    with pytest.raises(ValueError, match="needs task="):
        pipe.add_label("PER")
    assert pipe.add_label("PER", task="ner") == 1 and pipe.add_label("PER", task="ner") == 0
    with pytest.raises(ValueError, match="without surrounding whitespace"):
        pipe.add_label(" LOC", task="ner")
    nlp.initialize(lambda: gold_examples(nlp))
    assert pipe.label_data["ner"][0] == "PER" and "ner:LOC" in pipe.labels
    with pytest.raises(ValueError, match="before nlp.initialize"):
        pipe.add_label("DATE", task="ner")


def test_initialize_takes_labels_as_spacy_init_labels_writes_them(backbone_dir, trained):
    label_data = trained[0].get_pipe("hyperloader").label_data
    label_data["ner"] = label_data["ner"] + ["DATE"]  # a label the examples never show
    nlp = make_nlp(backbone_dir)
    pipe = nlp.get_pipe("hyperloader")
    pipe.initialize(lambda: gold_examples(nlp), nlp=nlp, labels=label_data)
    assert pipe.label_data == label_data
    assert [t.labels for t in pipe.labeler.tasks if t.name == "ner"] == [label_data["ner"]]
    with pytest.raises(ValueError, match=r"unknown tasks \['nope'\]"):
        make_nlp(backbone_dir).get_pipe("hyperloader").initialize(lambda: gold_examples(nlp), labels={"nope": ["X"]})
    with pytest.raises(TypeError):
        make_nlp(backbone_dir).get_pipe("hyperloader").initialize(gold_examples(nlp))  # not a callable


def test_initialize_reads_the_examples_once(backbone_dir):
    nlp = make_nlp(backbone_dir)
    calls = []

    def get_examples():
        calls.append(1)
        return iter(gold_examples(nlp))  # a stream: a second read would see a fresh sample

    nlp.get_pipe("hyperloader").initialize(get_examples, nlp=nlp)
    assert len(calls) == 1


def test_without_a_scorer_score_is_empty(trained):
    pipe = trained[0].get_pipe("hyperloader")
    scorer, pipe.scorer = pipe.scorer, None
    try:
        assert pipe.score(gold_examples(trained[0])) == {}
    finally:
        pipe.scorer = scorer


def test_serialization_honours_exclude(trained, tmp_path):
    pipe = trained[0].get_pipe("hyperloader")
    pipe.to_disk(tmp_path / "c", exclude=["model"])
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["cfg.json"]
    pipe.from_disk(tmp_path / "c", exclude=["model"])  # keeps its model
    assert pipe.labeler is not None


def test_the_frozen_backbone_is_written_once_per_run(trained, tmp_path):
    nlp, *_ = trained
    nlp.to_disk(tmp_path / "model-last")
    nlp.to_disk(tmp_path / "model-best")
    nlp.to_disk(tmp_path / "model-last")  # the same folder again, as spacy train does
    files = {run: sorted((tmp_path / run / "hyperloader" / "model" / "backbone").rglob("*.safetensors")) for run in ("model-last", "model-best")}
    assert files["model-last"] and len(files["model-last"]) == len(files["model-best"])
    for first, linked in zip(files["model-last"], files["model-best"]):
        assert first.stat().st_ino == linked.stat().st_ino  # one copy on disk
    texts = [" ".join(w) for w, *_ in TRAIN]
    want = [annotations(d) for d in nlp.pipe(texts)]
    for run in ("model-last", "model-best"):
        assert [annotations(d) for d in spacy.load(tmp_path / run).pipe(texts)] == want


def test_a_missing_model_folder_is_an_error_naming_it(trained, tmp_path):
    import shutil

    trained[0].to_disk(tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "hyperloader" / "model")
    with pytest.raises(FileNotFoundError, match=r"hyperloader/model' is missing"):
        spacy.load(tmp_path / "p")


def test_draft_decoding_equals_sequential_decoding(trained, backbone_dir):
    nlp, *_ = trained
    pipe = nlp.get_pipe("hyperloader")
    texts = [" ".join(w) for w, *_ in TRAIN] + ["Peter went to the lazy EU call in Brussels", "dog"]
    assert pipe.cfg["decoding"] == "draft"
    draft = [annotations(d) for d in nlp.pipe(texts)]
    pipe.cfg["decoding"] = "sequential"
    try:
        assert [annotations(d) for d in nlp.pipe(texts)] == draft
    finally:
        pipe.cfg["decoding"] = "draft"
    with pytest.raises(ValueError, match="decoding must be one of 'draft', 'sequential'"):
        spacy.blank("en").add_pipe("hyperloader", config={"tasks": TASKS, "decoding": "jacobi"})
