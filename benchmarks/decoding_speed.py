"""Constrained vs unconstrained greedy decoding speed, on one random t5-small-shaped model.

Both decoders see the same batches (sorted by length) in the same process; unconstrained
``generate`` gets exactly the gold target length as its budget, which is where a trained model
would stop (a random one never emits ``</s>`` by itself), so neither side is favoured.

    python benchmarks/decoding_speed.py [--sentences 256] [--batch-size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import T5Config

from spacy_hyperloader.sentt.codec import SentTCodec
from spacy_hyperloader.sentt.format import parse_target, simplify_bio
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel
from spacy_hyperloader.model.decoding import LabelTrie, constrained_greedy, unconstrained_greedy
from spacy_hyperloader.sentt.tokenizer import load_tokenizer, train_sentencepiece

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T5_SMALL = dict(d_model=512, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8, d_kv=64)
TYPES = ["PER", "LOC", "ORG", "MISC"]


def conll_sentences(path: Path) -> list[tuple[list[str], list[str]]]:
    sentences, words, tags = [], [], []
    for line in path.read_text(encoding="utf8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        cols = line.split()
        words.append(cols[0])
        tags.append(cols[-1])
    return sentences


def load_data(n: int, seed: int) -> tuple[list[tuple[list[str], list[str]]], str]:
    path = SHARED / "conll2003" / "test.txt"
    rng = random.Random(seed)
    if path.is_file():
        pool = [s for s in conll_sentences(path) if 15 <= len(s[0]) <= 30]
        return rng.sample(pool, min(n, len(pool))), "CoNLL-2003 test"
    vocab = [f"word{i}" for i in range(500)]
    data = []
    for _ in range(n):
        k = rng.randint(15, 30)
        data.append(([rng.choice(vocab) for _ in range(k)], [rng.choice(["O", "B-PER", "B-LOC"]) for _ in range(k)]))
    return data, "random words (../shared/data absent)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data, source = load_data(args.sentences, args.seed)
    vocab_dir = SHARED / "t5_vocab" / "tokenizer.json"
    tokenizer = load_tokenizer(vocab_dir) if vocab_dir.is_file() else train_sentencepiece(
        [" ".join(w) for w, _ in data], vocab_size=2000
    )
    codec = SentTCodec(tokenizer)
    config = T5Config(vocab_size=len(tokenizer), decoder_start_token_id=0, **T5_SMALL)
    model = HyperLoaderModel.from_backbone_config(config, HyperLoaderConfig(tasks=["ner"])).eval()
    targets = [*TYPES, "I", "O"]
    label_pieces = codec.label_piece_ids(targets)
    trie = LabelTrie.build([label_pieces])

    order = sorted(range(len(data)), key=lambda i: -len(data[i][0]))
    batches = []
    for start in range(0, len(order), args.batch_size):
        rows = [data[i] for i in order[start : start + args.batch_size]]
        sources = [codec.interleave(codec.piece_ids(w)) for w, _ in rows]
        gold = [codec.interleave(codec.label_piece_ids(simplify_bio(t))) for _, t in rows]
        width = max(map(len, sources))
        ids = torch.tensor([s + [codec.pad_id] * (width - len(s)) for s in sources])
        batches.append((rows, ids, (ids != codec.pad_id).long(), max(map(len, gold))))
    n_words = sum(len(w) for w, _ in data)

    def run_constrained() -> None:
        for rows, ids, mask, _ in batches:
            out = constrained_greedy(
                model, trie, task_ids=torch.zeros(len(rows), dtype=torch.long), input_ids=ids,
                attention_mask=mask, n_words=torch.tensor([len(w) for w, _ in rows]),
                sentinel_ids=codec.sentinel_ids, decoder_start_id=0, pad_id=codec.pad_id,
            )
            [[targets[j] for j in row[: len(w)]] for (w, _), row in zip(rows, out.tolist())]

    def run_unconstrained() -> None:
        for rows, ids, mask, budget in batches:
            out = unconstrained_greedy(
                model, task_ids=torch.zeros(len(rows), dtype=torch.long), input_ids=ids,
                attention_mask=mask, max_new_tokens=budget,
            )
            [parse_target(codec.decode(row), len(w)) for (w, _), row in zip(rows, out.tolist())]

    with torch.inference_mode():
        run_constrained()  # warm-up (allocator, generated-weight cache)
        timings = {"constrained": float("inf"), "unconstrained": float("inf")}
        for _ in range(args.repeats):  # alternate, so a noisy neighbour hurts both sides alike
            for name, fn in (("constrained", run_constrained), ("unconstrained", run_unconstrained)):
                start = time.perf_counter()
                fn()
                timings[name] = min(timings[name], time.perf_counter() - start)
    figures = {
        "data": source,
        "sentences": len(data),
        "words": n_words,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "label_tokens": {t: len(p) for t, p in zip(targets, label_pieces)},
        "constrained_words_per_s": round(n_words / timings["constrained"], 1),
        "unconstrained_words_per_s": round(n_words / timings["unconstrained"], 1),
        "speedup": round(timings["unconstrained"] / timings["constrained"], 2),
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
