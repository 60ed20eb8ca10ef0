"""Accuracy of ONE hyperloader spaCy pipeline on three tasks, trained jointly.

CoNLL-2003 NER (``doc.ents``, span F1), UD English EWT UPOS (``token.pos_``, token accuracy) and
CoNLL-2000 chunking (``doc.spans["chunks"]``, span F1): one ``hyperloader`` component with the
tasks ``ner`` (target ents), ``upos`` (target pos) and ``chunk`` (target spans, key chunks), so
the figures are what a user of the component gets. Each training doc is gold for its own
corpus's task only (``doc.user_data["hyperloader_tasks"]``, as ``MultiCorpus.v1`` with
``mark_tasks = true`` sets it); batches mix the three corpora by temperature sampling (T = 10).
The pipeline is built with ``spacy.blank("en")`` + ``nlp.add_pipe("hyperloader", ...)``,
initialised from the training examples (labels from the gold), trained with ``nlp.update`` and a
thinc Adam optimizer (linear warm-up and decay, gradient clipping per parameter as thinc does,
no weight decay) and evaluated with ``nlp.evaluate`` on each complete test split with only that
split's task active (the component's ``score()``: ``ents_f``, ``pos_acc``, ``spans_chunks_f``).

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
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, warmup_linear

import spacy_hyperloader.pipeline  # noqa: F401  (registers the factory also without an installed package)
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--variant", default="hyperloader", choices=sorted(VARIANTS), help="the model variant")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of each train split (test: all)")
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
        "loss_reduction": args.loss_reduction,
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
            learn_rate=warmup_linear(args.lr, args.warmup, args.steps), grad_clip=args.max_grad_norm,
            L2=0.0, L2_is_weight_decay=True, use_averages=False,
        )

        def update(batch: list[tuple[str, Example]]) -> float:
            losses: dict[str, float] = {}
            nlp.update([eg for _, eg in batch], sgd=optimizer, losses=losses)
            optimizer.step_schedules()
            return losses[COMPONENT]

        batches = MixedTaskBatches(train, args.batch_size, temperature=args.temperature, seed=args.seed)
        log = train_loop(update, batches, args.steps, log_every=args.log_every, name="spacy")
        log["trainable_parameters"], log["total_parameters"] = pipe.labeler.model.parameter_counts()
        log["task_probabilities"] = batches.probabilities
        scores: dict[str, dict[str, Any]] = {}
        eval_start = time.perf_counter()
        for task, examples in test.items():
            key = TASKS[task][4]
            with pipe.use_tasks(task):
                task_start = time.perf_counter()
                s = nlp.evaluate(examples, batch_size=args.eval_batch_size)
            row = {"metric": TASKS[task][5], "score_key": key if key.endswith("_acc") else f"{key}_f",
                   "labels": len(pipe.task(task).labels), "train_sentences": len(train[task]),
                   "test_sentences": len(examples), "eval_wall_s": round(time.perf_counter() - task_start, 3)}
            row["score"] = s[row["score_key"]]
            if not key.endswith("_acc"):
                row["p"], row["r"] = s[f"{key}_p"], s[f"{key}_r"]
            scores[task] = row
        eval_wall = time.perf_counter() - eval_start
    table = report(args, scores, log)
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
        "eval_wall_s": round(eval_wall, 3),
        "table": table,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    write_json(args.output, out)
    return out


def report(args, scores: dict[str, dict[str, Any]], log: dict[str, Any]) -> str:
    rows = [[CORPUS_NAMES[task], task, r["metric"], percent(r["score"]), r["train_sentences"], r["test_sentences"],
             f"{r['eval_wall_s']:.1f}"] for task, r in scores.items()]
    limit = f", at most {args.limit} train/test sentences per task" if args.limit else ""
    title = (f"One {args.variant} pipeline, test scores x 100 ({log['steps']} steps x {args.batch_size} docs in "
             f"{log['train_wall_s']:.0f} s{limit}; backbone {args.backbone or 'random ' + args.random_shape})")
    header = ["corpus", "task", "metric", "score", "train docs", "test docs", "eval s"]
    return print_table(header, rows, title=title)


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as err:  # missing corpora or backbone: the message says which
        raise SystemExit(f"error: {err}") from None
