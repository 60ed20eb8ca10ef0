"""T5-style tokenizers without a download: load a local SentencePiece vocabulary or train one."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5TokenizerFast

from .model.backbone import check_local_source

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
        return T5TokenizerFast(vocab_file=str(path), extra_ids=N_SENTINELS)


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase:
    """From a tokenizer directory, a SentencePiece ``.model`` file, a ``tokenizer.json`` or a hub name."""
    path = check_local_source(source, "Tokenizer", "a tokenizer directory, a SentencePiece .model file or a tokenizer.json")
    if path.suffix == ".model" and path.is_file():
        return T5TokenizerFast(vocab_file=str(path), extra_ids=N_SENTINELS)
    if path.name == "tokenizer.json" and path.is_file():
        return T5TokenizerFast(tokenizer_file=str(path))
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(source))


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
