"""The rating task (model.task=rating, issue #16): regression on the rating, RMSE/MAE (lower is
better), the regularised bias baseline, and everything that follows the direction: early stopping,
the gate, the lift, the sweep's order and Optuna's direction."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import TINY, recctl_json  # noqa: E402

from recctl.config import GateConfig, sweep_direction  # noqa: E402
from recctl.errors import GateFailed  # noqa: E402
from recctl.evaluation.gate import check_gate  # noqa: E402
from recctl.evaluation.metrics import rating_errors  # noqa: E402
from recctl.evaluation.tables import metrics_table  # noqa: E402
from recctl.models.bias import BiasBaseline, fit_biases  # noqa: E402

RATING = ["model=mf", "model.task=rating", "model.loss=mse", "dataset.split=random"]


def test_rmse_and_mae_against_numpy():
    rng = np.random.default_rng(0)
    ratings = rng.integers(1, 6, 1000).astype(np.float32)
    predictions = ratings + rng.normal(0, 0.7, 1000).astype(np.float32)
    got = rating_errors(ratings, predictions)
    error = predictions.astype(np.float64) - ratings
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-12)
    assert got["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-12)
    assert rating_errors(ratings, ratings) == {"rmse": 0.0, "mae": 0.0}
    assert rating_errors(np.array([]), np.array([])) == {}


def test_bias_model_fits_an_additive_matrix_exactly_without_shrinkage():
    # r(u, i) = 3 + a_u + b_i on a complete 3 x 4 matrix: ALS without shrinkage recovers it
    a, b = np.array([0.5, -1.0, 0.25]), np.array([1.0, 0.0, -0.5, 0.75])
    users, items = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
    ratings = 3 + a[users] + b[items]
    mu, b_u, b_i = fit_biases(users, items, ratings, 3, 4, reg_u=0.0, reg_i=0.0, sweeps=20)
    assert np.allclose(mu + b_u[users] + b_i[items], ratings, atol=1e-9)


def test_bias_model_shrinks_like_its_closed_form():
    # one sweep from zero: b_u = sum(r - mu) / (reg_u + n_u), then b_i from the residuals
    users, items = np.array([0, 0, 1]), np.array([0, 1, 0])
    ratings = np.array([5.0, 4.0, 1.0])
    mu, b_u, b_i = fit_biases(users, items, ratings, 2, 2, reg_u=2.0, reg_i=1.0, sweeps=1)
    assert mu == pytest.approx(10 / 3)
    assert b_u == pytest.approx([(5 + 4 - 2 * mu) / 4, (1 - mu) / 3])
    assert b_i == pytest.approx([(5 - mu - b_u[0] + 1 - mu - b_u[1]) / 3, (4 - mu - b_u[0]) / 2])
    model = BiasBaseline(2, 2, reg_u=2.0, reg_i=1.0, sweeps=1)
    model.load_tables({"train_pairs": (users, items), "train_ratings": ratings})
    scores = np.asarray(model.score_all(np.array([0, 1, -1], np.int32)))
    expected = mu + b_u[:, None] + b_i[None, :]
    assert np.allclose(scores[:2], expected, atol=1e-5)
    assert np.allclose(scores[2], mu + b_i, atol=1e-5)  # an unknown user: no user offset


def test_gate_on_a_lower_is_better_metric():
    metrics = {"test": {"rmse": 0.90}}
    baseline = {"pop": {"test": None}, "bias": {"test": {"rmse": 0.945}}}
    passed = check_gate(GateConfig(metric="rmse", max=0.95, min_lift=1.02), metrics, baseline, "rating")
    assert "1.05x bias" in passed  # the baseline's value divided by the model's
    with pytest.raises(GateFailed, match="gate.max"):
        check_gate(GateConfig(metric="rmse", max=0.85), metrics, baseline, "rating")
    with pytest.raises(GateFailed, match="min_lift"):
        check_gate(GateConfig(metric="rmse", min_lift=1.1), metrics, baseline, "rating")


def test_table_lift_is_baseline_over_model_for_errors():
    result = {
        "metrics": {"valid": None, "test": {"rmse": 0.9, "mae": 0.72}},
        "baseline": {"bias": {"valid": None, "test": {"rmse": 0.945, "mae": 0.756}}},
    }
    table = metrics_table(result, "RATING", "mf")
    assert "1.05x" in table.splitlines()[2] and "0.95x" not in table


def test_early_stopping_keeps_the_lowest_rmse():
    from recctl.training.callbacks import RankingValidation

    values = iter([1.0, 0.9, 0.95, 0.97, 0.99])
    callback = RankingValidation(
        lambda: {"rmse": next(values)}, "rmse", 2, 0.0, True, True, 1, 0, lower_is_better=True
    )

    class Model:
        stop_training = False
        optimizer = None

        def get_weights(self):
            return []

    callback.set_model(Model())
    for epoch in range(4):
        callback.on_epoch_end(epoch, {})
    assert callback.best == 0.9 and callback.best_epoch == 1 and callback.stopped_early


def test_sweep_order_and_optuna_direction_follow_the_task():
    from recctl.sweep import _order

    assert sweep_direction("rating") == "minimize" and sweep_direction("ranking") == "maximize"
    assert _order("valid_rmse") == 1.0 and _order("valid_ndcg@10") == -1.0


def test_rating_task_end_to_end(tmp_path: Path):
    result = recctl_json(
        "train", *RATING, *TINY, "trainer.epochs=4", "gate.metric=rmse", "gate.max=5", cwd=tmp_path
    )
    test, bias = result["metrics"]["test"], result["baseline"]["bias"]["test"]
    assert set(test) == {"rmse", "mae"} and set(bias) == {"rmse", "mae"}
    assert 0 < test["rmse"] < 2 and test["mae"] <= test["rmse"]
    assert result["protocol"].startswith("RATING:") and result["intervals"] is None
    assert result["baseline"]["pop"]["test"] is None  # pop does not apply; the key stays for scripts
    # recommend ranks by predicted rating (on the rating scale, best first)
    import pandas as pd

    users = pd.read_parquet(next((tmp_path / "data").rglob("users.parquet")))
    shown = recctl_json("recommend", "run=latest", f"user={users.user_id[0]}", "k=5", cwd=tmp_path)
    scores = [item["score"] for item in shown["recommendations"][0]["items"]]
    assert scores == sorted(scores, reverse=True) and 1 < scores[0] < 6


def test_rating_needs_the_squared_error_loss():
    from recctl.models.mf import MatrixFactorization

    with pytest.raises(ValueError, match="loss=mse"):
        MatrixFactorization(10, 10, task="rating", loss="softmax")
    with pytest.raises(ValueError, match="task should be one of ranking, rating"):
        MatrixFactorization(10, 10, task="ctr", loss="bce")
    # the refusals a user meets on the command line are rows of tests/test_bad_inputs.py


@pytest.mark.slow
def test_rating_bar_on_ml100k(ml100k_dir: Path, tmp_path: Path):
    result = recctl_json(
        "train", "experiment=ml100k_rating", f"dataset.root={ml100k_dir}", cwd=tmp_path, timeout=1200
    )
    rmse, bias = result["metrics"]["test"]["rmse"], result["baseline"]["bias"]["test"]["rmse"]
    assert rmse <= 0.945 and rmse < bias  # surprise's SVD: 0.9412 on a seeded 80/10/10 split


@pytest.mark.parametrize(
    "family", ["mf.MatrixFactorization", "neumf.NeuMF", "wide_deep.WideDeep", "deepfm.DeepFM"]
)
def test_every_rating_family_predicts_around_the_training_mean(family):
    import importlib

    from recctl.models.base import IdRecommender

    module, name = family.split(".")
    cls = getattr(importlib.import_module(f"recctl.models.{module}"), name)
    model = cls(6, 5, task="rating", loss="mse")
    assert cls.tasks == ("ranking", "rating") or "rating" in cls.tasks
    IdRecommender.load_tables(model, {"train_ratings": np.array([3.0, 4.0, 5.0])})
    assert float(model.global_bias.numpy()) == pytest.approx(4.0)
    users = np.array([0, 3], np.int32)
    before = np.asarray(model.score_all(users))
    pairs = np.asarray(model({"user": users, "items": np.array([[1], [4]], np.int32)}))
    model.global_bias.assign(5.0)  # the mean moves every prediction, in scoring and in training
    assert np.allclose(np.asarray(model.score_all(users)), before + 1, atol=1e-5)
    assert np.allclose(
        np.asarray(model({"user": users, "items": np.array([[1], [4]], np.int32)})), pairs + 1, atol=1e-5
    )
    assert not model.emits_probabilities and model.get_config()["task"] == "rating"
