"""Intervals over users (issue #15): the bootstrap against hand-computed cases, the paired lift,
f1@K and novelty@K by hand, the folded table, and the intervals and per-user values of a CLI run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, recctl_json, recctl_json_in_process

from recctl.evaluation.metrics import RankingAccumulator
from recctl.evaluation.uncertainty import PerUser, bootstrap, resample_weights


def _per_user(values: dict[str, list[float]]) -> PerUser:
    n = len(next(iter(values.values())))
    return PerUser(np.arange(n), {k: np.asarray(v, np.float64) for k, v in values.items()})


def test_a_constant_metric_has_a_zero_width_interval():
    own, _ = bootstrap(_per_user({"hr@10": [0.25] * 50}), {}, 200, seed=0)
    assert own == {"hr@10": [0.25, 0.25]}


def test_two_users_give_the_three_point_distribution():
    # Resampled means of two users valued 0 and 1: 0 (1/4), 0.5 (1/2), 1 (1/4); the 2.5th and 97.5th
    # percentiles are the extremes.
    own, _ = bootstrap(_per_user({"ndcg@10": [0.0, 1.0]}), {}, 2000, seed=1)
    assert own == {"ndcg@10": [0.0, 1.0]}


def test_a_large_sample_matches_the_normal_approximation():
    rng = np.random.default_rng(5)
    hits = (rng.random(4000) < 0.3).astype(float)
    own, _ = bootstrap(_per_user({"hr@10": hits}), {}, 1000, seed=2)
    mean, half = hits.mean(), 1.96 * hits.std() / np.sqrt(len(hits))
    assert own["hr@10"][0] == pytest.approx(mean - half, abs=0.004)
    assert own["hr@10"][1] == pytest.approx(mean + half, abs=0.004)


def test_resamples_are_seeded_and_draw_every_user_count_once_per_resample():
    first = np.concatenate(list(resample_weights(30, 100, seed=7)))
    again = np.concatenate(list(resample_weights(30, 100, seed=7)))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (100, 30) and (first.sum(axis=1) == 30).all()


def test_the_lift_interval_is_paired():
    # The model is the baseline plus 0.03 for every user, with a wide spread between users: the
    # unpaired intervals overlap, yet every resample's lift is above 1.
    rng = np.random.default_rng(3)
    base = rng.random(300)
    model = _per_user({"ndcg@10": base + 0.03})
    own, lifts = bootstrap(model, {"pop": _per_user({"ndcg@10": base})}, 500, seed=4)
    base_own, _ = bootstrap(_per_user({"ndcg@10": base}), {}, 500, seed=4)
    assert own["ndcg@10"][0] < base_own["ndcg@10"][1]  # the two intervals overlap
    lo, hi = lifts["pop"]["ndcg@10"]
    expected = (base.mean() + 0.03) / base.mean()
    assert 1 < lo < expected < hi < 1.1


def test_f1_and_novelty_by_hand():
    information = np.log2(np.array([1.0, 2.0, 4.0, 8.0, 16.0]))  # items 0..4: 0, 1, 2, 3, 4 bits
    acc = RankingAccumulator([2], 5, ["f1", "novelty", "precision", "recall"], True, information)
    # user 0: top [3, 1], targets {1, 4}: precision 1/2, recall 1/2, f1 1/2, novelty (3 + 1) / 2
    # user 1: top [0, 2], target {4}: no hit, f1 0, novelty (0 + 2) / 2
    acc.update(np.array([[3, 1], [0, 2]]), np.array([0, 0, 1]), np.array([1, 4, 4]), 2)
    result = acc.result()
    assert result["f1@2"] == pytest.approx(0.25)
    assert result["novelty@2"] == pytest.approx(1.5)
    np.testing.assert_allclose(acc.per_user()["novelty@2"], [2.0, 1.0])


def test_the_table_folds_identical_metrics_and_shows_intervals():
    from recctl.evaluation.tables import metrics_table

    figures = {"hr@10": 0.2, "recall@10": 0.2, "ndcg@10": 0.1}
    result = {
        "metrics": {"valid": None, "test": figures},
        "baseline": {"pop": {"valid": None, "test": {"hr@10": 0.1, "recall@10": 0.1, "ndcg@10": 0.05}}},
        "intervals": {
            "valid": None,
            "test": {"hr@10": [0.15, 0.25], "recall@10": [0.15, 0.25], "ndcg@10": [0.08, 0.12]},
            "lift": {"pop": {"valid": None, "test": {"ndcg@10": [1.5, 2.5]}}},
        },
    }
    table = metrics_table(result, "p", "mf")
    assert "hr@10 = recall@10" in table and table.count("recall@10") == 1
    assert "0.1000 ±0.0200" in table and "2.00x (1.50-2.50)" in table


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """pop (with item_knn beside it) and ease, trained on one TINY split: fitted in seconds."""
    work = tmp_path_factory.mktemp("compare")
    pop = recctl_json("train", "model=pop", *TINY, "evaluation.baselines=[pop,item_knn]", cwd=work)
    ease = recctl_json("train", "model=ease", *TINY, cwd=work)
    return {"work": work, "pop": pop, "ease": ease}


def test_train_reports_intervals_and_stores_per_user_values(runs):
    result = runs["pop"]
    intervals = result["intervals"]
    lo, hi = intervals["test"]["ndcg@10"]
    assert lo <= result["metrics"]["test"]["ndcg@10"] <= hi and lo < hi
    assert "coverage@10" not in intervals["test"]  # a catalogue-level figure: no per-user value
    assert set(intervals["lift"]) == {"pop", "item_knn"}
    assert intervals["lift"]["pop"]["test"]["ndcg@10"] == [1.0, 1.0]  # pop against itself
    run = Path(result["run_dir"])
    assert json.loads((run / "metrics.json").read_text())["intervals"] == intervals
    per_user = pd.read_parquet(run / "per_user.parquet")
    test = per_user[per_user["split"] == "test"]
    assert test["ndcg@10"].mean() == pytest.approx(result["metrics"]["test"]["ndcg@10"], abs=1e-6)
    assert test["user_id"].is_unique and len(test) == 300  # TINY: every user has a test item


def test_compare_finds_ease_better_than_pop_and_gates_the_reverse(runs):
    ease, pop = runs["ease"]["run_dir"], runs["pop"]["run_dir"]
    better = recctl_json("compare", f"run={ease}", f"base={pop}", "gate.metric=ndcg@10", cwd=runs["work"])
    figure = better["comparison"]["test"]["ndcg@10"]
    assert figure["run"] == pytest.approx(runs["ease"]["metrics"]["test"]["ndcg@10"], abs=1e-6)
    assert figure["diff"] == pytest.approx(figure["run"] - figure["base"], abs=1e-6)
    assert 0 < figure["ci"][0] < figure["diff"] < figure["ci"][1] and figure["p_value"] < 0.01
    assert "sign-flip" in better["comparison"]["method"]
    worse = recctl_json(
        "compare", f"run={pop}", f"base={ease}", "gate.metric=ndcg@10", cwd=runs["work"], expect=3
    )
    assert worse["status"] == "gate_failed" and "significantly worse" in worse["error"]
    same = recctl_json("compare", f"run={pop}", f"base={pop}", cwd=runs["work"])
    assert (
        same["comparison"]["test"]["ndcg@10"]["diff"] == 0
        and same["comparison"]["test"]["ndcg@10"]["p_value"] == 1
    )


def test_compare_refuses_two_splits_and_runs_without_per_user_values(runs, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(runs["ease"]["run_dir"], other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["evaluation_digests"]["test"] = "0" * 16  # what another snapshot's split gives
    (other / "metrics.json").write_text(json.dumps(metrics))
    refused = recctl_json("compare", f"run={other}", f"base={runs['pop']['run_dir']}", cwd=tmp_path, expect=2)
    assert "not evaluated on the same split" in refused["error"]
    (other / "per_user.parquet").unlink()
    refused = recctl_json("compare", f"run={other}", f"base={runs['pop']['run_dir']}", cwd=tmp_path, expect=2)
    assert "no per-user metric values" in refused["error"] and "recctl evaluate" in refused["error"]
    missing = recctl_json("compare", "run=latest", cwd=runs["work"], expect=2)
    assert "compare needs base=RUN" in missing["error"]


def test_the_evaluation_digest_follows_the_split_not_the_run(tmp_path):
    from conftest import REPO
    from hydra import compose, initialize_config_dir

    from recctl.config import checked_dataset
    from recctl.data.prepare import ensure_snapshot

    def snapshot(*overrides):
        with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
            cfg = compose("prepare", [*TINY[:3], *overrides])
        return ensure_snapshot(checked_dataset(cfg.dataset), tmp_path, 42)[0]

    one, again, other = snapshot(), snapshot(), snapshot("dataset.synthetic.n_users=301")
    assert one.evaluation_digest("test") == again.evaluation_digest("test")
    assert one.evaluation_digest("test") != one.evaluation_digest("valid")
    assert one.evaluation_digest("test") != other.evaluation_digest("test")


def test_bootstrap_off_leaves_intervals_null(runs, monkeypatch, capsys):
    off = recctl_json_in_process(
        monkeypatch,
        capsys,
        "evaluate",
        f"run={runs['pop']['run_dir']}",
        "evaluation.bootstrap=0",
        cwd=runs["work"],
    )
    assert off["intervals"] is None
    assert off["metrics"] == runs["pop"]["metrics"]


class _Catalogue:
    n_items = 50

    def item_popularity(self):
        return np.arange(50, dtype=np.float32)  # item 0 never seen in training: never drawn by popularity


def test_sampled_candidates_are_the_targets_and_n_unseen_items():
    from recctl.evaluation.ranking import CandidateSampler

    sampler = CandidateSampler(_Catalogue(), "test", negatives=10, by="uniform", seed=3)
    h_rows, h_items = np.array([0, 0, 1]), np.array([5, 6, 7])
    t_rows, t_items = np.array([0, 1, 1]), np.array([9, 2, 3])
    mask_rows, mask_items = sampler.non_candidates(2, h_rows, h_items, t_rows, t_items)
    keep = np.ones((2, 50), dtype=bool)
    keep[mask_rows, mask_items] = False
    assert keep.sum(axis=1).tolist() == [11, 12]  # 10 negatives + the row's targets
    assert keep[t_rows, t_items].all() and not keep[h_rows, h_items].any()
    again = CandidateSampler(_Catalogue(), "test", negatives=10, by="uniform", seed=3)
    np.testing.assert_array_equal(again.non_candidates(2, h_rows, h_items, t_rows, t_items)[1], mask_items)
    popular = CandidateSampler(_Catalogue(), "test", negatives=45, by="popularity", seed=3)
    rows, items = popular.non_candidates(
        1, np.array([], int), np.array([], int), np.array([0]), np.array([9])
    )
    assert 0 in items[rows == 0]  # a zero-count item is never a popularity-sampled negative


def test_sampled_candidates_inflate_figures_and_say_so(runs, tmp_path, monkeypatch, capsys):
    import shutil

    copy = tmp_path / "pop"
    shutil.copytree(runs["pop"]["run_dir"], copy)
    args = ("evaluation.candidates=sampled", "evaluation.sampled.negatives=20", "evaluation.bootstrap=0")
    sampled = recctl_json_in_process(monkeypatch, capsys, "evaluate", f"run={copy}", *args, cwd=runs["work"])
    assert "SAMPLED candidates" in sampled["protocol"] and "20 uniform-sampled" in sampled["protocol"]
    assert sampled["metrics"]["test"]["hr@10"] > 1.5 * runs["pop"]["metrics"]["test"]["hr@10"]
    # A sampled evaluation is another problem: compare refuses it beside a full-ranking one.
    refused = recctl_json(
        "compare", f"run={copy}", f"base={runs['pop']['run_dir']}", cwd=runs["work"], expect=2
    )
    assert "not evaluated on the same split" in refused["error"]
