"""Time of one training step of the component's path against a bare torch step, same batch.

    python benchmarks/train_step.py --backbone DIR [--batch-size 16] [--repeats 5] [--threads 2]

Both sides take the same CoNLL-2003 training sentences as SentT' pairs. The bare side is the
plain Hugging Face T5 forward with ``labels=`` (full-vocabulary cross-entropy) and backward;
the component's side is ``Labeler.loss`` + backward as ``update`` runs it, for each variant
and setting listed. Prints milliseconds per step and the ratio to the bare step (median of
``--repeats`` after one warm-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks._common import DEFAULT_DATA, print_table, read_sentences, write_json  # noqa: E402
from spacy_hyperloader.labeler import Labeler, TaskLabels  # noqa: E402
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel  # noqa: E402
from spacy_hyperloader.model.backbone import load_backbone  # noqa: E402
from spacy_hyperloader.sentt.tokenizer import load_tokenizer  # noqa: E402


def timed(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True, help="a local Hugging Face T5 directory")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sentences = read_sentences(args.data / "conll2003" / "train.txt")
    batch = sentences[100 : 100 + args.batch_size]
    labels = sorted({t for s in sentences for t in s.tags})
    items = [("tag", s.words, s.tags) for s in batch]
    tokenizer = load_tokenizer(args.backbone)

    def labeler(variant: str, train_backbone: bool) -> Labeler:
        torch.manual_seed(0)
        model = HyperLoaderModel(
            load_backbone(args.backbone), HyperLoaderConfig(tasks=["tag"], variant=variant, train_backbone=train_backbone)
        )
        model.train()
        model.set_dropout(args.dropout)
        return Labeler(model, tokenizer, [TaskLabels("tag", "tags", labels)])

    bare_labeler = labeler("full_finetune", True)
    tb = bare_labeler.training_batch(items)
    bare = bare_labeler.model.backbone

    def bare_step() -> None:
        out = bare(input_ids=tb.input_ids, attention_mask=tb.attention_mask, labels=tb.labels)
        out.loss.backward()
        bare.zero_grad(set_to_none=True)

    baseline = timed(bare_step, args.repeats)
    rows, results = [["bare T5 forward + backward (full vocabulary)", f"{1000 * baseline:.0f}", "1.00"]], {"bare_ms": 1000 * baseline}
    settings = [
        ("hyperloader, frozen backbone", "hyperloader", False, {}),
        ("hyperloader, backbone trained", "hyperloader", True, {}),
        ("hyperloader, backbone trained, restricted vocabulary", "hyperloader", True, {"restrict_vocabulary": True}),
        ("hyperloader, trained, restricted, guided alignment", "hyperloader", True,
         {"restrict_vocabulary": True, "alignment_weight": 1.0}),
        ("full_finetune", "full_finetune", True, {}),
    ]
    for name, variant, train_backbone, loss_args in settings:
        lab = labeler(variant, train_backbone)

        def step() -> None:
            lab.loss(items, reduction="mean", **loss_args).backward()
            lab.model.zero_grad(set_to_none=True)

        seconds = timed(step, args.repeats)
        results[name] = {"ms": 1000 * seconds, "ratio_to_bare": seconds / baseline}
        rows.append([name, f"{1000 * seconds:.0f}", f"{seconds / baseline:.2f}"])
    print_table(["training step", "ms", "ratio to bare"], rows,
                title=f"{args.batch_size} sentences, {torch.get_num_threads()} threads, dropout {args.dropout}")
    write_json(args.output, results)


if __name__ == "__main__":
    main()
