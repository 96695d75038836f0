"""Wide & Deep's CTR task: labelled rows (rating >= threshold), pointwise training, AUC and logloss."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, recctl, recctl_json

CTR = ["model=wide_deep", "model.task=ctr", "dataset.label_threshold=4", "dataset.split=random"]


def test_ctr_task_trains_and_reports_auc_and_logloss(tmp_path: Path):
    result = recctl_json(
        "train", *CTR, *TINY, "trainer.epochs=3", "optimizer.learning_rate=0.005", cwd=tmp_path
    )
    test, pop = result["metrics"]["test"], result["baseline"]["pop"]["test"]
    assert set(test) == {"auc", "logloss"} and set(pop) == {"auc"}
    assert test["auc"] > 0.6 and test["auc"] > pop["auc"]
    assert 0 < test["logloss"] < 0.69  # better than a coin
    assert result["protocol"].startswith("CTR: label = rating >= 4")


@pytest.mark.slow  # CI time: test_bad_inputs.py's ctr-without-labels row checks the same, in process
def test_ctr_without_labels_is_a_config_error(tmp_path: Path):
    proc = recctl("train", "model=wide_deep", "model.task=ctr", cwd=tmp_path)
    assert proc.returncode == 2 and "dataset.label_threshold" in proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_ctr_bar_on_ml100k(ml100k_dir: Path, tmp_path: Path):
    result = recctl_json(
        "train", "experiment=ml100k_ctr", f"dataset.root={ml100k_dir}", cwd=tmp_path, timeout=1200
    )
    assert result["metrics"]["test"]["auc"] >= 0.7830  # RecBole 1.2.1 WideDeep on the same task
