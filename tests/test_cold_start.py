"""Cold-start protocols (issue #17): dataset.split=cold_users / cold_items, their checks, the
candidates and baselines they are scored with, and id dropout in wide_deep / deepfm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recctl import config
from recctl.config import DatasetConfig
from recctl.data.prepare import ensure_snapshot
from recctl.data.raw import RawData
from recctl.data.transform import build_tables, held_out_ids
from recctl.errors import ConfigError

SMALL = {"n_users": 200, "n_items": 120, "mean_interactions": 15}


def _synthetic(split: str, **kw):
    base = {"name": "cold", "source": "synthetic", "split": split, "synthetic": SMALL, **kw}
    return OmegaConf.merge(OmegaConf.structured(DatasetConfig), base)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    return {split: ensure_snapshot(_synthetic(split), data, 7)[0] for split in ("cold_users", "cold_items")}


@pytest.mark.parametrize("split,column", [("cold_users", "user"), ("cold_items", "item")])
def test_no_cold_user_or_item_leaks_into_training(snapshots, split, column):
    snap = snapshots[split]
    train, valid, test = (set(snap.split(s)[column]) for s in ("train", "valid", "test"))
    assert valid and test
    assert not (train & valid) and not (train & test) and not (valid & test)
    n = snap.n_users if column == "user" else snap.n_items
    assert len(valid) == len(test) == round(0.1 * n)  # dataset.cold_share=0.1 each
    assert snap.stats["cold"] == {"side": f"{column}s", "share": 0.1, "valid": len(valid), "test": len(test)}
    # every interaction of a cold user / item is in its split: nothing was dropped
    assert snap.stats["train"] + snap.stats["valid"] + snap.stats["test"] == snap.stats["n_interactions"]
    # side features exist for the held-out ones (what wide_deep / deepfm score them from)
    table = snap.users if column == "user" else snap.items
    features = [c for c in table.columns if c.startswith(("cat__", "num__"))]
    assert features
    cold = table[table[column].isin(test | valid)]
    assert len(cold) == len(test | valid)
    assert (cold[[c for c in features if c.startswith("cat__")]] > 0).any(axis=1).all()
    assert split in snap.split_description()


def test_cold_choice_depends_on_ids_and_seed_not_on_row_order():
    ids = np.array([str(i) for i in range(50)])
    part = held_out_ids(ids, 0.1, seed=3)
    assert (part == 2).sum() == 5 and (part == 1).sum() == 5
    shuffled = np.random.default_rng(0).permutation(50)
    again = held_out_ids(ids[shuffled], 0.1, seed=3)
    assert dict(zip(ids[shuffled], again, strict=True)) == dict(zip(ids, part, strict=True))
    assert not np.array_equal(held_out_ids(ids, 0.1, seed=4), part)

    rows = [(u, str(i), 1.0, t) for t, (u, i) in enumerate((u, i) for u in "abcdefghijkl" for i in range(4))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    settings = config.checked_dataset(
        OmegaConf.merge(
            OmegaConf.structured(DatasetConfig),
            {"name": "t", "source": "table", "path": "x.csv", "split": "cold_users", "cold_share": 0.2},
        )
    )

    def held_out(table):
        tables, _ = build_tables(RawData(table, has_ratings=True, has_timestamps=True), settings, seed=1)
        users = tables["users"]["user_id"].to_numpy()
        return {s: set(users[tables[s]["user"]]) for s in ("valid", "test")}

    assert held_out(frame) == held_out(frame.sample(frac=1.0, random_state=5).reset_index(drop=True))


def test_cold_share_is_checked_and_stays_out_of_other_fingerprints():
    with pytest.raises(ConfigError, match="dataset.cold_share must be above 0 and below 0.5"):
        config.checked_dataset(_synthetic("cold_users", cold_share=0.5))
    from recctl.data.prepare import snapshot_fingerprint

    assert snapshot_fingerprint(_synthetic("loo"), 1) == snapshot_fingerprint(
        _synthetic("loo", cold_share=0.2), 1
    )
    assert snapshot_fingerprint(_synthetic("cold_users"), 1) != snapshot_fingerprint(
        _synthetic("cold_users", cold_share=0.2), 1
    )
    assert snapshot_fingerprint(_synthetic("cold_users"), 1) != snapshot_fingerprint(
        _synthetic("cold_users"), 2
    )


def test_families_without_features_are_refused_in_one_line(capsys):
    from recctl.models.deepfm import DeepFM
    from recctl.models.mf import MatrixFactorization
    from recctl.models.pop import Popularity
    from recctl.models.wide_deep import WideDeep

    users, items = _synthetic("cold_users"), _synthetic("cold_items")
    with pytest.raises(ConfigError) as caught:
        config.check_cold_split(MatrixFactorization, {}, users, "mf")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(
        "dataset.split=cold_users: model=mf cannot score a user"
    )
    assert message.endswith("model=deepfm, model=pop, model=wide_deep")
    with pytest.raises(
        ConfigError,
        match="cannot score an item without history; the families that can: model=content, model=deepfm, model=wide_deep$",
    ):
        config.check_cold_split(Popularity, {}, items, "pop")
    config.check_cold_split(Popularity, {}, users, "pop")
    config.check_cold_split(DeepFM, {"item_dropout": 0.1}, items, "deepfm")
    assert capsys.readouterr().err == ""
    config.check_cold_split(WideDeep, {"user_dropout": 0.0}, users, "wide_deep")
    assert "model.user_dropout=0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="evaluation.candidates=sampled does not apply"):
        config.check_cold_split(WideDeep, {"item_dropout": 0.1}, items, "wide_deep", "sampled")
    config.check_cold_split(MatrixFactorization, {}, _synthetic("loo"), "mf")  # not a cold split


def test_cold_items_rank_only_the_cold_items(snapshots):
    from recctl.evaluation.baselines import cold_names
    from recctl.evaluation.ranking import evaluate_split_per_user
    from recctl.evaluation.report import feature_popularity
    from recctl.evaluation.tasks import TASKS

    snap = snapshots["cold_items"]
    cold = snap.cold_candidates("test")
    assert (
        set(cold) == set(snap.split("test")["item"])
        and snapshots["cold_users"].cold_candidates("test") is None
    )
    # a score that puts every warm item first still finds only cold items in its top-K
    scores = np.where(np.isin(np.arange(snap.n_items), cold), 0.0, 1.0).astype(np.float32)
    perfect = np.full(snap.n_items, -1.0, np.float32)
    perfect[cold] = 1.0
    warm_first, _ = evaluate_split_per_user(
        lambda users: np.tile(scores, (len(users), 1)), snap, "test", [10], ["hr"], 64, ties="index"
    )
    assert warm_first["hr@10"] > 0  # warm items are not candidates
    popular = feature_popularity(snap)
    assert popular.shape == (snap.n_items,) and np.isfinite(popular).all() and popular[cold].std() > 0
    assert cold_names(["pop", "ease"], snap) == ["feature_pop", "ease"]
    assert cold_names(["pop"], snapshots["cold_users"]) == ["pop"]
    line = TASKS["ranking"].protocol(snap)
    assert f"candidates: the split's cold items only ({len(cold)} at test" in line
    assert "nothing masked (cold users have no history)" in TASKS["ranking"].protocol(snapshots["cold_users"])


def _model(cls, snap, **kw):
    from recctl.training.factory import data_arguments, data_tables

    args = {k: v for k, v in data_arguments(snap).items()}
    model = cls(**args, **kw)
    model.load_tables(data_tables(snap))
    return model


@pytest.mark.parametrize("family", ["wide_deep", "deepfm"])
def test_id_dropout_scores_cold_users_and_items_through_the_unknown_row(snapshots, family):
    from recctl.models.deepfm import DeepFM
    from recctl.models.wide_deep import WideDeep

    cls = WideDeep if family == "wide_deep" else DeepFM
    snap = snapshots["cold_users"]
    plain = _model(cls, snap)
    assert plain.user_id_embedding.input_dim == snap.n_users and plain.user_known is None  # unchanged
    model = _model(cls, snap, user_dropout=0.2, item_dropout=0.1)
    assert model.user_id_embedding.input_dim == snap.n_users + 1
    assert model.item_id_embedding.input_dim == snap.n_items + 1
    assert model.id_axes()["user_id_embedding/embeddings"].trailing == 1
    cold = np.unique(snap.split("test")["user"].to_numpy())
    warm = np.unique(snap.split("train")["user"].to_numpy())
    known = model.user_known.numpy()
    assert known[cold].sum() == 0 and known[warm].all()
    rows = model._id_index(np.array([cold[0], warm[0]], np.int32), "user", training=False).numpy()
    assert rows.tolist() == [snap.n_users, warm[0]]
    # in training, about user_dropout of the known users go through the unknown row
    drawn = model._id_index(np.repeat(warm[:1], 4000).astype(np.int32), "user", training=True).numpy()
    assert 0.15 < float((drawn == snap.n_users).mean()) < 0.25
    # two cold users with the same features get the same scores; the unknown row is what they share
    scores = model.score_all(np.array(cold[:2], np.int32)).numpy()
    cat, _, num = snap.side_features("user")
    same = (cat[cold[0]] == cat[cold[1]]).all() and (num[cold[0]] == num[cold[1]]).all()
    assert np.allclose(scores[0], scores[1]) == same
    restored = cls.from_config(model.get_config())
    assert restored.user_dropout == 0.2 and restored.item_dropout == 0.1
    with pytest.raises(ValueError, match="item_dropout should be in"):
        cls(n_users=3, n_items=3, item_dropout=1.5)


@pytest.mark.slow
def test_train_refuses_a_family_without_features_on_a_cold_split(tmp_path):
    from conftest import TINY, recctl

    proc = recctl("train", *TINY, "model=mf", "dataset.split=cold_users", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("recctl: error")]
    assert errors == [
        "recctl: error: dataset.split=cold_users: model=mf cannot score a user without history; "
        "the families that can: model=deepfm, model=pop, model=wide_deep"
    ]
    assert not (tmp_path / "data").exists()  # refused before any data was read
