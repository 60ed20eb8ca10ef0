"""Evaluate a multi-task pipeline on one test file per task, running only that task on it.

    python scripts/evaluate_tasks.py training/paper/model-best corpus/paper/test metrics/paper.json

TEST_DIR holds ``<task>.spacy`` for each task (as the project's convert-paper step writes them,
gold in ``doc.spans["<task>"]``). For each file the component runs only the task named like
the file (``active_tasks``), so each test set costs one task's decoding, not all of them.
Writes ``{"tasks": {task: scores}, "mean_f": ...}`` (the paper reports the mean of the
per-task span F1) and prints a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import spacy
import srsly
from spacy.training import Corpus
from wasabi import msg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a trained pipeline directory")
    parser.add_argument("test_dir", type=Path, help="directory with <task>.spacy test files")
    parser.add_argument("output", type=Path, help="the JSON file to write")
    parser.add_argument("--component", default="hyperloader")
    parser.add_argument("--gpu-id", type=int, default=-1)
    args = parser.parse_args()

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    nlp = spacy.load(args.model)
    pipe = nlp.get_pipe(args.component)
    files = sorted(args.test_dir.glob("*.spacy"))
    if not files:
        msg.fail(f"No .spacy files in {args.test_dir}", exits=1)
    results: dict[str, dict] = {}
    previous = pipe.active_tasks
    try:
        for path in files:
            task = path.stem
            if task not in pipe.task_names:
                msg.warn(f"Skipping {path.name}: the pipeline has no task {task!r} (tasks: {', '.join(pipe.task_names)})")
                continue
            pipe.active_tasks = [task]
            scores = nlp.evaluate(list(Corpus(path, gold_preproc=True)(nlp)))  # the corpus's own words
            key = f"spans_{task}"
            results[task] = {
                "f": scores.get(f"{key}_f"), "p": scores.get(f"{key}_p"), "r": scores.get(f"{key}_r"),
                "speed": scores.get("speed"), "docs": sum(1 for _ in Corpus(path)(nlp)),
            }
            msg.info(f"{task}: F1 {100 * (results[task]['f'] or 0):.2f}")
    finally:
        pipe.active_tasks = previous
    f_scores = [r["f"] for r in results.values() if r["f"] is not None]
    mean_f = sum(f_scores) / len(f_scores) if f_scores else None
    rows = [(task, f"{100 * (r['f'] or 0):.2f}", f"{100 * (r['p'] or 0):.2f}", f"{100 * (r['r'] or 0):.2f}", r["docs"]) for task, r in results.items()]
    msg.table(rows, header=("task", "F1", "P", "R", "docs"), divider=True)
    if mean_f is not None:
        msg.good(f"mean span F1 over {len(f_scores)} tasks: {100 * mean_f:.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(args.output, {"tasks": results, "mean_f": mean_f})


if __name__ == "__main__":
    main()
