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
    stats: "DecodingStats | None" = None,
) -> Tensor:
    """Label index per (row, word), shape (batch, max words), -1 past each row's length.

    Every row gets exactly ``n_words[row]`` labels, each one of its task's labels, whatever the
    weights. ``sentinel_ids[i]`` is ``<extra_id_i>``; rows hold at most ``len(sentinel_ids) - 1`` words.

    Each decoder call feeds every row all the tokens it knows (its chosen token, the label's
    forced rest, the next sentinel), so every call is one choice per row. Rows feed different
    numbers of tokens; the shorter ones are padded with masked slots, and relative positions
    are computed per row over the real tokens only (``_RowPositions``), which keeps
    results equal to decoding each row alone. ``stats``, if given, counts the decoder calls.
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
    if stats is not None:
        stats.segments += int((n_words > 0).sum())
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
            if stats is not None:
                stats.passes += 1
                stats.row_passes += int(active.sum())
                stats.tokens_fed += int(pending_len.sum())
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


@dataclass
class DecodingStats:
    """Decoder calls made by constrained decoding; pass one object to many calls to sum them.

    ``passes``: decoder calls (sequential steps of a batch); ``row_passes``: over rows, the calls
    each row took part in (``passes_per_segment`` divides it by ``segments``, the rows with at
    least one word); ``tokens_fed``: real tokens fed, rejected draft tokens included;
    ``tie_checks``: draft-and-verify decisions re-made in a sequential-shaped call (near ties).
    """

    passes: int = 0
    row_passes: int = 0
    segments: int = 0
    tokens_fed: int = 0
    tie_checks: int = 0

    @property
    def passes_per_segment(self) -> float:
        return self.row_passes / self.segments if self.segments else 0.0


_END = -1  # a decision: end the label here (otherwise a decision is a trie column)


class _TrieWalk:
    """The trie as Python lists, for building drafts and replaying decisions on the host."""

    def __init__(self, trie: LabelTrie) -> None:
        self.vocab = trie.vocab.tolist()
        child = trie.child.tolist()
        self.children = [{c: n for c, n in enumerate(row) if n != _NO_CHILD} for row in child]
        self.label = trie.label.tolist()
        self.leaf = trie.leaf.tolist()
        lengths = trie.chain_len.tolist()
        self.chain = [row[:n] for row, n in zip(trie.chain.tolist(), lengths)]
        self.chain_end = trie.chain_end.tolist()
        self.roots = trie.roots.tolist()
        # Per task: label index -> (nodes from the root to its end node, columns between them).
        self.paths: list[dict[int, tuple[dict[int, int], list[int], int]]] = []
        for root in self.roots:
            paths: dict[int, tuple[dict[int, int], list[int], int]] = {}
            stack = [(root, [root], [])]
            while stack:
                node, nodes, cols = stack.pop()
                if self.label[node] >= 0:
                    paths[self.label[node]] = ({n: i for i, n in enumerate(nodes)}, cols, node)
                for c, nxt in self.children[node].items():
                    stack.append((nxt, nodes + [nxt], cols + [c]))
            self.paths.append(paths)
        # The label guessed below a node when nothing better is known: its own, else the first below.
        self.below = [-1] * len(self.label)
        for node in reversed(range(len(self.label))):  # children are created after their parent
            if self.label[node] >= 0:
                self.below[node] = self.label[node]
            elif self.children[node]:
                self.below[node] = self.below[self.children[node][min(self.children[node])]]

    def step(self, node: int, word: int, decision: int, n: int, root: int, sentinels: list[int]):
        """Apply one decision as ``constrained_greedy`` does: (tokens fed next or None when the
        row is complete, node, word, finished label or -1)."""
        if decision == _END:
            word += 1
            return ([sentinels[word]] if word < n else None), root, word, self.label[node]
        stepped = self.children[node][decision]
        group = [self.vocab[decision], *self.chain[stepped]]
        landed = self.chain_end[stepped]
        if self.leaf[landed]:
            word += 1
            if word == n:
                return None, root, word, self.label[landed]
            return [*group, sentinels[word]], root, word, self.label[landed]
        return group, landed, word, -1

    def draft(self, task: int, node: int, guess: int) -> int:
        """The decision at ``node`` that leads towards label ``guess`` (or, when ``node`` is off
        its path, towards the label guessed below ``node``)."""
        path = self.paths[task].get(guess)
        if path is None or node not in path[0]:
            path = self.paths[task][self.below[node]]
        index, cols, end = path
        return _END if node == end else cols[index[node]]

    def guess_after(self, node: int, decision: int) -> int:
        """The label a decision at ``node`` points to."""
        if decision == _END:
            return self.label[node]
        return self.below[self.chain_end[self.children[node][decision]]]


@dataclass
class _DraftRow:
    index: int  # row of the caller's batch
    task: int
    n: int
    node: int
    word: int
    pending: list[int]  # verified tokens not yet in the cache; a decision follows the last one
    guess: list[int]  # draft label per word
    solo: bool = False  # feed only ``pending`` (a near tie is decided in a sequential-shaped call)


@torch.no_grad()
def draft_verify_greedy(
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
    stats: DecodingStats | None = None,
    draft_labels: Sequence[int] | Tensor | None = None,
    tie_tolerance: float = 1e-4,
) -> Tensor:
    """``constrained_greedy``'s result in far fewer sequential decoder calls (draft and verify).

    Each call feeds every running row its verified pending tokens followed by a guessed rest of
    its target: one guessed label per remaining word (at first ``draft_labels[task]``, default
    label 0; later what the previous call's choices pointed to, a Jacobi iteration), laid out as
    the tokens ``constrained_greedy`` would feed for those labels (label pieces, forced pieces,
    sentinels). One teacher-forced call then gives the hidden state at every point where
    ``constrained_greedy`` makes a decision, and the very same rule (allowed trie children only,
    end the label when the next sentinel's logit >= the best piece's) is applied at all of them.
    The guess is kept up to the first point where the rule disagrees, plus the rule's own
    decision there (so every call decides at least one step); the cache keeps only the verified
    tokens (rejected slots become masked keys, trailing ones are cropped). Finished rows leave
    the batch (cache, encoder states, masks and positions are index-selected).

    Why it is exact: the decoder is causal, so the state at a decision point depends only on
    the tokens up to it; when all earlier guesses were verified those are exactly the tokens
    ``constrained_greedy`` has fed by then (relative positions are per row over real tokens, as
    there), so the rule sees the same logits and makes the same decision. Only float rounding
    differs with the call's shape (``constrained_greedy``'s own rounding already depends on the
    batch's padding): a decision whose best and second-best candidates are within
    ``tie_tolerance * max(1, |best|)`` is only taken from a call whose feed for that row is what
    ``constrained_greedy`` feeds before it (the verified prefix in the cache, then only the
    decision's own token group, its last token the row's last real token); a near tie met
    anywhere else is cut off and re-made in such a call (``tie_tolerance=0`` turns this off).
    Tests check equality on random and trained tiny models, mixed tasks and lengths.
    ``stats`` counts calls (``passes_per_segment``) and these re-checks (``tie_checks``).
    """
    device = input_ids.device
    batch = input_ids.shape[0]
    n_words = n_words.to(device)
    most = int(n_words.max()) if batch else 0
    if most >= len(sentinel_ids):
        raise ValueError(f"A row has {most} words; at most {len(sentinel_ids) - 1} fit one segment.")
    result = torch.full((batch, most), -1, dtype=torch.long, device=device)
    if stats is not None:
        stats.segments += int((n_words > 0).sum())
    if most == 0:
        return result
    walk = _TrieWalk(trie)
    trie = trie.to(device)
    sentinels = sentinel_ids.tolist()
    tasks = task_ids.tolist()
    first = [0] * len(walk.roots) if draft_labels is None else [int(x) for x in torch.as_tensor(draft_labels).tolist()]
    rows = [
        _DraftRow(r, tasks[r], n, walk.roots[tasks[r]], 0, [decoder_start_id, sentinels[0]], [first[tasks[r]]] * n)
        for r, n in enumerate(n_words.tolist())
    ]
    labels: list[list[int]] = [[] for _ in range(batch)]
    running = [row for row in rows if row.n > 0]
    alive = torch.tensor([row.index for row in running], dtype=torch.long, device=device)
    task_ids = task_ids.to(device)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    decoder = model.backbone.get_decoder()

    with model.task_context(task_ids):
        encoded = model.encode(input_ids, attention_mask)
    encoded, attention_mask = encoded.index_select(0, alive), attention_mask.index_select(0, alive)
    positions = _RowPositions(model, len(running), device)
    with positions:
        while running:
            # Feed: pending tokens, then the draft; record the state at every decision point.
            feeds, points = [], []
            for row in running:
                tokens = list(row.pending)
                here = [(len(tokens) - 1, row.node, row.word, None)]  # (slot, node, word, drafted decision)
                node, word = row.node, row.word
                while not row.solo:
                    decision = walk.draft(row.task, node, row.guess[word])
                    here[-1] = (*here[-1][:3], decision)
                    group, node, word, _ = walk.step(node, word, decision, row.n, walk.roots[row.task], sentinels)
                    if group is None:
                        break
                    tokens += group
                    here.append((len(tokens) - 1, node, word, None))
                feeds.append(tokens)
                points.append(here)
            lengths = torch.tensor([len(t) for t in feeds], device=device)
            width = int(lengths.max())
            fed = torch.tensor([t + [pad_id] * (width - len(t)) for t in feeds], dtype=torch.long, device=device)
            real = torch.arange(width, device=device)[None, :] < lengths[:, None]
            if stats is not None:
                stats.passes += 1
                stats.row_passes += len(running)
                stats.tokens_fed += int(lengths.sum())
            key_mask = positions.advance(real)
            with model.task_context(task_ids.index_select(0, alive)):
                hidden = decoder(
                    input_ids=fed,
                    attention_mask=key_mask,
                    encoder_hidden_states=encoded,
                    encoder_attention_mask=attention_mask,
                    past_key_values=cache,
                    use_cache=True,
                ).last_hidden_state

            # The rule of constrained_greedy at every decision point at once.
            flat = [(b, slot, node, word) for b, here in enumerate(points) for slot, node, word, _ in here]
            at = torch.tensor([(b, slot) for b, slot, _, _ in flat], device=device)
            node = torch.tensor([p[2] for p in flat], device=device)
            word = torch.tensor([p[3] for p in flat], device=device)
            h = hidden[at[:, 0], at[:, 1]]
            label_logits = model.project(h, trie.vocab)
            label_logits = label_logits.masked_fill(trie.child[node] == _NO_CHILD, float("-inf"))
            next_sentinel = sentinel_ids.to(device)[(word + 1).clamp(max=len(sentinels) - 1)]
            can_end = trie.label[node] >= 0
            end_logit = model.project_rows(h, next_sentinel).masked_fill(~can_end, float("-inf"))
            best_column = label_logits.argmax(dim=1)
            ends = can_end & (end_logit >= label_logits.max(dim=1).values)
            decided = torch.where(ends, _END, best_column).tolist()
            if tie_tolerance > 0:
                candidates = torch.cat([label_logits, end_logit[:, None]], dim=1)
                top = candidates.topk(min(2, candidates.shape[1]), dim=1).values
                margin = top[:, 0] - top[:, -1] if top.shape[1] > 1 else torch.full_like(top[:, 0], float("inf"))
                margin = torch.where(torch.isinf(top[:, -1]), float("inf"), margin)
                near = (torch.isfinite(margin) & (margin <= tie_tolerance * top[:, 0].abs().clamp(min=1))).tolist()
            else:
                near = [False] * len(decided)

            # Verify each row's draft, keep what holds, guess again from the rule's choices.
            kept, still = [], []
            k = 0
            for b, row in enumerate(running):
                here, tokens = points[b], feeds[b]
                rule = decided[k : k + len(here)]
                tied = near[k : k + len(here)]
                k += len(here)
                i, start, done = 0, 0, False
                while True:
                    slot, node_i, word_i, drafted = here[i]
                    if tied[i] and (i > 0 or slot != len(tokens) - 1):  # not fed as sequentially
                        row.pending, row.solo = tokens[start : slot + 1], True
                        row.node, row.word = node_i, word_i
                        if stats is not None:
                            stats.tie_checks += 1
                        kept.append(start)
                        break
                    group, row.node, row.word, label = walk.step(
                        node_i, word_i, rule[i], row.n, walk.roots[row.task], sentinels
                    )
                    if label >= 0:
                        labels[row.index].append(label)
                    if group is None:
                        done = True
                        kept.append(0)
                        break
                    if drafted != rule[i] or i + 1 == len(here):
                        row.pending, row.solo = group, False
                        kept.append(slot + 1)
                        break
                    start = slot + 1
                    i += 1
                if not done:
                    still.append(b)
                    frontier = here[i][2]
                    if not row.solo and row.word == frontier:  # mid-label: where the rule went
                        row.guess[frontier] = walk.guess_after(here[i][1], rule[i])
                    # Jacobi: for each later word, the label its first disagreement points to
                    # (those states followed the rejected guess, so this is only a better guess).
                    seen: set[int] = set()
                    for j in range(i + 1, len(here)):
                        _, node_j, word_j, drafted = here[j]
                        if word_j == frontier or word_j in seen or drafted == rule[j]:
                            continue
                        seen.add(word_j)
                        row.guess[word_j] = walk.guess_after(node_j, rule[j])
            counts = torch.tensor(kept, device=device)
            positions.accept(width, counts)
            if len(still) < len(running):
                select = torch.tensor(still, dtype=torch.long, device=device)
                running = [running[b] for b in still]
                if not running:
                    break
                alive = alive.index_select(0, select)
                cache.batch_select_indices(select)
                positions.select(select)
                encoded = encoded.index_select(0, select)
                attention_mask = attention_mask.index_select(0, select)
                counts = counts.index_select(0, select)
            keep = positions.mask.shape[1] - width + int(counts.max())
            cache.crop(keep)
            positions.crop(keep)

    for r, found in enumerate(labels):
        if found:
            result[r, : len(found)] = torch.tensor(found, dtype=torch.long, device=device)
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
        self._before_last = self.next

    def advance(self, real: Tensor) -> Tensor:
        """Register this call's slots (``real`` marks real tokens); returns the key mask so far."""
        counted = real.long().cumsum(dim=1)
        self._before_last = self.next
        self.query = self.next[:, None] + counted - 1
        self.next = self.next + counted[:, -1]
        self.position = torch.cat([self.position, self.query], dim=1)
        self.mask = torch.cat([self.mask, real.long()], dim=1)
        return self.mask

    def accept(self, width: int, counts: Tensor) -> None:
        """Keep only the first ``counts[row]`` slots of the last call (``width`` slots) as real:
        the rest become masked keys, and the next position follows the kept ones."""
        kept = torch.arange(width, device=counts.device)[None, :] < counts[:, None]
        self.mask[:, -width:] = self.mask[:, -width:] * kept.long()
        self.next = self._before_last + counts

    def crop(self, length: int) -> None:
        """Forget key slots from ``length`` on (as ``DynamicCache.crop`` does)."""
        self.position = self.position[:, :length]
        self.mask = self.mask[:, :length]

    def select(self, rows: Tensor) -> None:
        """Keep only ``rows`` of the batch (as ``batch_select_indices`` does)."""
        self.position = self.position.index_select(0, rows)
        self.mask = self.mask.index_select(0, rows)
        self.next = self.next.index_select(0, rows)
        self.query = self.query.index_select(0, rows)
        self._before_last = self._before_last.index_select(0, rows)

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
