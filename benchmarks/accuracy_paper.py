"""Accuracy on the HyperLoader paper's six span tasks, per system and training-data fraction.

Trains and tests MIT Movie Trivia, MIT Movie, MIT Restaurant, ATIS, SNIPS and mTOD (the
corpora and files of project.yml's `paper` workflow; mTOP, the paper's seventh task, is not
available offline) at the data fractions given (the paper: 100, 50, 20 and 10 % of train;
the test split is always complete), for these systems:

- ``hyperloader``: one model, generated adapters + LoRA + conditional layer norms (the paper);
- ``adapters_only``: one model, generated adapters + conditional layer norms (HyperFormer++);
- ``lora_only``: one model, generated LoRA only;
- ``full_finetune``: one model, the whole backbone trained, nothing generated. SentT' has no
  task prefix, so the only task signal it gets is constrained decoding's per-task label set;
- ``single_task``: one separate hyperloader model per task, each trained for ``--steps`` steps
  on its own task (the same steps PER MODEL, so six times the compute of one multi-task model);
- ``majority``: no model: each word gets the tag it had most often in the task's training
  data (``O`` for unseen words), the floor every learned system must clear.

With ``--eval-every N`` each multi-task system also scores a dev slice (``--dev-limit``
sentences per task) every N steps, and ``--output x.json`` then writes ``x.png`` beside the
JSON: dev span F1 per task against the step, one panel per system and fraction.

Multi-task models train on mixed-task batches whose tasks are drawn by temperature sampling
(T = 10, as the paper), with AdamW, linear warm-up and decay, gradient clipping and the
label-smoothed loss (``Labeler.loss``); all systems share ``--steps``, ``--batch-size``,
``--lr`` and ``--seed``. The last step is evaluated (as the authors; the valid split is not
used) with constrained decoding (``Labeler.predict``) and seqeval span F1 per task.

The paper freezes a pretrained t5-base (only the generated modules and T5's layer norms learn)
and trains 65,536 steps of 128 sentences. Without pretrained weights, ``--random-shape`` (or a
``--backbone`` made by init-backbone) only measures how fast each system learns from scratch:
``--train-backbone`` is then on by default for every system, which makes the adapter variants
differ from full fine-tuning only by their generated modules.

    python benchmarks/accuracy_paper.py --random-shape tiny --steps 3 --limit 8        # smoke
    python benchmarks/accuracy_paper.py --backbone backbone_mini --steps 5000 --output metrics/accuracy_paper.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from _common import (  # first: puts the checkout on sys.path
    CorpusFile, MixedTaskBatches, add_common_arguments, backbone_source, bio_tags, percent, print_table,
    require_paths, resolve_common, settings_of, train_loop, write_json,
)

import spacy
import torch

from spacy_hyperloader.labeler import Labeler, TaskLabels
from spacy_hyperloader.metrics import span_scores
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel
from spacy_hyperloader.model.training import build_optimizer, linear_warmup_decay, optimizer_step
from spacy_hyperloader.sentt.tokenizer import load_tokenizer

# name -> (format, train, test) under --data, as project.yml's convert-paper; short column name
TASKS: dict[str, tuple[str, str, str, str]] = {
    "mit_movie_trivia": ("mit", "paper/mit_movie_trivia/train", "paper/mit_movie_trivia/test", "Trivia"),
    "mit_movie": ("mit", "paper/mit_movie/train", "paper/mit_movie/test", "Movie"),
    "mit_restaurant": ("mit", "paper/mit_restaurant/train", "paper/mit_restaurant/test", "Restaurant"),
    "atis": ("seq", "paper/atis/train", "paper/atis/test", "ATIS"),
    "snips": ("seq", "paper/snips/train", "paper/snips/test", "SNIPS"),
    "mtod": ("mtod", "paper/mtod/train-en.conllu", "paper/mtod/test-en.conllu", "mTOD"),
}
# the dev split of each task, for the learning curves
DEV = {
    "mit_movie_trivia": "paper/mit_movie_trivia/valid", "mit_movie": "paper/mit_movie/valid",
    "mit_restaurant": "paper/mit_restaurant/valid", "atis": "paper/atis/valid", "snips": "paper/snips/valid",
    "mtod": "paper/mtod/dev-en.conllu",
}
MULTI_TASK = {"hyperloader": "hyperloader", "adapters_only": "adapters_only", "lora_only": "lora_only",
              "full_finetune": "full_finetune"}
SYSTEMS = (*MULTI_TASK, "single_task", "majority")
# The authors' logs (../shared/docs/HYPERLOADER.md): t5-base frozen, 65,536 steps x 128 sentences;
# test span F1 on the six tasks here (their average leaves out mTOP, which is not available).
REFERENCE = {
    "paper hyperloader 100%": [71.40, 87.45, 79.65, 95.99, 95.92, 96.52],
    "paper hyperloader 50%": [68.58, 86.96, 78.33, 95.22, 94.15, 96.08],
    "paper hyperloader 20%": [68.63, 85.46, 76.01, 94.01, 92.38, 95.41],
    "paper hyperloader 10%": [66.95, 83.68, 74.99, 91.72, 89.70, 95.00],
    "paper adapters_only 100%": [72.95, 87.88, 81.36, 95.95, 94.62, 96.48],
}

Sentence = tuple[list[str], list[str]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {', '.join(SYSTEMS)}")
    parser.add_argument("--fractions", default="1.0,0.5,0.2,0.1", help="training-data fractions (default: %(default)s)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of the six tasks")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="at most N test sentences per task, the same sample for every system (default: all)")
    args = parser.parse_args(argv)
    resolve_common(args)
    args.systems = _choices(args.systems, SYSTEMS, "--systems")
    args.tasks = _choices(args.tasks, TASKS, "--tasks")
    try:
        args.fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError:
        raise SystemExit(f"--fractions takes numbers in (0, 1], got {args.fractions!r}") from None
    if not args.fractions or not all(0 < f <= 1 for f in args.fractions):
        raise SystemExit(f"--fractions takes numbers in (0, 1], got {args.fractions}")
    return args


def _choices(value: str, known: Sequence[str], option: str) -> list[str]:
    chosen = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        raise SystemExit(f"{option}: unknown {unknown or value!r}; choose from {', '.join(known)}")
    return chosen


def as_sentences(docs) -> list[Sentence]:
    return [([t.text for t in doc], bio_tags(doc)) for doc in docs]


def span_types(sentences: Sequence[Sentence]) -> list[str]:
    return sorted({tag[2:] for _, tags in sentences for tag in tags if tag != "O"})


def build_labeler(args, backbone: str, tokenizer, tasks: list[TaskLabels], variant: str) -> Labeler:
    torch.manual_seed(args.seed)
    config = HyperLoaderConfig(
        tasks=[t.name for t in tasks], variant=variant,
        train_backbone=None if variant == "full_finetune" else args.train_backbone,
        position_bias_scale=args.position_bias_scale,
    )
    labeler = Labeler(HyperLoaderModel.from_backbone(backbone, config), tokenizer, tasks)
    labeler.model.set_dropout(args.dropout)
    return labeler


def majority_tags(train_data: Sequence[Sentence]) -> dict[str, str]:
    """Each training word's most frequent tag (ties: the first seen)."""
    from collections import Counter, defaultdict

    counts: dict[str, Counter] = defaultdict(Counter)
    for words, tags in train_data:
        for word, tag in zip(words, tags):
            counts[word][tag] += 1
    return {word: c.most_common(1)[0][0] for word, c in counts.items()}


