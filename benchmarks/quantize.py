"""fp32 against ``model.quantize = "int8"`` on one trained pipeline, in one process: words per
second, the share of labels that agree, and the scores on a gold DocBin.

    python benchmarks/quantize.py training/model-best corpus/test.spacy [--limit 400] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import spacy
import torch
from spacy.tokens import Doc, DocBin
from spacy.training import Example


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("gold", help="a .spacy DocBin with the gold annotation")
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipelines = {
        "fp32": spacy.load(args.model),
        "int8": spacy.load(args.model, config={"components": {"hyperloader": {"model": {"quantize": "int8"}}}}),
    }
    gold = list(DocBin().from_disk(args.gold).get_docs(pipelines["fp32"].vocab))[: args.limit]
    words = sum(len(d) for d in gold)
    report: dict = {"docs": len(gold), "words": words, "threads": args.threads}
    predicted = {}
    for name, nlp in pipelines.items():
        list(nlp.pipe([Doc(nlp.vocab, words=[t.text for t in d]) for d in gold[:20]]))  # warm-up
        docs = [Doc(nlp.vocab, words=[t.text for t in d]) for d in gold]
        start = time.perf_counter()
        docs = list(nlp.pipe(docs))
        seconds = time.perf_counter() - start
        scores = nlp.get_pipe("hyperloader").score([Example(p, g) for p, g in zip(docs, gold)])
        report[name] = {"words_per_second": round(words / seconds, 1),
                        **{k: v for k, v in scores.items() if isinstance(v, float)}}
        predicted[name] = docs
    pairs = [
        (getattr(x, attr), getattr(y, attr))
        for a, b in zip(predicted["fp32"], predicted["int8"]) for x, y in zip(a, b)
        for attr in ("tag_", "pos_", "ent_iob_", "ent_type_")
    ]
    report["label_agreement"] = round(sum(x == y for x, y in pairs) / len(pairs), 4)
    report["speedup"] = round(report["int8"]["words_per_second"] / report["fp32"]["words_per_second"], 2)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
