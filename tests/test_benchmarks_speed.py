"""Smoke tests of benchmarks/speed.py, both modes: a tiny random pipeline on a few sentences, no shared data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def load_speed_module():
    spec = importlib.util.spec_from_file_location("benchmarks_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conll_file(speed, tmp_path: Path) -> Path:
    """A CoNLL-2003 file of the built-in sentences, with a -DOCSTART- line the reader must skip."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in speed.BUILTIN_SENTENCES:
        lines += [f"{word} NN B-NP {'B-LOC' if word[0].isupper() else 'O'}" for word in sentence.split()] + [""]
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lines), encoding="utf8")
    return text


def test_speed_benchmark_runs_fast_naive_and_sm(tmp_path):
    speed = load_speed_module()
    text = conll_file(speed, tmp_path)
    out = tmp_path / "speed.json"
    limit = 6  # the naive path generates 40 tokens a row (not 128) to keep the test short

    speed.main([
        "--random", "tiny", "--vocab", "train", "--text", str(text), "--limit", str(limit),
        "--warmup", "1", "--threads", "1", "--max-target-tokens", "40",
        "--tasks", "ner", "--tasks", "ner,tag,chunk", "--output", str(out),
    ])

    report = json.loads(out.read_text(encoding="utf8"))
    words = sum(len(s.split()) for s in speed.BUILTIN_SENTENCES[:limit])
    assert report["sentences"] == limit and report["words"] == words
    assert [row["tasks"] for row in report["task_sets"]] == [["ner"], ["ner", "tag", "chunk"]]
    for row in report["task_sets"]:
        for path in ("fast", "naive"):
            figures = row[path]
            assert figures["words_per_s"] > 0 and figures["seconds"] > 0
            assert figures["peak_rss_increase_mib"] >= 0
            # every doc got every task's annotation
            assert figures["annotated_docs"] == {task: limit for task in row["tasks"]}
        assert row["naive"]["rows"] == limit * len(row["tasks"])
        assert 0 < row["naive"]["mean_new_tokens_per_row"] <= 40
        assert row["speedup"] > 0
        for key in ("words_per_second", "limit_words_per_second", "sequential_words_per_second", "naive_words_per_second"):
            assert row[key] > 0
        assert row["identical"] is True  # draft-and-verify gives the sequential decoder's labels
        assert set(row["decoder_passes_per_segment"]) == set(row["tasks"])
        assert all(p["draft"] > 0 and p["sequential"] > 0 for p in row["decoder_passes_per_segment"].values())
    sm = report["en_core_web_sm"]
    assert sm.get("skipped") == "en_core_web_sm not installed, skipped" or (
        sm["words_per_s"] > 0 and sm["annotated_docs"] == limit
    )
    assert any("random weights" in caveat for caveat in report["caveats"])


def test_speed_benchmark_decoding_mode(tmp_path):
    speed = load_speed_module()
    out = tmp_path / "decoding.json"
    speed.main([
        "--mode", "decoding", "--random", "tiny", "--vocab", "train", "--text", str(conll_file(speed, tmp_path)),
        "--limit", "3", "--batch-size", "2", "--repeats", "1", "--threads", "1", "--output", str(out),
    ])

    report = json.loads(out.read_text(encoding="utf8"))
    # three of the four built-in sentences of 15-30 words, sampled
    assert report["task"] == "ner" and report["sentences"] == 3 and report["batch_size"] == 2
    assert set(report["label_tokens"]) == {"LOC", "MISC", "ORG", "PER", "I", "O"}
    assert report["constrained_words_per_s"] > 0 and report["unconstrained_words_per_s"] > 0
    assert report["speedup"] > 0
