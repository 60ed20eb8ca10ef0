"""``python -m spacy_hyperloader convert``: the corpus converters behind the command line."""

from __future__ import annotations

import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_hyperloader.cli import app
from spacy_hyperloader.corpora import FORMATS

MIT_LINES = (
    "show:O me:O films:O with:O tom:B-ACTOR hanks:I-ACTOR <=> <NULL>\n"
    "any:O good:O comedies:B-GENRE <=> <NULL>\n"
    "who:O directed:O star:B-TITLE wars:I-TITLE in:O 1977:B-YEAR <=> <NULL>\n"
    "10:30:B-TIME please:O <=> <NULL>\n"
)


def _flat(output: str) -> str:
    """CLI output with rich's box borders and line wrapping undone."""
    return " ".join(output.replace("\u2502", " ").split())


def _mit_file(tmp_path):
    path = tmp_path / "train"
    path.write_text(MIT_LINES, encoding="utf8")
    return path


def _docs(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def test_convert_prints_summary_last(tmp_path):
    out = tmp_path / "corpus" / "train.spacy"
    result = CliRunner().invoke(app, ["convert", "mit", str(_mit_file(tmp_path)), str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "4 sentences, 17 tokens, 5 entities, 0 chunk spans"
    docs = _docs(out)
    assert [(e.text, e.label_) for e in docs[0].ents] == [("tom hanks", "ACTOR")]
    assert [(e.text, e.label_) for e in docs[3].ents] == [("10:30", "TIME")]  # split on the last colon


def test_convert_fraction_and_seed(tmp_path):
    out = tmp_path / "half.spacy"
    args = ["convert", "mit", str(_mit_file(tmp_path)), str(out), "--fraction", "0.5", "--seed", "1", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("2 sentences, ") and last.endswith("(50% sample of 4 sentences, seed 1)")
    assert len(_docs(out)) == 2


def test_convert_spans_key_moves_entities_to_a_span_group(tmp_path):
    out = tmp_path / "spans.spacy"
    args = ["convert", "mit", str(_mit_file(tmp_path)), str(out), "--spans-key", "mit_movie", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "4 sentences, 17 tokens, 5 entities, 0 chunk spans"
    docs = _docs(out)
    assert all("mit_movie" in doc.spans and not doc.ents for doc in docs)
    assert not docs[0].has_annotation("ENT_IOB")  # entities missing, not "all O"
    assert [(s.text, s.label_) for s in docs[2].spans["mit_movie"]] == [("star wars", "TITLE"), ("1977", "YEAR")]
    one = tmp_path / "one"
    one.write_text("hello:O there:O <=> <NULL>\n", encoding="utf8")
    CliRunner().invoke(app, ["convert", "mit", str(one), str(tmp_path / "one.spacy"), "--spans-key", "k"])
    (doc,) = _docs(tmp_path / "one.spacy")
    assert "k" in doc.spans and len(doc.spans["k"]) == 0  # the key is there even with no spans


def test_convert_help_lists_formats():
    result = CliRunner().invoke(app, ["convert", "--help"])
    assert result.exit_code == 0
    text = _flat(result.output)
    for name, spec in FORMATS.items():
        assert f"{name}:" in text
    assert "MIT Movie/Restaurant" in text


def test_convert_errors_are_clean(tmp_path):
    runner = CliRunner()
    mit = str(_mit_file(tmp_path))
    bad = tmp_path / "bad"
    bad.write_text("show me films\n", encoding="utf8")
    cases = [
        (["nope", mit], "unknown corpus format 'nope'; known formats: conll2003"),
        (["mit", str(tmp_path / "missing")], "missing does not exist"),
        (["seq", mit], "is not a directory"),
        (["mit", mit, "--fraction", "0"], "fraction must be a number in (0, 1]"),
        (["mit", mit, "--fraction", "1.5"], "fraction must be a number in (0, 1]"),
        (["mit", str(bad)], "is not valid mit input"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, ["convert", *args[:2], str(tmp_path / "out.spacy"), *args[2:]])
        assert result.exit_code != 0, result.output
        assert expected in _flat(result.output), result.output
        assert isinstance(result.exception, SystemExit)  # a message, no traceback
        assert "Traceback" not in result.output
    assert not (tmp_path / "out.spacy").exists()
