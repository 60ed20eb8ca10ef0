"""T5-style tokenizers without a download: load a local SentencePiece vocabulary or train one."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5TokenizerFast

from ..model.backbone import check_local_source

N_SENTINELS = 100


def train_sentencepiece(
    texts: Iterable[str],
    *,
    vocab_size: int = 8000,
    model_type: str = "unigram",
) -> T5TokenizerFast:
    """A T5 tokenizer (pad 0, ``</s>`` 1, ``<unk>`` 2, 100 sentinels) trained on ``texts``.

    Small vocabularies make small models learn in minutes; the 32k T5 output layer dominates them.
    ``vocab_size`` is an upper bound: tiny corpora get fewer pieces.
    """
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(t for t in texts if t.strip()),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spiece.model"
        path.write_bytes(buffer.getvalue())
        return word_initial_pieces(T5TokenizerFast(vocab_file=str(path), extra_ids=N_SENTINELS))


def word_initial_pieces(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Make a word tokenized on its own start with its word-initial ``▁`` piece, as in running text.

    SentT' tokenizes every word separately. A Metaspace pre-tokenizer with
    ``prepend_scheme: "never"`` (what converting a bare SentencePiece model can give) then
    splits ``said`` into ``sa`` + ``id`` instead of ``▁said``, so fine-tuning sees other
    pieces than pretraining did. T5's own tokenizer prepends (``"always"``); this sets the
    same, and leaves tokenizers that already prepend (or are not fast) unchanged.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer
    from tokenizers import Tokenizer

    state = json.loads(backend.to_str())
    if not _prepend_always(state.get("pre_tokenizer")) | _prepend_always(state.get("decoder")):
        return tokenizer
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
    return tokenizer


def _prepend_always(node: Any) -> bool:
    """Set every Metaspace ``prepend_scheme: never`` under ``node`` to ``always``; True if any changed."""
    changed = False
    if isinstance(node, dict):
        if node.get("type") == "Metaspace" and node.get("prepend_scheme") == "never":
            node["prepend_scheme"] = "always"
            changed = True
        for value in node.values():
            changed |= _prepend_always(value)
    elif isinstance(node, list):
        for value in node:
            changed |= _prepend_always(value)
    return changed


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase:
    """From a tokenizer directory, a SentencePiece ``.model`` file, a ``tokenizer.json`` or a hub name."""
    path = check_local_source(source, "Tokenizer", "a tokenizer directory, a SentencePiece .model file or a tokenizer.json")
    if path.suffix == ".model" and path.is_file():
        tokenizer = T5TokenizerFast(vocab_file=str(path), extra_ids=N_SENTINELS)
    elif path.name == "tokenizer.json" and path.is_file():
        tokenizer = T5TokenizerFast(tokenizer_file=str(path))
    elif path.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    return word_initial_pieces(tokenizer)


def check_t5_tokenizer(tokenizer: PreTrainedTokenizerBase, source: str) -> None:
    """HyperLoader's format and span corruption both need T5's sentinels, pad and eos."""
    sentinel = tokenizer.convert_tokens_to_ids("<extra_id_0>")
    if sentinel is None or sentinel == tokenizer.unk_token_id:
        raise ValueError(
            f"vocabulary {source} has no <extra_id_N> sentinel tokens; HyperLoader's target format "
            f"needs a T5-style vocabulary"
        )
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError(f"vocabulary {source} has no pad or eos token; a T5-style vocabulary has pad 0 and </s> 1")


def sentinel_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of ``<extra_id_0>``, ``<extra_id_1>``, ... as far as the vocabulary has them."""
    ids = []
    for i in range(N_SENTINELS):
        token_id = tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>")
        if token_id is None or token_id == tokenizer.unk_token_id:
            break
        ids.append(token_id)
    return ids
