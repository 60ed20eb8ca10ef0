"""``nlp.pipe`` words per second of a trained hyperloader pipeline on CoNLL-2003 test text.

    python benchmarks/pipe_speed.py training/model-best --tasks ner --tasks ner,tag,chunk [--limit 1000]

Each task set runs in the same process on the same texts (task switching, no reload).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import spacy
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def conll_texts(path: Path, limit: int) -> list[str]:
    texts, words = [], []
    for line in path.read_text(encoding="utf8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                texts.append(" ".join(words))
                words = []
            continue
        words.append(line.split()[0])
    return texts[:limit] if limit else texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--tasks", action="append", default=None, help="comma-separated task names; repeatable")
    parser.add_argument("--text", type=Path, default=SHARED / "conll2003" / "test.txt")
    parser.add_argument("--limit", type=int, default=0, help="first N sentences (0 = all)")
    parser.add_argument("--batch-size", type=int, default=256, help="docs per nlp.pipe batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nlp = spacy.load(args.model)
    pipe = nlp.get_pipe("hyperloader")
    texts = conll_texts(args.text, args.limit)
    docs = [nlp.make_doc(t) for t in texts]
    n_words = sum(len(d) for d in docs)
    results = []
    for task_set in args.tasks or [",".join(pipe.task_names)]:
        names = task_set.split(",")
        with pipe.use_tasks(*names):
            list(nlp.pipe(texts[:32]))  # warm-up
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=args.batch_size):
                pass
            seconds = time.perf_counter() - start
        row = {"tasks": names, "sentences": len(texts), "words": n_words, "seconds": round(seconds, 2),
               "words_per_s": round(n_words / seconds, 1)}
        results.append(row)
        print(f"tasks={task_set} sentences={len(texts)} words={n_words} seconds={seconds:.1f} words/s={n_words / seconds:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
