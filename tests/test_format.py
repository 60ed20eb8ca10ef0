"""Behavioural tests for the SentT' seq2seq format (spacy_hyperloader.sentt.format)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from spacy_hyperloader.sentt.format import (
    MAX_WORDS_PER_SEGMENT,
    expand_bio,
    join_segments,
    parse_target,
    plan_segments,
    sentinel,
    simplify_bio,
)

PROPS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

# Entity types: punctuation seen in real tag sets (ATIS, MIT Movie, ...) plus
# arbitrary unicode.  "I" and "O" are excluded: they are rejected by design.
_type_chars = st.one_of(
    st.sampled_from(list(".:/_-")),
    st.sampled_from(list("BIOXabc")),
    st.characters(exclude_categories=("Cs",)),
)
entity_types = st.text(_type_chars, min_size=1, max_size=12).filter(
    lambda t: t not in ("I", "O")
)
# A small pool makes adjacent spans of the same / different type likely.
some_types = st.one_of(
    st.sampled_from(["PER", "LOC", "fromloc.city_name", "art-name", "a/b:c_d", "É-𝔘"]),
    entity_types,
)


@st.composite
def iob2_sequences(draw):
    """Valid IOB2: every I-X directly follows B-X or I-X."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.just(None),
                st.tuples(some_types, st.integers(min_value=1, max_value=4)),
            ),
            max_size=25,
        )
    )
    tags: list[str] = []
    for piece in pieces:
        if piece is None:
            tags.append("O")
        else:
            type_, length = piece
            tags.append(f"B-{type_}")
            tags.extend([f"I-{type_}"] * (length - 1))
    return tags


# Any well-formed tags in any order (IOB1-ish: I-X may start a span).
any_tags = st.lists(
    st.one_of(
        st.just("O"),
        st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BI"), some_types),
    ),
    max_size=30,
)


def is_iob2(tags: list[str]) -> bool:
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            if i == 0 or tags[i - 1] not in (f"B-{tag[2:]}", f"I-{tag[2:]}"):
                return False
    return True


# ---------------------------------------------------------------------------
# sentinel
# ---------------------------------------------------------------------------


def test_sentinel_range():
    assert sentinel(0) == "<extra_id_0>"
    assert sentinel(99) == "<extra_id_99>"
    assert MAX_WORDS_PER_SEGMENT == 99


@pytest.mark.parametrize("bad", [-1, 100, 1000])
def test_sentinel_out_of_range_names_value(bad):
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        sentinel(bad)


# ---------------------------------------------------------------------------
# simplify_bio / expand_bio
# ---------------------------------------------------------------------------

PAPER_WORDS = "show me films with tom hanks".split()
PAPER_TAGS = ["O", "O", "O", "O", "B-Actor", "I-Actor"]


def test_paper_example_exactly():
    labels = simplify_bio(PAPER_TAGS)
    assert labels == ["O", "O", "O", "O", "Actor", "I"]
    target = (
        "<extra_id_0> O <extra_id_1> O <extra_id_2> O <extra_id_3> O "
        "<extra_id_4> Actor <extra_id_5> I <extra_id_6>"
    )
    assert parse_target(target, len(PAPER_WORDS)) == labels
    assert expand_bio(labels) == PAPER_TAGS


def test_simplify_splits_on_first_dash_only():
    tags = ["B-fromloc.city_name", "I-fromloc.city_name", "B-art-name", "I-art-name", "B-a/b:c_d"]
    assert simplify_bio(tags) == ["fromloc.city_name", "I", "art-name", "I", "a/b:c_d"]
    assert expand_bio(simplify_bio(tags)) == tags


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["I-PER"], ["PER"]),  # I at sentence start opens a span
        (["O", "I-PER", "I-PER"], ["O", "PER", "I"]),  # I after O opens a span
        (["B-PER", "I-LOC"], ["PER", "LOC"]),  # I of another type opens a span
        (["I-PER", "I-LOC", "I-LOC"], ["PER", "LOC", "I"]),
        (["B-PER", "B-PER", "I-PER"], ["PER", "PER", "I"]),  # adjacent same-type spans
        (["B-PER", "O", "I-PER"], ["PER", "O", "PER"]),
    ],
)
def test_simplify_reads_stray_i_as_b(tags, expected):
    assert simplify_bio(tags) == expected


