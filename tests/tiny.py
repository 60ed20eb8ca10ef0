"""Tiny models, a toy corpus and helpers shared by the tests (no downloads, no shared data)."""

from __future__ import annotations

import torch
from transformers import T5Config

from spacy_hyperloader.labeler import Labeler, TaskLabels
from spacy_hyperloader.model import HyperLoaderConfig, HyperLoaderModel
from spacy_hyperloader.sentt.tokenizer import train_sentencepiece

TOY_TEXT = [
    "show me films with tom hanks",
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn went to Brussels on Monday",
    "the quick brown fox jumps over the lazy dog",
    "PER LOC ORG MISC NN VB DT JJ Actor Genre fromloc.city_name",
] * 10

# A span task (BIO) and a plain-tag task over the same toy sentences.
NER_DATA = [
    (["Peter", "Blackburn", "went", "to", "Brussels"], ["B-PER", "I-PER", "O", "O", "B-LOC"]),
    (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
    (["show", "me", "tom", "hanks"], ["O", "O", "B-PER", "I-PER"]),
]
POS_DATA = [
    (["the", "quick", "fox", "jumps"], ["DT", "JJ", "NN", "VB"]),
    (["the", "lazy", "dog"], ["DT", "JJ", "NN"]),
    (["show", "me", "the", "films"], ["VB", "PRP", "DT", "NN"]),
]




def tiny_t5_config(vocab_size: int, **overrides) -> T5Config:
    values = dict(
        vocab_size=vocab_size, d_model=32, d_ff=64, num_layers=2, num_decoder_layers=2,
        num_heads=2, d_kv=16, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    values.update(overrides)
    return T5Config(**values)


def make_model(tokenizer, tasks=("ner", "pos"), seed: int = 0, **config) -> HyperLoaderModel:
    torch.manual_seed(seed)
    return HyperLoaderModel.from_backbone_config(
        tiny_t5_config(len(tokenizer)), HyperLoaderConfig(tasks=list(tasks), **config)
    )


def make_labeler(tokenizer, seed: int = 0, **config) -> Labeler:
    tasks = [
        TaskLabels("ner", "bio", ["PER", "LOC", "ORG", "MISC"]),
        TaskLabels("pos", "tags", ["DT", "JJ", "NN", "VB", "PRP"]),
    ]
    return Labeler(make_model(tokenizer, seed=seed, **config), tokenizer, tasks)


def randomize_(model: HyperLoaderModel, std: float = 0.2, seed: int = 1) -> HyperLoaderModel:
    """Push every generated module away from its (near-)identity start, so tests see their effect."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for hyper in model.hypernetworks.values():
            for p in hyper.parameters():
                p.add_(torch.randn_like(p) * std)
    return model
