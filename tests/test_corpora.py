"""Corpus converters: hand-made samples of every format, fraction subsets, errors, and slices
of the real corpora in ``../shared/data`` (skipped when absent)."""

from __future__ import annotations

import gzip
import itertools
import lzma
import math
import random
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_hyperloader.corpora import (
    FORMATS,
    PTB_TO_UD,
    ConversionStats,
    CorpusFormatError,
    convert,
    iob_spans,
    ptb_to_ud,
)
from spacy_hyperloader.annotation.ptb_to_ud import UD_POS_TAGS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def run(nlp, fmt, path, out_dir, **kwargs):
    """Convert, read the DocBin back, and return (docs, stats)."""
    out = out_dir / "out" / "corpus.spacy"
    stats = convert(fmt, path, out, **kwargs)
    docs = list(DocBin().from_disk(out).get_docs(nlp.vocab))
    assert len(docs) == stats.sentences
    assert sum(len(d) for d in docs) == stats.tokens
    return docs, stats


def words(doc):
    return [t.text for t in doc]


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def chunks(doc):
    return [(s.text, s.label_) for s in doc.spans["chunks"]]


# ---------------------------------------------------------------- IOB decoding


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        # IOB1-ish: an I-X after O, or after a span of another type, starts a new span
        (["I-PER", "I-PER", "O", "I-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["B-PER", "I-LOC", "I-LOC"], [(0, 1, "PER"), (1, 3, "LOC")]),
        # B-X always starts a new span, even after X
        (["B-PER", "B-PER", "I-PER"], [(0, 1, "PER"), (1, 3, "PER")]),
        # bare types (IO): consecutive tokens of one type form one span
        (
            ["datetime", "datetime", "O", "location", "datetime"],
            [(0, 2, "datetime"), (3, 4, "location"), (4, 5, "datetime")],
        ),
        # types with dots, underscores, slashes and dashes are kept verbatim
        (
            ["B-fromloc.city_name", "I-fromloc.city_name", "B-round_trip"],
            [(0, 2, "fromloc.city_name"), (2, 3, "round_trip")],
        ),
        (["B-weather/noun", "I-weather/noun", "B-X-Y"], [(0, 2, "weather/noun"), (2, 3, "X-Y")]),
        # BIOES / BILUO
        (["S-A", "B-A", "E-A", "U-B", "B-C", "L-C"], [(0, 1, "A"), (1, 3, "A"), (3, 4, "B"), (4, 6, "C")]),
        ([], []),
        (["O", "O"], []),
    ],
)
def test_iob_spans(tags, spans):
    assert iob_spans(tags) == (spans, 0)


def test_iob_spans_counts_typeless_tags_as_invalid():
    assert iob_spans(["B-", "I-A", "I-"]) == ([(1, 2, "A")], 2)


# ---------------------------------------------------------------- PTB -> UD


def test_ptb_to_ud_covers_the_penn_treebank_and_extras():
    ptb45 = (
        "CC CD DT EX FW IN JJ JJR JJS LS MD NN NNS NNP NNPS PDT POS PRP PRP$ RB RBR RBS RP SYM TO "
        "UH VB VBD VBG VBN VBP VBZ WDT WP WP$ WRB # $ . , : `` '' -LRB- -RRB-"
    ).split()
    assert len(ptb45) == 45
    extras = ["HYPH", "NFP", "ADD", "AFX", "XX", "_SP", '"', "(", ")"]
    for tag in ptb45 + extras:
        assert tag in PTB_TO_UD, tag
    assert set(PTB_TO_UD.values()) <= UD_POS_TAGS
    assert {t: ptb_to_ud(t) for t in ["NN", "NNP", "MD", "PRP$", "IN", "-LRB-", "(", '"', "_SP"]} == {
        "NN": "NOUN", "NNP": "PROPN", "MD": "AUX", "PRP$": "PRON", "IN": "ADP",
        "-LRB-": "PUNCT", "(": "PUNCT", '"': "PUNCT", "_SP": "SPACE",
    }
    assert ptb_to_ud("NN|SYM") == "NOUN"  # CoNLL-2003: first alternative
    assert ptb_to_ud("VERB") == "VERB"  # already UPOS (OntoNotes has a few)
    assert ptb_to_ud("*") == "X"
    assert ptb_to_ud("NOT-A-TAG") == "X"