def test_expand_hand_example():
    labels = ["I", "X", "I", "O", "I", "Y", "Y", "I", "I", "Z-1", "I"]
    assert expand_bio(labels) == [
        "O", "B-X", "I-X", "O", "O", "B-Y", "B-Y", "I-Y", "I-Y", "B-Z-1", "I-Z-1",
    ]


def test_empty_sequences():
    assert simplify_bio([]) == []
    assert expand_bio([]) == []


@PROPS
@given(iob2_sequences())
def test_iob2_round_trip_is_identity(tags):
    assert expand_bio(simplify_bio(tags)) == tags


@PROPS
@given(any_tags)
@example(["I-PER", "I-PER", "B-PER", "I-LOC", "O", "I-_", "B-_"])
def test_round_trip_preserves_seqeval_spans(tags):
    simple = simplify_bio(tags)
    back = expand_bio(simple)
    assert len(simple) == len(back) == len(tags)
    assert get_entities(back) == get_entities(tags)
    # the result is clean IOB2, and simplification is then stable
    assert is_iob2(back)
    assert simplify_bio(back) == simple


@pytest.mark.parametrize(
    "bad",
    ["X", "B", "I", "", "B-", "I-", "b-PER", "BPER", "S-PER", "E-PER", "B-I", "I-O", " O", "O "],
)
def test_bad_tags_raise_naming_tag_and_position(bad):
    with pytest.raises(ValueError) as info:
        simplify_bio(["O", bad, "O"])
    msg = str(info.value)
    assert repr(bad) in msg
    assert "position 1" in msg


def test_bad_tag_message_says_what_is_expected():
    with pytest.raises(ValueError, match="expected"):
        simplify_bio(["PER"])


def test_non_string_tag_raises_value_error():
    with pytest.raises(ValueError, match="None"):
        simplify_bio(["O", None])  # type: ignore[list-item]


# ---------------------------------------------------------------------------
# parse_target
# ---------------------------------------------------------------------------


def _clean_output(labels):
    """What a well-behaved model writes for ``labels``: the SentT' target as text."""
    return "".join(f"{sentinel(i)} {label} " for i, label in enumerate(labels)) + sentinel(len(labels))

_label_chars = st.one_of(st.sampled_from(list(".:/_-<> ")), st.characters(exclude_categories=("Cs",)))
labels_st = st.one_of(
    st.sampled_from(["O", "I", "Actor", "fromloc.city_name", "NOUN", "PUNCT"]),
    st.text(_label_chars, min_size=1, max_size=10),
).filter(
    lambda s: s == s.strip() and s != ""
    and "<extra_id_" not in s
    and not any(sp in s for sp in ("<pad>", "</s>", "<unk>"))
)


@PROPS
@given(st.lists(labels_st, max_size=MAX_WORDS_PER_SEGMENT))
def test_clean_output_round_trip(labels):
    assert parse_target(_clean_output(labels), len(labels)) == labels


@PROPS
@given(st.lists(st.tuples(some_types, st.booleans()), max_size=40))
def test_full_pipeline_round_trip(spans):
    # tags -> simplified -> target string -> (clean model output) -> tags
    spans = [(t, keep) for t, keep in spans if t == t.strip() and "<" not in t]
    tags = []
    for type_, with_inside in spans:
        tags += [f"B-{type_}"] + ([f"I-{type_}"] if with_inside else []) + ["O"]
    tags = tags[:MAX_WORDS_PER_SEGMENT]
    decoded = "<pad> " + _clean_output(simplify_bio(tags)) + "</s>"
    assert expand_bio(parse_target(decoded, len(tags))) == tags


