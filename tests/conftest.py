"""Session fixtures: a tokenizer trained on the spot, so no test needs a download."""

from __future__ import annotations

import pytest
import torch

from spacy_hyperloader.model.backbone import build_backbone

from spacy_hyperloader.sentt.tokenizer import train_sentencepiece

from .tiny import TOY_TEXT, tiny_t5_config


@pytest.fixture(scope="session")
def tokenizer():
    return train_sentencepiece(TOY_TEXT, vocab_size=200)


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory, tokenizer) -> str:
    """A tiny random T5 backbone with the toy tokenizer, saved as a local model directory."""
    path = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    build_backbone(tiny_t5_config(len(tokenizer))).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