# ---------------------------------------------------------------- formats

CONLL2003 = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
( ( O O
UK NNP I-NP I-LOC
) ) O O
Smith NNP B-NP B-PER
London NNP I-NP I-LOC
\t
""" + """\
-DOCSTART- -X- -X- O
Result NN|SYM B-NP O
" " O O
-DOCSTART- -X- -X- O
Bye UH B-INTJ O"""  # a -DOCSTART- right after a token line still ends the sentence; no final newline


def test_conll2003(nlp, tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL2003, encoding="utf-8")
    docs, stats = run(nlp, "conll2003", path, tmp_path)
    assert [words(d) for d in docs] == [
        ["EU", "rejects", "German", "call", "."],
        ["Peter", "Blackburn", "(", "UK", ")", "Smith", "London"],
        ["Result", '"'],
        ["Bye"],
    ]
    first = docs[0]
    assert [t.tag_ for t in first] == ["NNP", "VBZ", "JJ", "NN", "."]
    assert [t.pos_ for t in first] == ["PROPN", "VERB", "ADJ", "NOUN", "PUNCT"]
    assert ents(first) == [("EU", "ORG"), ("German", "MISC")]
    assert chunks(first) == [("EU", "NP"), ("rejects", "VP"), ("German call", "NP")]
    assert first.text == "EU rejects German call ."
    second = docs[1]
    # IOB1-ish starts: I-PER after O starts PER; I-LOC after a PER span starts LOC
    assert ents(second) == [("Peter Blackburn", "PER"), ("UK", "LOC"), ("Smith", "PER"), ("London", "LOC")]
    assert chunks(second) == [("Peter Blackburn", "NP"), ("UK", "NP"), ("Smith London", "NP")]
    assert [t.pos_ for t in second][2:5] == ["PUNCT", "PROPN", "PUNCT"]
    third = docs[2]
    assert [t.tag_ for t in third] == ["NN|SYM", '"']
    assert [t.pos_ for t in third] == ["NOUN", "PUNCT"]
    assert ents(third) == []
    assert third.has_annotation("ENT_IOB")  # all-O sentences are annotated as O, not missing
    assert [t.ent_iob_ for t in third] == ["O", "O"]
    assert chunks(docs[3]) == [("Bye", "INTJ")]
    assert (stats.sentences, stats.tokens, stats.entities, stats.spans) == (4, 15, 6, 8)
    assert stats.documents == 3
    assert stats.entity_labels == {"ORG": 1, "MISC": 1, "PER": 2, "LOC": 2}
    assert stats.summary() == "4 sentences, 15 tokens, 6 entities, 8 chunk spans"
    assert docs[1].user_data["corpus"] == {"format": "conll2003", "file": "train.txt", "index": 1}


CONLL2000 = """\
Confidence NN B-NP
in IN B-PP
the DT B-NP
pound NN I-NP
`` `` O
widely RB B-ADVP
if IN B-SBAR
# # B-NP
. . O

He PRP B-NP
is VBZ B-VP
n't RB I-VP
. . O
"""


def test_conll2000_gzipped(nlp, tmp_path):
    path = tmp_path / "train.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(CONLL2000)
    docs, stats = run(nlp, "conll2000", path, tmp_path)
    assert [words(d) for d in docs] == [
        ["Confidence", "in", "the", "pound", "``", "widely", "if", "#", "."],
        ["He", "is", "n't", "."],
    ]
    assert [t.tag_ for t in docs[0]] == ["NN", "IN", "DT", "NN", "``", "RB", "IN", "#", "."]
    assert [t.pos_ for t in docs[0]] == ["NOUN", "ADP", "DET", "NOUN", "PUNCT", "ADV", "ADP", "SYM", "PUNCT"]
    assert chunks(docs[0]) == [
        ("Confidence", "NP"), ("in", "PP"), ("the pound", "NP"), ("widely", "ADVP"), ("if", "SBAR"), ("#", "NP"),
    ]
    assert chunks(docs[1]) == [("He", "NP"), ("is n't", "VP")]
    # no NER in CoNLL-2000: entities stay unannotated (missing), not "all O"
    assert not any(d.has_annotation("ENT_IOB") for d in docs)
    assert stats.summary() == "2 sentences, 13 tokens, 0 entities, 8 chunk spans"


CONLLU = """\
# newdoc id = weblog-1
# sent_id = s1
# text = I don't know.
1\tI\tI\tPRON\tPRP\tCase=Nom\t4\tnsubj\t_\tEntity=B-PER
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
4.1\tknows\tknow\tVERB\tVBZ\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = s2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_