@pytest.mark.parametrize(
    "text, n, expected",
    [
        # the brief's malformed example: pad prefix, missing spaces, eos suffix
        ("<pad> <extra_id_0> O<extra_id_1> Actor <extra_id_2></s>", 2, ["O", "Actor"]),
        ("<pad> <extra_id_0> O<extra_id_1> Actor <extra_id_2></s>", 3, ["O", "Actor", "O"]),
        # missing sentinel: only its own word is affected
        ("<extra_id_0> A <extra_id_2> B <extra_id_3>", 3, ["A", "O", "B"]),
        # duplicated sentinel: first occurrence wins
        ("<extra_id_0> A <extra_id_0> B <extra_id_1> C", 2, ["A", "C"]),
        # out of order: aligned by number, not position
        ("<extra_id_1> X <extra_id_0> Y <extra_id_2>", 2, ["Y", "X"]),
        # out-of-range sentinel still ends the previous label
        ("<extra_id_0> A <extra_id_7> junk", 1, ["A"]),
        ("<extra_id_0> A <extra_id_99> junk <extra_id_1> B", 2, ["A", "B"]),
        # trailing text after the last sentinel belongs to that word
        ("<extra_id_0> A <extra_id_1> B", 2, ["A", "B"]),
        # text before the first sentinel is ignored
        ("garbage <extra_id_0> A", 1, ["A"]),
        # specials removed anywhere; empty label -> O
        ("<extra_id_0> <unk> <extra_id_1></s><pad><extra_id_2> B</s></s>", 3, ["O", "O", "B"]),
        ("<extra_id_0>  <extra_id_1>", 1, ["O"]),
        ("", 3, ["O", "O", "O"]),
        ("no sentinels at all", 2, ["O", "O"]),
        ("<extra_id_0> A", 0, []),
    ],
)
def test_parse_target_malformed_examples(text, n, expected):
    assert parse_target(text, n) == expected


# (raw text emitted after a sentinel, label it should parse to)
_RAW_LABELS = [
    ("O", "O"), ("Actor", "Actor"), (" I ", "I"), ("", "O"), ("   ", "O"), ("<unk>", "O"),
    ("Actor</s>", "Actor"), ("<pad>B<pad>", "B"), ("fromloc.city_name", "fromloc.city_name"),
]


@PROPS
@given(
    n=st.integers(min_value=0, max_value=20),
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=25), st.sampled_from(_RAW_LABELS), st.sampled_from(["", " ", "  "])),
        max_size=30,
    ),
    prefix=st.sampled_from(["", "<pad>", "<pad> ", "noise "]),
    suffix=st.sampled_from(["", "</s>", " </s>", "</s><pad><pad>"]),
)
def test_parse_target_aligns_by_sentinel_number(n, events, prefix, suffix):
    text = prefix + "".join(f"{sentinel(i)}{sep}{raw}{sep}" for i, (raw, _), sep in events) + suffix
    expected = ["O"] * n
    seen = set()
    for i, (_, clean), _sep in events:
        if i < n and i not in seen:
            seen.add(i)
            expected[i] = clean
    # the suffix belongs to the last event's label; it only holds specials/space
    assert parse_target(text, n) == expected


@pytest.mark.parametrize("bad", [-1, 100])
def test_parse_target_bad_n_words(bad):
    with pytest.raises(ValueError, match=str(bad)):
        parse_target("<extra_id_0> O", bad)


# ---------------------------------------------------------------------------
# plan_segments / join_segments
# ---------------------------------------------------------------------------


def _cost(lengths, r):
    return sum(lengths[i] for i in r) + len(r) + 2


def _check_plan(src, tgt, ranges, max_words, max_src, max_tgt):
    n = len(src)
    flat = [i for r in ranges for i in r]
    assert flat == list(range(n))
    for k, r in enumerate(ranges):
        assert r.step == 1 and len(r) >= 1
        assert len(r) <= max_words
        if len(r) > 1:
            assert _cost(src, r) <= max_src
            assert _cost(tgt, r) <= max_tgt
        if k + 1 < len(ranges):  # greedy: could not have taken the next word
            grown = range(r.start, r.stop + 1)
            assert (
                len(grown) > max_words
                or _cost(src, grown) > max_src
                or _cost(tgt, grown) > max_tgt
            )