def train(args, labeler: Labeler, train_data: dict[str, list[Sentence]], name: str,
          dev_data: dict[str, list[Sentence]] | None = None) -> dict[str, Any]:
    model = labeler.model
    model.train()
    params = model.trainable_parameters()
    optimizer = build_optimizer(params, lr=args.lr)
    scheduler = linear_warmup_decay(optimizer, warmup_steps=args.warmup, total_steps=args.steps)

    def update(batch: list[tuple[str, Sentence]]) -> float:
        loss = labeler.loss(
            [(task, words, tags) for task, (words, tags) in batch], label_smoothing=args.label_smoothing,
            reduction=args.loss_reduction, restrict_vocabulary=args.restrict_vocabulary,
            alignment_weight=args.alignment_weight,
        )
        optimizer_step(loss, params, optimizer, scheduler, max_grad_norm=args.max_grad_norm)
        return float(loss.detach())

    batches = MixedTaskBatches(train_data, args.batch_size, temperature=args.temperature, seed=args.seed)
    def dev_f1() -> dict[str, float]:
        scores, _ = evaluate(args, labeler, dev_data)
        labeler.model.train()
        return {task: s["f"] for task, s in scores.items()}

    log = train_loop(update, batches, args.steps, log_every=args.log_every, name=name,
                     evaluate_every=args.eval_every if dev_data else 0, evaluate=dev_f1)
    log["trainable_parameters"], log["total_parameters"] = model.parameter_counts()
    log["task_probabilities"] = batches.probabilities
    return log