"""


def test_conllu(nlp, tmp_path):
    path = tmp_path / "en_ewt-ud-dev.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    docs, stats = run(nlp, "conllu", path, tmp_path)
    assert [words(d) for d in docs] == [["I", "do", "n't", "know", "."], ["Hi"]]
    assert [t.pos_ for t in docs[0]] == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert [t.tag_ for t in docs[0]] == ["PRP", "VBP", "RB", "VB", "."]
    assert [t.pos_ for t in docs[1]] == ["INTJ"]
    for doc in docs:  # nothing but words, tags and POS
        assert not doc.has_annotation("ENT_IOB")
        assert not doc.has_annotation("DEP")
        assert not doc.has_annotation("LEMMA")
        assert not doc.has_annotation("MORPH")
        assert len(doc.spans) == 0
    assert docs[0].user_data["sent_id"] == "s1"
    assert stats.skipped_lines == {"multi-word token lines": 1, "empty nodes": 1}
    assert stats.summary() == "2 sentences, 6 tokens, 0 entities, 0 chunk spans"


ONTONOTES = (
    "-DOCSTART-\t-X-\tO\t(bc/cctv/00/cctv_0001); part 000\n"
    "\n"
    "Across\tNNP\tB-ORG\n"
    "China\tNNP\tI-ORG\n"
    "on\tIN\tO\n"
    "September\tNNP\tB-DATE\n"
    "\tNN\tO\n"  # a blank word: skipped and counted
    "3rd\tJJ\tI-DATE\n"
    "-LRB-\t-LRB-\tO\n"
    "\n"
    "Engrave\tVERB\tO\n"
    "it\tPRP\tO\n"
    "XX\t*\tO\n"
    "\n"
)


def test_ontonotes_xz(nlp, tmp_path):
    path = tmp_path / "onto.train.ner.xz"
    path.write_bytes(lzma.compress(ONTONOTES.encode("utf-8")))
    docs, stats = run(nlp, "ontonotes", path, tmp_path)
    assert [words(d) for d in docs] == [
        ["Across", "China", "on", "September", "3rd", "-LRB-"],
        ["Engrave", "it", "XX"],
    ]
    assert [t.tag_ for t in docs[0]] == ["NNP", "NNP", "IN", "NNP", "JJ", "-LRB-"]
    assert [t.pos_ for t in docs[0]] == ["PROPN", "PROPN", "ADP", "PROPN", "ADJ", "PUNCT"]
    assert ents(docs[0]) == [("Across China", "ORG"), ("September 3rd", "DATE")]
    assert [t.pos_ for t in docs[1]] == ["VERB", "PRON", "X"]
    assert ents(docs[1]) == [] and docs[1].has_annotation("ENT_IOB")
    assert "chunks" not in docs[0].spans
    assert stats.blank_tokens == 1
    assert stats.unmapped_pos == {"*": 1}
    assert stats.documents == 1
    assert stats.summary() == "2 sentences, 9 tokens, 2 entities, 0 chunk spans (1 blank tokens skipped)"


MIT = (
    "what:O 1968:B-Year british:B-Genre horror:I-Genre film:O <=> <NULL>\r\n"
    "olive:B-Restaurant_Name garden:I-Restaurant_Name at:O 12:30:B-Hours pm:I-Hours <=> <NULL>\r\n"
    "any:O valet:I-Amenity parking:I-Amenity ::O http://x.y:B-Other\r\n"  # IOB1 start; no <=>
)


def test_mit(nlp, tmp_path):
    path = tmp_path / "train"
    path.write_bytes(MIT.encode("utf-8"))
    docs, stats = run(nlp, "mit", path, tmp_path)
    assert [words(d) for d in docs] == [
        ["what", "1968", "british", "horror", "film"],
        ["olive", "garden", "at", "12:30", "pm"],
        ["any", "valet", "parking", ":", "http://x.y"],
    ]
    assert ents(docs[0]) == [("1968", "Year"), ("british horror", "Genre")]
    assert ents(docs[1]) == [("olive garden", "Restaurant_Name"), ("12:30 pm", "Hours")]
    assert ents(docs[2]) == [("valet parking", "Amenity"), ("http://x.y", "Other")]
    assert not any(t.tag_ or t.pos_ for d in docs for t in d)
    assert stats.summary() == "3 sentences, 15 tokens, 6 entities, 0 chunk spans"


def make_seq_dir(root: Path, lines_in: str, lines_out: str, labels: str | None = None) -> Path:
    split = root / "atis" / "train"
    split.mkdir(parents=True)
    (split / "seq.in").write_text(lines_in, encoding="utf-8")
    (split / "seq.out").write_text(lines_out, encoding="utf-8")
    if labels is not None:
        (split / "label").write_text(labels, encoding="utf-8")
    return split


def test_seq(nlp, tmp_path):
    split = make_seq_dir(
        tmp_path,
        "i want to fly from baltimore to dallas round trip\nplay  some jazz \n",
        "O O O O O B-fromloc.city_name O B-toloc.city_name B-round_trip I-round_trip\nO O I-music_item\n",
        "atis_flight\nPlayMusic\n",
    )
    docs, stats = run(nlp, "seq", split, tmp_path)
    assert [words(d) for d in docs] == [
        "i want to fly from baltimore to dallas round trip".split(),
        ["play", "some", "jazz"],
    ]
    assert ents(docs[0]) == [
        ("baltimore", "fromloc.city_name"), ("dallas", "toloc.city_name"), ("round trip", "round_trip"),
    ]
    assert ents(docs[1]) == [("jazz", "music_item")]
    assert [d.user_data["intent"] for d in docs] == ["atis_flight", "PlayMusic"]
    assert docs[0].user_data["corpus"] == {"format": "seq", "file": "atis/train", "index": 0}
    assert stats.summary() == "2 sentences, 13 tokens, 4 entities, 0 chunk spans"


def test_seq_misaligned_and_missing_files(tmp_path):
    split = make_seq_dir(tmp_path, "a b c\n", "O O\n")
    with pytest.raises(CorpusFormatError, match="3 words but seq.out line 1 has 2 tags"):
        convert("seq", split, tmp_path / "x.spacy")
    (split / "seq.out").unlink()
    with pytest.raises(FileNotFoundError, match=r"seq\.out.*seq\.in"):
        convert("seq", split, tmp_path / "x.spacy")
    with pytest.raises(FileNotFoundError, match="split directory"):
        convert("seq", split / "seq.in", tmp_path / "x.spacy")


MTOD = """\
# text: set an alarm for Sunday @ 8
# intent: alarm/set_alarm
# slots: 16:22:datetime,25:26:datetime
1\tset\talarm/set_alarm\tNoLabel
2\tan\talarm/set_alarm\tNoLabel
3\talarm\talarm/set_alarm\tNoLabel
4\tfor\talarm/set_alarm\tB-datetime
5\tsunday\talarm/set_alarm\tI-datetime
6\t@\talarm/set_alarm\tNoLabel
7\t8\talarm/set_alarm\tI-datetime

