"""Smoke tests of the accuracy benchmarks (benchmarks/accuracy_*.py): one tiny run each.

They read the corpora in ../shared/data and skip, naming what is missing, where it is absent.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--random-shape", "tiny", "--steps", "2", "--limit", "4", "--batch-size", "8", "--threads", "1",
        "--log-every", "0"]


@pytest.fixture
def load_benchmark(monkeypatch):
    """Import a benchmark script as a module; torch's thread count is restored afterwards."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads = torch.get_num_threads()

    def load(name: str):
        module = importlib.import_module(name)
        common = importlib.import_module("_common")
        missing = [str(common.DEFAULT_DATA / p) for p in required(module) if not (common.DEFAULT_DATA / p).exists()]
        if missing:
            pytest.skip(f"corpora not found: {', '.join(missing)}")
        return module

    yield load
    torch.set_num_threads(threads)


def required(module) -> list[str]:
    return ["t5_vocab/tokenizer.json", *(p for spec in module.TASKS.values() for p in spec[1:3])]


def is_score(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


def test_accuracy_paper_smoke(load_benchmark, tmp_path):
    paper = load_benchmark("accuracy_paper")
    output = tmp_path / "paper.json"
    paper.main([*TINY, "--fractions", "1.0,0.1", "--output", str(output)])
    data = json.loads(output.read_text(encoding="utf8"))
    assert set(data["results"]) == set(paper.SYSTEMS)
    for system, by_fraction in data["results"].items():
        assert set(by_fraction) == {"1.0", "0.1"}, system
        for fraction, result in by_fraction.items():
            assert set(result["tasks"]) == set(paper.TASKS), (system, fraction)
            for task, scores in result["tasks"].items():
                assert is_score(scores["f"]), (system, fraction, task, scores)
                assert scores["test_sentences"] == 4 and scores["train_sentences"] == 4
            assert is_score(result["average_f"])
            assert all(run["steps"] == 2 for run in result["runs"].values())
    assert len(data["results"]["single_task"]["1.0"]["runs"]) == 6  # one model per task
    assert data["settings"]["train_backbone"] is True and data["settings"]["restrict_vocabulary"] is True


def test_accuracy_spacy_smoke(load_benchmark, tmp_path):
    spacy_benchmark = load_benchmark("accuracy_spacy")
    output = tmp_path / "spacy.json"
    spacy_benchmark.main([*TINY, "--output", str(output)])
    data = json.loads(output.read_text(encoding="utf8"))
    assert set(data["tasks"]) == {"ner", "upos", "chunk"}
    for task, row in data["tasks"].items():
        assert is_score(row["score"]), (task, row)
        assert row["test_sentences"] == 4 and row["train_sentences"] == 4 and row["labels"] > 0
    assert data["tasks"]["upos"]["score_key"] == "pos_acc"
    assert is_score(data["tasks"]["chunk"]["np_f"])
    assert data["steps"] == 2 and data["train_wall_s"] > 0 and data["train_cpu_s"] > 0
    assert data["settings"]["dropout"] == 0.1 and data["settings"]["position_bias_scale"] == 1.0
    if "skipped" in data["peer"]:  # en_core_web_sm not installed: a note, no peer figures
        assert all(row["peer"] is None for row in data["tasks"].values())
    else:  # scored on the same test docs
        peer = {task: row["peer"] for task, row in data["tasks"].items()}
        assert is_score(peer["ner"]["score"]) and is_score(peer["upos"]["score"]) and is_score(peer["chunk"]["np_f"])
