"""A hostile user's cases: many threads on one pipeline, annotation already on the doc, damaged
or missing files, bad settings, and a pathological token. Each must work or fail clearly."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
import spacy
import torch
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_hyperloader.annotation.ptb_to_ud import ptb_to_ud
from spacy_hyperloader.pipeline.component import HyperLoaderComponent
from spacy_hyperloader.sentt.format import MAX_WORD_PIECES

TASKS = {
    "ner": {"target": "ents", "labels": ["PER", "ORG", "LOC"]},
    "tag": {"target": "tag", "labels": ["NNP", "VBD", "TO", "DT", "NN", "."]},
    "chunk": {"target": "spans", "spans_key": "chunks", "labels": ["NP", "VP", "PP"]},
}
TEXTS = [
    "Peter Blackburn went to Brussels .", "Acme Corp hired Peter .", "the dog ran to the park",
    "EU rejects German call", "a", "Peter Peter Peter Peter Peter Peter Peter Peter",
] * 9


def annotations(doc):
    return (
        [(e.start, e.end, e.label_) for e in doc.ents], [t.tag_ for t in doc], [t.pos_ for t in doc],
        [(s.start, s.end, s.label_) for s in doc.spans.get("chunks", [])],
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory, backbone_dir):
    """An initialized (random, randomised) pipeline on disk; no training is needed to be hostile."""
    nlp = spacy.blank("en")
    nlp.add_pipe("hyperloader", config={"tasks": TASKS, "model": {"backbone": backbone_dir, "adapter_bottleneck": 8}})
    nlp.initialize()
    with torch.no_grad():  # move the generated modules off their identity start
        for p in nlp.get_pipe("hyperloader").labeler.model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.3)
    nlp.get_pipe("hyperloader").labeler.model.invalidate_generated_weights()
    path = tmp_path_factory.mktemp("pipeline") / "p"
    nlp.to_disk(path)
    return path


@pytest.fixture()
def copy(saved, tmp_path):
    target = tmp_path / "p"
    shutil.copytree(saved, target)
    return target


def test_many_threads_on_one_pipeline_equal_one_thread(saved):
    nlp = spacy.load(saved)
    want = [annotations(d) for d in nlp.pipe(TEXTS)]
    outputs, errors = [None] * 4, []

    def run(i: int) -> None:
        try:
            outputs[i] = [annotations(d) for d in nlp.pipe(TEXTS, batch_size=5)]
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert outputs == [want] * 4


def test_use_tasks_in_one_thread_leaves_other_threads_alone(saved):
    nlp = spacy.load(saved)
    pipe = nlp.get_pipe("hyperloader")
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def switcher() -> None:
        with pipe.use_tasks("tag"):
            seen["inside"] = pipe.active_tasks
            inside.set()
            done.wait(60)

    def other() -> None:
        inside.wait(60)
        seen["other"] = pipe.active_tasks
        seen["chunks"] = "chunks" in nlp("Peter went to Brussels .").spans
        done.set()

    threads = [threading.Thread(target=switcher), threading.Thread(target=other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"inside": ["tag"], "other": ["ner", "tag", "chunk"], "chunks": True}
    assert pipe.active_tasks == ["ner", "tag", "chunk"]


def test_entities_of_an_earlier_component_are_kept_unless_overwrite(saved):
    text = "Acme Corp hired Peter ."
    alone = [(e.text, e.label_) for e in spacy.load(saved)(text).ents]
    for overwrite in (False, True):
        nlp = spacy.load(saved, config={"components": {"hyperloader": {"overwrite": overwrite}}})
        nlp.add_pipe("entity_ruler", before="hyperloader").add_patterns([{"label": "GROUP", "pattern": "Acme Corp"}])
        ents = [(e.text, e.label_) for e in nlp(text).ents]
        if overwrite:
            assert ents == alone  # the model's entities replace the ruler's
        else:
            assert ("Acme Corp", "GROUP") in ents
            assert all(e in alone for e in ents if e[1] != "GROUP")


def test_damaged_weights_are_refused_naming_the_file(copy):
    weights = copy / "hyperloader" / "model" / "hyperloader.safetensors"
    data = bytearray(weights.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header:] = b"\x3f" * (len(data) - header)  # the header stays intact: safetensors reads it
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"hyperloader\.safetensors' is damaged: its SHA-256"):
        spacy.load(copy)


def test_a_missing_backbone_is_never_looked_for_elsewhere(copy, tmp_path, monkeypatch):
    shutil.move(copy / "hyperloader" / "model" / "backbone", tmp_path / "backbone")
    monkeypatch.chdir(tmp_path)  # a ./backbone here must not be picked up, nor the hub asked
    started = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"model/backbone.* is missing"):
        spacy.load(copy)
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "part, damage, message",
    [
        ("hyperloader/model/tokenizer/tokenizer.json", "delete", "the tokenizer is missing"),
        ("hyperloader/model/backbone/config.json", "delete", r"config.json' \(the saved backbone's config\) is missing"),
        ("hyperloader/model", "delete", r"cfg.json says it has a trained model, but .*hyperloader/model' is missing"),
        ("hyperloader/cfg.json", "delete", r"cfg.json' \(the 'hyperloader' component's tasks and labels\) is missing"),
        ("hyperloader/cfg.json", "garble", r"cfg.json' .* is not valid JSON"),
        ("hyperloader/model/tasks.json", "garble", r"tasks.json' \(the labeler's tasks and labels\) is not valid JSON"),
        ("hyperloader/model/hyperloader.json", "garble", r"hyperloader.json' \(the HyperLoader model's settings\) is not valid JSON"),
    ],
)
def test_damaged_parts_are_errors_naming_the_file(copy, part, damage, message):
    target = copy / part
    if damage == "delete":
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        if part.endswith("tokenizer.json"):
            (target.parent / "spiece.model").unlink(missing_ok=True)
    else:
        target.write_text(target.read_text(encoding="utf8") + "}garbage", encoding="utf8")
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        spacy.load(copy)


def test_a_label_removed_from_cfg_json_is_refused(copy):
    cfg_path = copy / "hyperloader" / "cfg.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf8"))
    cfg["tasks"]["tag"]["labels"].remove("NN")
    cfg_path.write_text(json.dumps(cfg), encoding="utf8")
    with pytest.raises(ValueError, match=r"\['NN'\] of task 'tag' in the pipeline's config are not in .*cfg.json"):
        spacy.load(copy)
    config = (copy / "config.cfg").read_text(encoding="utf8")  # a config without labels: the model decides
    (copy / "config.cfg").write_text(config.replace('labels = ["NNP", "VBD", "TO", "DT", "NN", "."]', ""), encoding="utf8")
    with pytest.raises(ValueError, match=r"Task 'tag': the labels in .*cfg.json.*only in the model: \['NN'\]"):
        spacy.load(copy)


@pytest.mark.parametrize("active", [5, ["ner", 3], {"ner": 1}])
def test_bad_active_tasks_are_refused(active):
    with pytest.raises(ValueError, match="active_tasks must be null or a list of task names"):
        HyperLoaderComponent(spacy.blank("en").vocab, None, tasks=TASKS, active_tasks=active)


def test_one_pathological_token_costs_what_a_word_costs(saved):
    nlp = spacy.load(saved)
    labeler = nlp.get_pipe("hyperloader").labeler
    _, pieces = labeler._segments(["x" * 5000, "ok"])
    assert len(pieces[0]) == MAX_WORD_PIECES and len(pieces[1]) < MAX_WORD_PIECES
    nlp("warm up")
    started = time.perf_counter()
    doc = nlp("x" * 20000 + " and more")
    assert time.perf_counter() - started < 5 and len(doc) == 3 and all(t.tag_ for t in doc)


def test_gold_read_from_a_corpus_still_trains_with_prefilled_predicted_docs(saved):
    """Evaluation docs come without annotation, so nothing is kept by mistake: scores see predictions."""
    nlp = spacy.load(saved)
    ref = Doc(nlp.vocab, words="Peter went".split(), tags=["NNP", "VBD"], pos=[ptb_to_ud("NNP"), ptb_to_ud("VBD")])
    ref.ents = [Span(ref, 0, 1, label="PER")]
    scores = nlp.evaluate([Example(nlp.make_doc("Peter went"), ref)])
    assert 0.0 <= scores["tag_acc"] <= 1.0 and "ents_f" in scores


def test_int8_quantization_loads_runs_and_keeps_every_token(saved):
    nlp = spacy.load(saved, config={"components": {"hyperloader": {"model": {"quantize": "int8"}}}})
    model = nlp.get_pipe("hyperloader").labeler.model
    assert model.quantized
    q = model.architecture.site_module(model.architecture.blocks_of(model.backbone, "encoder")[0], "self_q", "encoder")
    assert "quantized" in type(q).__module__ and q._forward_hooks  # the LoRA hook moved with the layer
    fp32 = [annotations(d) for d in spacy.load(saved).pipe(TEXTS)]
    int8 = [annotations(d) for d in nlp.pipe(TEXTS)]
    assert [len(t[1]) for t in int8] == [len(t[1]) for t in fp32] and all(all(t[1]) for t in int8)
    with pytest.raises(ValueError, match="quantized to int8"):
        nlp.get_pipe("hyperloader").update([Example(nlp.make_doc("Peter went"), Doc(nlp.vocab, words=["Peter", "went"], tags=["NNP", "VBD"]))])
    with pytest.raises(ValueError, match="quantize must be null or 'int8'"):
        spacy.load(saved, config={"components": {"hyperloader": {"model": {"quantize": "int4"}}}})