# text: rain in half moon bay tomorrow
# intent: weather/find
# slots: 0:4:weather/attribute,8:20:location,21:29:datetime
1\train\tweather/find\tweather/attribute
2\tin\tweather/find\tNoLabel
3\thalf\tweather/find\tlocation
4\tmoon\tweather/find\tlocation
5\tbay\tweather/find\tlocation
6\ttomorrow\tweather/find\tdatetime
"""


def test_mtod(nlp, tmp_path):
    path = tmp_path / "train-en.conllu"
    path.write_text(MTOD, encoding="utf-8")
    docs, stats = run(nlp, "mtod", path, tmp_path)
    assert [words(d) for d in docs] == [
        ["set", "an", "alarm", "for", "sunday", "@", "8"],
        ["rain", "in", "half", "moon", "bay", "tomorrow"],
    ]
    # explicit B-/I- (with an IOB1-style I- start after NoLabel)
    assert ents(docs[0]) == [("for sunday", "datetime"), ("8", "datetime")]
    # bare types (IO): consecutive tokens of one type form one span
    assert ents(docs[1]) == [("rain", "weather/attribute"), ("half moon bay", "location"), ("tomorrow", "datetime")]
    assert [d.user_data["intent"] for d in docs] == ["alarm/set_alarm", "weather/find"]
    assert docs[0].user_data["original_text"] == "set an alarm for Sunday @ 8"
    assert stats.summary() == "2 sentences, 13 tokens, 5 entities, 0 chunk spans"


# ---------------------------------------------------------------- fraction, errors, output


@pytest.fixture
def twenty_sentences(tmp_path):
    path = tmp_path / "mit.txt"
    path.write_text("".join(f"w{i}:O x{i}:B-T <=> <NULL>\n" for i in range(20)), encoding="utf-8")
    return path


def kept_indices(docs):
    return [d.user_data["corpus"]["index"] for d in docs]


def test_fraction_is_a_seeded_ordered_subset(nlp, tmp_path, twenty_sentences):
    docs, stats = run(nlp, "mit", twenty_sentences, tmp_path / "a", fraction=0.25, seed=3)
    kept = kept_indices(docs)
    assert kept == sorted(random.Random(3).sample(range(20), 5))
    assert [words(d)[0] for d in docs] == [f"w{i}" for i in kept]
    assert (stats.sentences, stats.source_sentences, stats.tokens) == (5, 20, 10)
    assert stats.summary() == "5 sentences, 10 tokens, 5 entities, 0 chunk spans (25% sample of 20 sentences, seed 3)"
    again, _ = run(nlp, "mit", twenty_sentences, tmp_path / "b", fraction=0.25, seed=3)
    assert kept_indices(again) == kept
    other = {
        tuple(kept_indices(run(nlp, "mit", twenty_sentences, tmp_path / f"s{s}", fraction=0.25, seed=s)[0]))
        for s in range(4)
    }
    assert len(other) > 1  # the seed matters


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 10), (0.1, 2), (0.01, 1), (1.0, 20), (1, 20)])
def test_fraction_size(nlp, tmp_path, twenty_sentences, fraction, expected):
    docs, stats = run(nlp, "mit", twenty_sentences, tmp_path, fraction=fraction)
    assert len(docs) == stats.sentences == expected


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, math.nan, math.inf, True, "0.5", None])
def test_bad_fraction(tmp_path, twenty_sentences, fraction):
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]") as err:
        convert("mit", twenty_sentences, tmp_path / "x.spacy", fraction=fraction)
    assert repr(fraction) in str(err.value)
    assert not (tmp_path / "x.spacy").exists()


def test_unknown_format_lists_the_known_ones(tmp_path, twenty_sentences):
    with pytest.raises(ValueError, match="unknown corpus format 'conll2002'") as err:
        convert("conll2002", twenty_sentences, tmp_path / "x.spacy")
    for name in FORMATS:
        assert name in str(err.value)
    assert set(FORMATS) == {"conll2003", "conll2000", "conllu", "ontonotes", "mit", "seq", "mtod"}


def test_missing_input(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist.*CoNLL-2003 file"):
        convert("conll2003", missing, tmp_path / "x.spacy")
    with pytest.raises(FileNotFoundError, match=r"is not a file.*CoNLL-U file"):
        convert("conllu", tmp_path, tmp_path / "x.spacy")
    with pytest.raises(FileNotFoundError, match="seq.in and seq.out"):
        convert("seq", missing, tmp_path / "x.spacy")


def test_malformed_input_and_empty_input(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU NNP B-ORG\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"bad\.txt:1: expected 4 columns"):
        convert("conll2003", bad, tmp_path / "x.spacy")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n-DOCSTART- -X- -X- O\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentences found"):
        convert("conll2003", empty, tmp_path / "x.spacy")


def test_output_parents_are_created_and_progress_runs(nlp, tmp_path, twenty_sentences, capsys):
    out = tmp_path / "deep" / "er" / "train.spacy"
    stats = convert("mit", twenty_sentences, out, progress=True, lang="en")
    assert out.is_file() and stats.output_path == str(out)
    assert isinstance(stats, ConversionStats)
    assert "mit.txt" in capsys.readouterr().err  # the tqdm bar's description


# ---------------------------------------------------------------- slices of the real corpora


def _slice_lines(src: Path, n_lines: int, *, until_blank: bool) -> list[str]:
    opener = gzip.open if src.suffix == ".gz" else lzma.open if src.suffix == ".xz" else open
    with opener(src, "rt", encoding="utf-8", newline="") as fh:
        lines = list(itertools.islice(fh, n_lines))
        if until_blank:  # finish the sentence in progress
            for line in fh:
                lines.append(line)
                if not line.strip():
                    break
    return lines


def _write_like(src: Path, dst: Path, lines: list[str]) -> Path:
    data = "".join(lines).encode("utf-8")
    if src.suffix == ".gz":
        data = gzip.compress(data)
    elif src.suffix == ".xz":
        data = lzma.compress(data)
    dst.write_bytes(data)
    return dst


def _blocks_with_tokens(lines: list[str], is_token) -> int:
    """Blank-line separated groups that contain at least one token line."""
    count, in_block = 0, False
    for line in lines:
        if not line.strip():
            in_block = False
        elif is_token(line) and not in_block:
            count, in_block = count + 1, True
    return count


CONLL_TOKEN = lambda line: not line.startswith("-DOCSTART-")  # noqa: E731
CONLLU_TOKEN = lambda line: line.split("\t")[0].isdigit()  # noqa: E731

# (id, format, path under shared/data, slice kind, entity labels that may occur, has chunks, has pos)
REAL = [
    ("conll2003", "conll2003", "conll2003/train.txt", "columns", {"PER", "LOC", "ORG", "MISC"}, True, True),
    ("conll2000", "conll2000", "conll2000/train.txt", "columns", None, True, True),
    ("ud_ewt", "conllu", "ud_english_ewt/en_ewt-ud-train.conllu.gz", "conllu", None, False, True),
    ("ontonotes", "ontonotes", "ontonotes5/onto.train.ner.xz", "columns", None, False, True),
    ("mit_movie_trivia", "mit", "paper/mit_movie_trivia/train", "lines", None, False, False),
    ("mit_movie", "mit", "paper/mit_movie/train", "lines", None, False, False),
    ("mit_restaurant", "mit", "paper/mit_restaurant/train", "lines", None, False, False),
    ("atis", "seq", "paper/atis/train", "seq", None, False, False),
    ("snips", "seq", "paper/snips/train", "seq", None, False, False),
    ("mtod", "mtod", "paper/mtod/train-en.conllu", "conllu", None, False, False),
]


@pytest.mark.parametrize(
    ("fmt", "rel", "kind", "labels", "has_chunks", "has_pos"), [r[1:] for r in REAL], ids=[r[0] for r in REAL]
)
def test_real_corpus_slice(nlp, tmp_path, fmt, rel, kind, labels, has_chunks, has_pos):
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not found: corpus slice tests need the shared corpora")
    src = SHARED_DATA / rel
    if kind == "seq":
        split = tmp_path / src.parent.name / src.name
        split.mkdir(parents=True)
        for name in ("seq.in", "seq.out", "label"):
            _write_like(src / name, split / name, _slice_lines(src / name, 40, until_blank=False))
        target, expected = split, 40
    elif kind == "lines":
        target = _write_like(src, tmp_path / src.name, _slice_lines(src, 40, until_blank=False))
        expected = 40
    else:
        lines = _slice_lines(src, 200, until_blank=True)
        target = _write_like(src, tmp_path / src.name, lines)
        expected = _blocks_with_tokens(lines, CONLL_TOKEN if kind == "columns" else CONLLU_TOKEN)
    assert expected > 5
    docs, stats = run(nlp, fmt, target, tmp_path)
    assert stats.sentences == expected
    assert all(len(d) > 0 and all(t.text.strip() for t in d) for d in docs)
    assert stats.blank_tokens == stats.empty_sentences == stats.invalid_tags == stats.dropped_entities == 0
    has_ents = fmt not in ("conll2000", "conllu")
    if has_ents:
        assert stats.entities > 0 and all(d.has_annotation("ENT_IOB") for d in docs)
        if labels is not None:
            assert set(stats.entity_labels) <= labels
    else:
        assert stats.entities == 0
    if has_chunks:
        assert stats.spans > 0 and {"NP", "VP"} <= set(stats.span_labels)
    if has_pos:
        assert all(t.tag_ and t.pos_ in UD_POS_TAGS for d in docs for t in d)
    if fmt in ("seq", "mtod"):
        assert all(d.user_data.get("intent") for d in docs)