def evaluate(args, labeler: Labeler, test_data: dict[str, list[Sentence]]) -> tuple[dict[str, Any], float]:
    """Span P/R/F per task; all tasks' sentences decode together in mixed-task batches."""
    start = time.perf_counter()
    items = [(task, words) for task, sentences in test_data.items() for words, _ in sentences]
    predicted = iter(labeler.predict(items, batch_size=args.eval_batch_size, constrained=True))
    scores = {}
    for task, sentences in test_data.items():
        pred = [next(predicted) for _ in sentences]
        s = span_scores([tags for _, tags in sentences], pred)
        scores[task] = {"f": s["f"], "p": s["p"], "r": s["r"], "test_sentences": len(sentences)}
    return scores, time.perf_counter() - start


def run_system(args, system: str, backbone: str, tokenizer, train_data, test_data, dev_data) -> dict[str, Any]:
    labels = {task: TaskLabels(task, "bio", span_types(train_data[task])) for task in train_data}
    if system == "majority":
        scores = {}
        for task, sentences in test_data.items():
            best = majority_tags(train_data[task])
            s = span_scores([tags for _, tags in sentences], [[best.get(w, "O") for w in words] for words, _ in sentences])
            scores[task] = {"f": s["f"], "p": s["p"], "r": s["r"], "test_sentences": len(sentences),
                            "train_sentences": len(train_data[task]), "labels": len(labels[task].labels)}
        return {"tasks": scores, "average_f": sum(s["f"] for s in scores.values()) / len(scores),
                "train_wall_s": 0.0, "eval_wall_s": 0.0, "runs": {}}
    if system in MULTI_TASK:
        labeler = build_labeler(args, backbone, tokenizer, list(labels.values()), MULTI_TASK[system])
        log = train(args, labeler, train_data, f"{system} {len(next(iter(train_data.values())))}", dev_data)
        scores, eval_wall = evaluate(args, labeler, test_data)
        runs = {"all": log}
    else:  # one hyperloader model per task, each trained for --steps steps
        scores, runs, eval_wall = {}, {}, 0.0
        for task in train_data:
            labeler = build_labeler(args, backbone, tokenizer, [labels[task]], "hyperloader")
            runs[task] = train(args, labeler, {task: train_data[task]}, f"single_task {task}",
                               {task: dev_data[task]} if dev_data else None)
            task_scores, wall = evaluate(args, labeler, {task: test_data[task]})
            scores.update(task_scores)
            eval_wall += wall
    for task in scores:
        scores[task]["train_sentences"] = len(train_data[task])
        scores[task]["labels"] = len(labels[task].labels)
    return {
        "tasks": scores,
        "average_f": sum(s["f"] for s in scores.values()) / len(scores),
        "train_wall_s": round(sum(r["train_wall_s"] for r in runs.values()), 3),
        "eval_wall_s": round(eval_wall, 3),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    vocab = spacy.blank("en").vocab
    found = iter(require_paths(args.data, [p for task in args.tasks for p in TASKS[task][1:3]]))
    paths = {task: (next(found), next(found)) for task in args.tasks}
    corpora = {
        task: (CorpusFile(TASKS[task][0], train, vocab), CorpusFile(TASKS[task][0], test, vocab))
        for task, (train, test) in paths.items()
    }
    limits = [n for n in (args.limit, args.test_limit) if n]
    test_limit = min(limits) if limits else None
    test_data = {task: as_sentences(test.docs(1.0, args.data_seed, test_limit)) for task, (_, test) in corpora.items()}
    dev_data = None
    if args.eval_every:
        dev_paths = require_paths(args.data, [DEV[task] for task in args.tasks])
        dev_data = {
            task: as_sentences(CorpusFile(TASKS[task][0], path, vocab).docs(1.0, args.data_seed, args.dev_limit))
            for task, path in zip(args.tasks, dev_paths)
        }
    results: dict[str, dict[str, Any]] = {system: {} for system in args.systems}
    with backbone_source(args) as (backbone, backbone_info):
        tokenizer = load_tokenizer(backbone)
        for fraction in args.fractions:
            train_data = {
                task: as_sentences(train.docs(fraction, args.data_seed, args.limit)) for task, (train, _) in corpora.items()
            }
            for system in args.systems:
                print(f"== {system}, {100 * fraction:g} % of train", flush=True)
                results[system][str(fraction)] = run_system(
                    args, system, backbone, tokenizer, train_data, test_data, dev_data
                )
    table = report(args, results)
    out = {
        "benchmark": "accuracy_paper",
        "metric": "seqeval micro span F1 (default mode) on the test split, constrained decoding",
        "settings": settings_of(args),
        "backbone": backbone_info,
        "data": {
            task: {"format": TASKS[task][0], "train": str(paths[task][0]), "test": str(paths[task][1]),
                   "train_sentences_in_file": len(corpora[task][0]), "test_sentences_in_file": len(corpora[task][1]),
                   "test_sentences_used": len(test_data[task])}
            for task in args.tasks
        },
        "results": results,
        "reference": {"tasks": list(TASKS), "f1_x100": REFERENCE,
                      "note": "the authors' logs: t5-base frozen, 65,536 steps x 128 sentences"},
        "table": table,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    write_json(args.output, out)
    if args.output is not None and args.eval_every:
        plot_curves(results, args.output.with_suffix(".png"), title=f"backbone {backbone_info['backbone']}")
    return out


def plot_curves(results: dict[str, dict[str, Any]], path, *, title: str) -> None:
    """Dev span F1 per task against the step: one panel per (system, fraction) that has a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(system, fraction, run["dev_curve"]) for system, by_fraction in results.items()
              for fraction, r in by_fraction.items() for run in r["runs"].values() if run.get("dev_curve")]
    if not panels:
        return
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, (system, fraction, curve) in zip(axes.flat, panels):
        steps = [point["step"] for point in curve]
        for task in [k for k in curve[0] if k != "step"]:
            ax.plot(steps, [100 * point[task] for point in curve], marker="o", markersize=3, label=TASKS[task][3])
        ax.set_title(f"{system}, {100 * float(fraction):g} % of train", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("dev span F1")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


def report(args, results: dict[str, dict[str, Any]]) -> str:
    header = ["system", "train %", *(TASKS[t][3] for t in args.tasks), "avg", "train s"]
    rows = []
    for system, by_fraction in results.items():
        for fraction, r in by_fraction.items():
            rows.append([system, f"{100 * float(fraction):g}", *(percent(r["tasks"][t]["f"]) for t in args.tasks),
                         percent(r["average_f"]), f"{r['train_wall_s']:.0f}"])
    if args.tasks == list(TASKS):
        for name, values in REFERENCE.items():
            rows.append([name, "", *(f"{v:.2f}" for v in values), f"{sum(values) / len(values):.2f}", ""])
    limit = f", at most {args.limit} train/test sentences per task" if args.limit else ""
    title = (f"Test span F1 x 100 ({args.steps} steps x {args.batch_size} sentences per model{limit}; "
             f"backbone {args.backbone or 'random ' + args.random_shape})")
    return print_table(header, rows, title=title)


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as err:  # missing corpora or backbone: the message says which
        raise SystemExit(f"error: {err}") from None