_token_len = st.one_of(st.integers(min_value=0, max_value=8), st.integers(min_value=0, max_value=300))


@PROPS
@given(
    pairs=st.lists(st.tuples(_token_len, _token_len), max_size=400),
    max_words=st.integers(min_value=1, max_value=99),
    max_src=st.integers(min_value=3, max_value=200),
    max_tgt=st.integers(min_value=3, max_value=200),
)
def test_plan_segments_properties(pairs, max_words, max_src, max_tgt):
    src = [a for a, _ in pairs]
    tgt = [b for _, b in pairs]
    ranges = plan_segments(src, tgt, max_words=max_words, max_source_tokens=max_src, max_target_tokens=max_tgt)
    _check_plan(src, tgt, ranges, max_words, max_src, max_tgt)


@pytest.mark.parametrize("n", [0, 1, 99, 100, 1000])
def test_plan_segments_sizes_with_defaults(n):
    for length in (0, 1, 3):
        src = [length] * n
        tgt = [1] * n
        ranges = plan_segments(src, tgt)
        _check_plan(src, tgt, ranges, 99, 128, 128)


def test_plan_segments_exact_cuts():
    assert plan_segments([], []) == []
    assert plan_segments([5], [1]) == [range(0, 1)]
    # 99 empty words: 99 + 100 sentinels + eos = 101 source tokens -> one segment
    assert plan_segments([0] * 99, [0] * 99) == [range(0, 99)]
    assert plan_segments([0] * 100, [0] * 100) == [range(0, 99), range(99, 100)]
    # 1-token words: k + (k + 1) + 1 <= 128  ->  k <= 63
    ranges = plan_segments([1] * 1000, [1] * 1000)
    assert [len(r) for r in ranges] == [63] * 15 + [55]
    # the target budget binds on its own
    ranges = plan_segments([0] * 10, [10] * 10, max_target_tokens=50)
    assert [len(r) for r in ranges] == [4, 4, 2]  # 4*10 + 5 + 1 = 46 <= 50 < 57
    assert plan_segments([0] * 10, [0] * 10, max_words=3) == [range(0, 3), range(3, 6), range(6, 9), range(9, 10)]


@pytest.mark.parametrize("side", ["source", "target"])
def test_plan_segments_huge_word_is_alone(side):
    lengths = [1] * 10 + [500] + [1] * 10
    ones = [1] * 21
    src, tgt = (lengths, ones) if side == "source" else (ones, lengths)
    assert plan_segments(src, tgt) == [range(0, 10), range(10, 11), range(11, 21)]
    # two huge words in a row stay separate and nothing is dropped
    assert plan_segments([500, 500], [1, 1]) == [range(0, 1), range(1, 2)]


@pytest.mark.parametrize(
    "kwargs, src, tgt, fragment",
    [
        ({}, [1, 2], [1], "2 and 1"),
        ({"max_words": 0}, [1], [1], "0"),
        ({"max_words": 100}, [1], [1], "100"),
        ({"max_source_tokens": 2}, [1], [1], "max_source_tokens"),
        ({"max_target_tokens": 2}, [1], [1], "max_target_tokens"),
        ({}, [1, -1], [1, 1], "-1"),
        ({}, [1, 1], [1, -7], "-7"),
        ({}, [1.5], [1], "1.5"),
    ],
)
def test_plan_segments_validation(kwargs, src, tgt, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        plan_segments(src, tgt, **kwargs)


@PROPS
@given(st.lists(st.tuples(st.text(max_size=3), st.integers(0, 40)), max_size=300))
def test_segment_then_join_restores_sentence(items):
    labels = [lab for lab, _ in items]
    lengths = [n for _, n in items]
    ranges = plan_segments(lengths, lengths)
    parts = [labels[r.start : r.stop] for r in ranges]
    assert join_segments(parts) == labels


def test_join_segments():
    assert join_segments([]) == []
    assert join_segments([["A", "I"], [], ("O",)]) == ["A", "I", "O"]
