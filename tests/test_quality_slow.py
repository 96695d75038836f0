"""Slow (make test-all): every model beats popularity on MovieLens 100K with its default config."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import recctl_json


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mf", "wide_deep", "attention"])
def test_default_models_beat_pop_on_ml100k(ml100k_dir: Path, tmp_path: Path, model: str):
    result = recctl_json(
        "train", "dataset=ml_100k", f"dataset.root={ml100k_dir}", f"model={model}", cwd=tmp_path, timeout=1200
    )
    test, pop = result["metrics"]["test"], result["baseline"]["pop"]["test"]
    assert test["ndcg@10"] > 1.2 * pop["ndcg@10"], (test["ndcg@10"], pop["ndcg@10"])


@pytest.mark.slow
def test_default_model_reaches_1_5x_pop_on_the_synthetic_default(tmp_path: Path):
    result = recctl_json("train", cwd=tmp_path, timeout=1200)
    assert result["metrics"]["test"]["ndcg@10"] >= 1.5 * result["baseline"]["pop"]["test"]["ndcg@10"]
