"""Can a backbone serve SentT'? Attention saturation, collapse, and where a word's information sits.

    python benchmarks/backbone_health.py BACKBONE [BACKBONE ...] [--sentences 600] [--random-too]

On CoNLL-2003 training sentences in SentT' form, for each backbone (and, with ``--random-too``,
a randomly initialised copy of the first one's shape and vocabulary), prints:

- the mean entropy of each encoder layer's self-attention (uniform attention: about log of the
  segment length), and the largest share one key takes: near 0 entropy means saturated
  attention, whose softmax passes almost no gradient;
- the mean cosine similarity between the final encoder states of different positions
  (near 1: the positions collapsed onto one vector);
- the accuracy of a linear probe predicting the word's PTB tag from the final encoder state at
  the word's first piece, at its sentinel ``<extra_id_i>``, and from the input embedding. The
  decoder finds word i by matching its sentinel, so the sentinel has to carry the word.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks._common import DEFAULT_DATA, print_table, read_sentences, write_json  # noqa: E402
from spacy_hyperloader.sentt.codec import SentTCodec  # noqa: E402
from spacy_hyperloader.model.backbone import build_backbone, load_backbone  # noqa: E402
from spacy_hyperloader.sentt.tokenizer import load_tokenizer  # noqa: E402


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, n_classes: int, steps: int = 300) -> float:
    """Held-out accuracy (last 20 %) of a softmax regression on standardised features."""
    with torch.enable_grad():
        return _fit_probe(features, labels, n_classes, steps)


def _fit_probe(features: torch.Tensor, labels: torch.Tensor, n_classes: int, steps: int) -> float:
    split = int(len(labels) * 0.8)
    x = (features - features[:split].mean(0)) / (features[:split].std(0) + 1e-5)
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(x[:split] @ weight + bias, labels[:split]) + 1e-4 * (weight**2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(((x[split:] @ weight + bias).argmax(1) == labels[split:]).float().mean())


@torch.no_grad()
def health(model, codec: SentTCodec, sentences, tag_ids: dict[str, int]) -> dict[str, object]:
    model.eval()
    entropy, top, cosine = None, None, []
    at_word, at_sentinel, at_embedding, labels = [], [], [], []
    for s in sentences:
        pieces = codec.piece_ids(s.words)
        ids = torch.tensor([codec.interleave(pieces)])
        out = model.encoder(input_ids=ids, output_attentions=True)
        h = out.last_hidden_state[0]
        ent = torch.stack([-(a[0].clamp_min(1e-12).log() * a[0]).sum(-1).mean() for a in out.attentions])
        mx = torch.stack([a[0].max(-1).values.mean() for a in out.attentions])
        entropy = ent if entropy is None else entropy + ent
        top = mx if top is None else top + mx
        unit = torch.nn.functional.normalize(h, dim=-1)
        n = len(unit)
        cosine.append(float((unit @ unit.T)[~torch.eye(n, dtype=torch.bool)].mean()))
        embedded = model.shared(ids[0])
        pos = 0
        for word_pieces, tag in zip(pieces, s.tags):
            first = pos + 1 if word_pieces else pos
            at_word.append(h[first])
            at_sentinel.append(h[pos])
            at_embedding.append(embedded[first])
            labels.append(tag_ids[tag])
            pos += 1 + len(word_pieces)
    y = torch.tensor(labels)
    return {
        "attention_entropy_per_layer": [round(float(e) / len(sentences), 3) for e in entropy],
        "top_key_share_per_layer": [round(float(t) / len(sentences), 3) for t in top],
        "final_state_cosine": round(sum(cosine) / len(cosine), 3),
        "probe_tag_accuracy_at_word": round(probe_accuracy(torch.stack(at_word), y, len(tag_ids)), 3),
        "probe_tag_accuracy_at_sentinel": round(probe_accuracy(torch.stack(at_sentinel), y, len(tag_ids)), 3),
        "probe_tag_accuracy_from_embedding": round(probe_accuracy(torch.stack(at_embedding), y, len(tag_ids)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbones", nargs="+", help="local Hugging Face T5 directories")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sentences", type=int, default=600)
    parser.add_argument("--random-too", action="store_true", help="also a random model of the first backbone's shape")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    sentences = read_sentences(args.data / "conll2003" / "train.txt", limit=args.sentences)
    tag_ids = {t: i for i, t in enumerate(sorted({t for s in sentences for t in s.tags}))}
    results, rows = {}, []
    candidates = [(str(b), b, False) for b in args.backbones]
    if args.random_too:
        candidates.append((f"random ({args.backbones[0]} shape)", args.backbones[0], True))
    for name, source, random_init in candidates:
        codec = SentTCodec(load_tokenizer(source))
        model = load_backbone(source)
        if random_init:
            torch.manual_seed(args.seed)
            model = build_backbone(model.config)
        r = health(model, codec, sentences, tag_ids)
        results[name] = r
        rows.append([name, " ".join(f"{e:.2f}" for e in r["attention_entropy_per_layer"]),
                     " ".join(f"{t:.2f}" for t in r["top_key_share_per_layer"]), f"{r['final_state_cosine']:.3f}",
                     f"{r['probe_tag_accuracy_at_word']:.3f}", f"{r['probe_tag_accuracy_at_sentinel']:.3f}",
                     f"{r['probe_tag_accuracy_from_embedding']:.3f}"])
    print_table(["backbone", "encoder attention entropy (nats)", "top key share", "state cosine",
                 "probe@word", "probe@sentinel", "probe@embedding"], rows,
                title=f"{len(sentences)} CoNLL-2003 training sentences in SentT' form")
    write_json(args.output, results)


if __name__ == "__main__":
    main()
