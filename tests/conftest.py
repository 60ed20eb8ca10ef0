"""Session fixtures: a tokenizer trained on the spot, so no test needs a download."""

from __future__ import annotations

import pytest

from spacy_hyperloader.sentt.tokenizer import train_sentencepiece

from .tiny import TOY_TEXT


@pytest.fixture(scope="session")
def tokenizer():
    return train_sentencepiece(TOY_TEXT, vocab_size=200)
