"""Greedy decoding of SentT' targets: constrained (always well-formed) and the authors' unconstrained.

Constrained decoding walks a trie of each task's label token sequences. Sentinels are forced,
so they cost no logits; at a label position only the allowed label tokens are scored (a few
hundred columns instead of the 32k vocabulary). Forced tokens (sentinels, the rest of a label
once its prefix is unique) ride along with the chosen token in the same decoder call, so each
call is one decision per row: about one call per word instead of two or more.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from .hyperloader import HyperLoaderModel

_NO_CHILD = -1


@dataclass
class LabelTrie:
    """All tasks' label token sequences as one table of trie nodes (tensors, batch-friendly).

    ``vocab``: the distinct label token ids (the scored columns); ``roots[t]``: task t's root;
    ``child[node, column]``: next node or -1; ``label[node]``: label index ending here or -1;
    ``leaf[node]``: a label ends here and nothing continues it. From a node with a single
    child and no label ending, the next tokens are forced: ``chain[node]`` holds them (padded),
    ``chain_len[node]`` counts them and ``chain_end[node]`` is where they lead.
    """

    vocab: Tensor
    roots: Tensor
    child: Tensor
    label: Tensor
    leaf: Tensor
    chain: Tensor
    chain_len: Tensor
    chain_end: Tensor

    @classmethod
    def build(
        cls, task_labels: Sequence[Sequence[Sequence[int]]], *, task_names: Sequence[str] | None = None
    ) -> "LabelTrie":
        """``task_labels[t][i]`` is the token id sequence of label i of task t."""
        vocab = sorted({tok for labels in task_labels for seq in labels for tok in seq})
        column = {tok: c for c, tok in enumerate(vocab)}
        children: list[dict[int, int]] = []
        label_at: list[int] = []
        roots: list[int] = []

        def new_node() -> int:
            children.append({})
            label_at.append(-1)
            return len(children) - 1

        for t, labels in enumerate(task_labels):
            name = task_names[t] if task_names else str(t)
            if not labels:
                raise ValueError(f"Task {name!r} has no labels to decode into; add its labels first.")
            root = new_node()
            roots.append(root)
            for i, seq in enumerate(labels):
                if not seq:
                    raise ValueError(f"Label {i} of task {name!r} tokenizes to nothing; labels need text.")
                node = root
                for tok in seq:
                    c = column[tok]
                    if c not in children[node]:
                        children[node][c] = new_node()
                    node = children[node][c]
                if label_at[node] != -1:
                    raise ValueError(
                        f"Labels {label_at[node]} and {i} of task {name!r} tokenize identically "
                        f"({list(seq)}), so they could never be told apart; rename one."
                    )
                label_at[node] = i
        child = torch.full((len(children), max(1, len(vocab))), _NO_CHILD, dtype=torch.long)
        for node, links in enumerate(children):
            for c, nxt in links.items():
                child[node, c] = nxt
        label = torch.tensor(label_at, dtype=torch.long)
        leaf = (label >= 0) & (child == _NO_CHILD).all(dim=1)
        chains: list[list[int]] = []
        ends: list[int] = []
        for node in range(len(children)):
            tokens, end = [], node
            while label_at[end] == -1 and len(children[end]) == 1:
                (c, end), = children[end].items()
                tokens.append(vocab[c])
            chains.append(tokens)
            ends.append(end)
        chain = pad_sequence([torch.tensor(t, dtype=torch.long) for t in chains], batch_first=True)
        return cls(
            torch.tensor(vocab, dtype=torch.long), torch.tensor(roots, dtype=torch.long), child, label, leaf,
            chain, torch.tensor([len(t) for t in chains], dtype=torch.long), torch.tensor(ends, dtype=torch.long),
        )

    @property
    def fields(self) -> tuple[Tensor, ...]:
        return (self.vocab, self.roots, self.child, self.label, self.leaf, self.chain, self.chain_len, self.chain_end)

    def to(self, device: torch.device | str) -> "LabelTrie":
        return LabelTrie(*(t.to(device) for t in self.fields))


@torch.no_grad()
def constrained_greedy(
    model: HyperLoaderModel,
    trie: LabelTrie,
    *,
    task_ids: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    n_words: Tensor,
    sentinel_ids: Tensor,
    decoder_start_id: int,
    pad_id: int,
) -> Tensor:
    """Label index per (row, word), shape (batch, max words), -1 past each row's length.

    Every row gets exactly ``n_words[row]`` labels, each one of its task's labels, whatever the
    weights. ``sentinel_ids[i]`` is ``<extra_id_i>``; rows hold at most ``len(sentinel_ids) - 1`` words.

    Each decoder call feeds every row all the tokens it knows (its chosen token, the label's
    forced rest, the next sentinel), so every call is one choice per row. Rows feed different
    numbers of tokens; the shorter ones are padded with masked slots, and relative positions
    are computed per row over the real tokens only (``_RowPositions``), which keeps
    results equal to decoding each row alone.
    """
    device = input_ids.device
    trie = trie.to(device)
    batch = input_ids.shape[0]
    n_words = n_words.to(device)
    sentinels = sentinel_ids.to(device)
    most = int(n_words.max()) if batch else 0
    if most >= len(sentinels):
        raise ValueError(f"A row has {most} words; at most {len(sentinels) - 1} fit one segment.")
    result = torch.full((batch, most), -1, dtype=torch.long, device=device)
    if most == 0:
        return result
    rows = torch.arange(batch, device=device)
    roots = trie.roots[task_ids.to(device)]
    node = roots.clone()
    word = torch.zeros(batch, dtype=torch.long, device=device)
    width = 2 + trie.chain.shape[1]
    slots = torch.arange(width, device=device)
    pending = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    pending[:, 0] = decoder_start_id
    pending[:, 1] = sentinels[0]
    pending_len = torch.where(n_words > 0, 2, 0)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    decoder = model.backbone.get_decoder()
    positions = _RowPositions(model, batch, device)

    with model.task_context(task_ids), positions:
        encoded = model.encode(input_ids, attention_mask)
        while True:
            active = pending_len > 0
            if not bool(active.any()):
                break
            k = int(pending_len.max())
            real = slots[None, :k] < pending_len[:, None]
            key_mask = positions.advance(real)
            hidden = decoder(
                input_ids=pending[:, :k].masked_fill(~real, pad_id),
                attention_mask=key_mask,
                encoder_hidden_states=encoded,
                encoder_attention_mask=attention_mask,
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state
            hidden = hidden[rows, (pending_len - 1).clamp(min=0)]  # after each row's last real token

            label_logits = model.project(hidden, trie.vocab)
            label_logits = label_logits.masked_fill(trie.child[node] == _NO_CHILD, float("-inf"))
            next_sentinel = sentinels[(word + 1).clamp(max=len(sentinels) - 1)]
            can_end = trie.label[node] >= 0
            end_logit = model.project_rows(hidden, next_sentinel).masked_fill(~can_end, float("-inf"))
            best_column = label_logits.argmax(dim=1)
            ends = can_end & (end_logit >= label_logits.max(dim=1).values)
            stepped = trie.child[node, best_column].clamp(min=0)
            # Follow the forced rest of the label, if any.
            chain_len = torch.where(ends, 0, trie.chain_len[stepped])
            landed = torch.where(ends, node, trie.chain_end[stepped])
            reached_leaf = ~ends & trie.leaf[landed]
            finished = active & (ends | reached_leaf)
            result[rows[finished], word[finished]] = trie.label[landed][finished]

            node = torch.where(active & ~finished, landed, node)
            node = torch.where(finished, roots, node)
            word = word + finished.long()
            # Next feed: [token, forced rest..., sentinel if the label is finished], or [sentinel].
            sentinel_now = sentinels[word.clamp(max=len(sentinels) - 1)]
            token = trie.vocab[best_column]
            fresh = torch.cat([token[:, None], trie.chain[stepped], torch.full_like(token[:, None], pad_id)], dim=1)
            fresh = torch.where(slots[None, :] == (1 + chain_len)[:, None], sentinel_now[:, None], fresh)
            fresh = torch.where(ends[:, None], sentinel_now[:, None], fresh)
            fresh_len = torch.where(ends, 1, 1 + chain_len + reached_leaf.long())
            pending = fresh
            pending_len = torch.where(active & (word < n_words), fresh_len, 0)
    return result


class _RowPositions:
    """Per-row decoder positions for the relative attention bias.

    HF's T5 computes one bias for the whole batch from slot indices. While active, the decoder's
    bias is computed per row from each row's own count of real tokens, so a masked padding slot
    in one row does not shift the positions it sees. Which module computes the bias, and how, is
    the backbone family's business (``ArchitectureTable.position_bias``).

    The bias method of the owner is replaced once by a dispatcher that asks the calling thread
    for its active row positions and otherwise computes the backbone's own bias: decoders in
    other threads, and plain backbone calls, are untouched.
    """

    def __init__(self, model: HyperLoaderModel, batch: int, device: torch.device) -> None:
        self.architecture = model.architecture
        self.owner = self.architecture.position_bias_owner(model.backbone, "decoder")
        self.method = self.architecture.position_bias.compute
        self.position = torch.zeros(batch, 0, dtype=torch.long, device=device)
        self.mask = torch.zeros(batch, 0, dtype=torch.long, device=device)
        self.next = torch.zeros(batch, dtype=torch.long, device=device)
        self.query = self.next[:, None]

    def advance(self, real: Tensor) -> Tensor:
        """Register this call's slots (``real`` marks real tokens); returns the key mask so far."""
        counted = real.long().cumsum(dim=1)
        self.query = self.next[:, None] + counted - 1
        self.next = self.next + counted[:, -1]
        self.position = torch.cat([self.position, self.query], dim=1)
        self.mask = torch.cat([self.mask, real.long()], dim=1)
        return self.mask

    def compute_bias(self, query_length: int, key_length: int, device=None, cache_position=None) -> Tensor:
        """Stands in for the owner's bias method (same signature): (batch, heads, queries, keys)."""
        relative = self.position[:, None, :key_length] - self.query[:, :, None]
        buckets = self.architecture.position_buckets(self.owner, relative, bidirectional=False)
        return self.architecture.bias_values(self.owner, buckets).permute(0, 3, 1, 2)

    def __enter__(self) -> "_RowPositions":
        bound = getattr(self.owner, self.method)
        if getattr(bound, "__func__", None) is not _dispatch_bias:
            # a bound method: deepcopy and pickling rebind it to the copied module
            self.owner._hyperloader_bias_method = self.method
            setattr(self.owner, self.method, types.MethodType(_dispatch_bias, self.owner))
        active = _active_rows()
        self._previous = active.get(id(self.owner))
        active[id(self.owner)] = self
        return self

    def __exit__(self, *exc: object) -> None:
        active = _active_rows()
        if self._previous is None:
            active.pop(id(self.owner), None)
        else:
            active[id(self.owner)] = self._previous


_ROWS = threading.local()


def _active_rows() -> dict[int, _RowPositions]:
    """This thread's active row positions, by bias owner."""
    if not hasattr(_ROWS, "by_owner"):
        _ROWS.by_owner = {}
    return _ROWS.by_owner


def _dispatch_bias(owner: torch.nn.Module, *args: Any, **kwargs: Any) -> Tensor:
    rows = _active_rows().get(id(owner))
    if rows is not None:
        return rows.compute_bias(*args, **kwargs)
    return getattr(type(owner), owner._hyperloader_bias_method)(owner, *args, **kwargs)


@torch.no_grad()
def unconstrained_greedy(
    model: HyperLoaderModel,
    *,
    task_ids: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    max_new_tokens: int,
) -> Tensor:
    """The authors' decoding: plain greedy ``generate`` over the whole vocabulary."""
    with model.task_context(task_ids):
        return model.backbone.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
        )
