"""Smoke tests of the learning diagnostics benchmarks: segments, backbone health, learning probe,
train step. They need ../shared/data and skip, naming it, where it is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "conll2003" / "train.txt").is_file() or not (DATA / "t5_vocab" / "tokenizer.json").is_file(),
    reason=f"corpora not found under {DATA}",
)


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    from spacy_hyperloader.pretraining.backbone_init import init_backbone

    path = tmp_path_factory.mktemp("tiny")
    init_backbone(path, "tiny", vocab=DATA / "t5_vocab" / "tokenizer.json", seed=0, force=True)
    return path


@needs_data
def test_segments_benchmark_reports_both_plans(tmp_path):
    out = run("segments.py", "--output", str(tmp_path / "s.json"))
    results = json.loads((tmp_path / "s.json").read_text())
    assert "ATIS" in out and results["ATIS"]["after_cut_share"] <= results["ATIS"]["before_cut_share"]


@needs_data
def test_backbone_health_and_learning_probe_run(tiny_backbone, tmp_path):
    run("backbone_health.py", str(tiny_backbone), "--sentences", "20", "--output", str(tmp_path / "h.json"))
    health = json.loads((tmp_path / "h.json").read_text())[str(tiny_backbone)]
    assert 0 <= health["probe_tag_accuracy_at_word"] <= 1 and len(health["attention_entropy_per_layer"]) == 2
    run("learning_probe.py", "--backbone", str(tiny_backbone), "--steps", "2", "--every", "1", "--batch-size", "4",
        "--alignment-weight", "1", "--position-bias-scale", "10", "--output", str(tmp_path / "p.json"))
    curve = json.loads((tmp_path / "p.json").read_text())["curve"]
    assert [p["step"] for p in curve] == [0, 1, 2] and all(0 <= p["decoded"] <= 1 for p in curve)
    out = run("train_step.py", "--backbone", str(tiny_backbone), "--batch-size", "4", "--repeats", "1")
    assert "ratio to bare" in out
