"""How fast one task learns, with and without the alignment aids: the ablation behind the recipe.

    python benchmarks/learning_probe.py --backbone DIR [--random-init] [--task tag|ner|chunk]
        [--alignment-weight 1.0] [--position-bias-scale 100] [--steps 300] [--every 50]

Trains one task of CoNLL-2003 through ``Labeler.loss`` (AdamW, linear warm-up then constant,
global clipping at 1, mean loss over the restricted vocabulary) and every ``--every`` steps
prints the training loss, the constrained-decoding accuracy on 100 held-out training sentences
(span F1 for ner/chunk), and ``Labeler.diagnose`` on 64 of them: teacher-forced label accuracy,
the first label piece's accuracy and the attention masses (decoder -> its word, encoder
sentinel -> its word; averaged over all heads, so one fully aligned head of four shows ~0.25+).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from seqeval.metrics import f1_score  # noqa: E402

from benchmarks._common import DEFAULT_DATA, read_sentences  # noqa: E402
from spacy_hyperloader.labeler import Labeler, TaskLabels  # noqa: E402
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel  # noqa: E402
from spacy_hyperloader.model.backbone import build_backbone, load_backbone  # noqa: E402
from spacy_hyperloader.sentt.tokenizer import load_tokenizer  # noqa: E402

COLUMNS = {"tag": "tags", "ner": "ner", "chunk": "chunks"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--random-init", action="store_true", help="the backbone's shape and vocabulary, random weights")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--task", choices=sorted(COLUMNS), default="tag")
    parser.add_argument("--variant", default="full_finetune")
    parser.add_argument("--alignment-weight", type=float, default=0.0)
    parser.add_argument("--alignment-heads", type=int, default=1)
    parser.add_argument("--position-bias-scale", type=float, default=1.0)
    parser.add_argument("--lora-alpha", type=float, default=8.0, help="LoRA scale alpha / rank (rank 8)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    sentences = read_sentences(args.data / "conll2003" / "train.txt")
    random.Random(0).shuffle(sentences)
    train, held_out = sentences[:-200], sentences[-200:]
    column = COLUMNS[args.task]
    scheme = "tags" if args.task == "tag" else "bio"
    labels = sorted({t if scheme == "tags" else t[2:] for s in sentences for t in getattr(s, column) if t != "O"})
    backbone = load_backbone(args.backbone)
    if args.random_init:
        backbone = build_backbone(backbone.config)
    config = HyperLoaderConfig(tasks=[args.task], variant=args.variant, train_backbone=True,
                               position_bias_scale=args.position_bias_scale, lora_alpha=args.lora_alpha)
    labeler = Labeler(HyperLoaderModel(backbone, config), load_tokenizer(args.backbone), [TaskLabels(args.task, scheme, labels)])
    params = labeler.model.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, args.warmup)))

    def measure(step: int, loss: float | None, seconds: float) -> dict:
        gold = [getattr(s, column) for s in held_out[:100]]
        predicted = labeler.predict([(args.task, s.words) for s in held_out[:100]])
        if scheme == "tags":
            score = sum(p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs)) / sum(map(len, gold))
        else:
            score = f1_score(gold, predicted)
        figures = labeler.diagnose([(args.task, s.words, getattr(s, column)) for s in held_out[:64]])
        point = {"step": step, "loss": loss, "seconds": round(seconds, 1), "decoded": round(score, 4),
                 **{k: round(v, 4) for k, v in figures.items()}}
        print(json.dumps(point), flush=True)
        return point

    rng = random.Random(args.seed + 1)
    curve = [measure(0, None, 0.0)]
    losses, spent = [], 0.0
    for step in range(1, args.steps + 1):
        batch = rng.sample(train, args.batch_size)
        labeler.model.train()
        start = time.perf_counter()
        loss = labeler.loss([(args.task, s.words, getattr(s, column)) for s in batch], reduction="mean",
                            restrict_vocabulary=True, alignment_weight=args.alignment_weight,
                            alignment_heads=args.alignment_heads)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        spent += time.perf_counter() - start
        losses.append(float(loss))
        if step % args.every == 0 or step == args.steps:
            curve.append(measure(step, sum(losses) / len(losses), spent))
            losses = []
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "curve": curve}, indent=2))


if __name__ == "__main__":
    main()
