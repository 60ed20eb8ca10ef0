"""SentT' as token ids: words and labels become sentinel-interleaved id sequences.

Ids are assembled per word rather than by tokenizing a joined string, so each word's slot is
fixed by construction: a word that is empty, whitespace, or reads like ``<extra_id_5>`` can
neither vanish nor shift the alignment.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from .format import MAX_WORDS_PER_SEGMENT, sentinel


class SentTCodec:
    """Builds SentT' source/target ids with a T5-style tokenizer (100 ``<extra_id_N>`` sentinels)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        ids = tokenizer.convert_tokens_to_ids([sentinel(i) for i in range(MAX_WORDS_PER_SEGMENT + 1)])
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            raise ValueError(
                "The tokenizer has no <extra_id_0..99> sentinel tokens; SentT' needs a T5-style "
                "vocabulary (e.g. T5TokenizerFast, or one made by `init-backbone`)."
            )
        for name in ("eos_token_id", "pad_token_id"):
            if getattr(tokenizer, name) is None:
                raise ValueError(f"The tokenizer has no {name.replace('_id', '')}; SentT' needs one.")
        self.sentinel_ids = torch.tensor(ids, dtype=torch.long)
        self._sentinels = list(ids)
        self.eos_id: int = tokenizer.eos_token_id
        self.pad_id: int = tokenizer.pad_token_id
        boundary = tokenizer.convert_tokens_to_ids("\u2581")
        self._boundary_id: int | None = None if boundary in (None, tokenizer.unk_token_id) else boundary
        # Ids a word must never produce; <unk> is fine (unknown characters stay visible).
        self._reserved = (frozenset(tokenizer.all_special_ids) | frozenset(ids)) - {tokenizer.unk_token_id}

    def piece_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each text on its own (a word or a label), never a special token.

        Text that spells a special token (``<extra_id_3>``, ``</s>``) would map onto it (the T5
        vocabulary even holds sentinels as pieces); such text is re-encoded character by
        character, so it stays ordinary text and cannot move a slot.
        """
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        out = []
        for text, ids in zip(texts, encoded):
            if self._reserved.isdisjoint(ids):
                out.append(list(ids))
            else:
                chars = self.tokenizer(list(text), add_special_tokens=False)["input_ids"]
                out.append([i for piece in chars for i in piece if i not in self._reserved])
        return out

    def label_piece_ids(self, labels: Sequence[str]) -> list[list[int]]:
        """Subword ids of each label as the decoder writes it after a sentinel.

        SentencePiece often splits a label into a bare word-boundary piece and the rest
        (``PER`` -> ``▁``, ``PER``); the bare piece says nothing, so it is left out. That keeps
        most labels a single token: one decoder step per word instead of two.
        """
        pieces = self.piece_ids(labels)
        if self._boundary_id is None:
            return pieces
        return [p[1:] if len(p) > 1 and p[0] == self._boundary_id else p for p in pieces]

    def interleave(self, pieces: Sequence[Sequence[int]]) -> list[int]:
        """``<extra_id_0> p0 <extra_id_1> p1 … <extra_id_n> </s>`` for one segment."""
        if len(pieces) > MAX_WORDS_PER_SEGMENT:
            raise ValueError(f"A segment holds at most {MAX_WORDS_PER_SEGMENT} words, got {len(pieces)}.")
        out: list[int] = []
        for i, ids in enumerate(pieces):
            out.append(self._sentinels[i])
            out.extend(ids)
        out.append(self._sentinels[len(pieces)])
        out.append(self.eos_id)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)
