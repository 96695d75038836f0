"""Preparation: splits, tie-breaks, filtering, duplicates, fingerprints, snapshot reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recctl.config import DatasetConfig
from recctl.config import checked_dataset as dataset_settings
from recctl.data.prepare import ensure_snapshot
from recctl.data.raw import RawData
from recctl.data.snapshot import Snapshot
from recctl.data.transform import build_tables, split_assignments
from recctl.errors import ConfigError, DataError


def _cfg(**kw):
    base = {"name": "t", "source": "table", "path": "x.csv"}
    base.update(kw)
    return dataset_settings(OmegaConf.merge(OmegaConf.structured(DatasetConfig), base))


def _raw(rows, ratings=True, timestamps=True):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    return RawData(
        frame.astype({"rating": "float64", "timestamp": "int64"}),
        has_ratings=ratings,
        has_timestamps=timestamps,
    )


def test_loo_breaks_timestamp_ties_by_row_order():
    # user a: three items at the same time, then one later; ties keep file order
    raw = _raw(
        [
            ("a", "1", 5, 10),
            ("a", "2", 5, 10),
            ("a", "3", 5, 10),
            ("a", "4", 5, 5),
            ("b", "1", 1, 1),
            ("b", "2", 1, 2),
        ]
    )
    tables, stats = build_tables(raw, _cfg(), seed=0)
    assert tables["test"]["item"].tolist() == [2]  # item "3": the last row among the ties
    assert tables["valid"]["item"].tolist() == [1]  # item "2"
    # user b has 2 interactions: too few to hold out, all in train
    assert stats["test_users"] == 1 and len(tables["train"]) == 4


def test_temporal_and_random_ratios():
    rows = [(u, str(i), 1, i) for u in ("a", "b") for i in range(10)]
    tables, _ = build_tables(_raw(rows), _cfg(split="temporal"), seed=0)
    assert len(tables["train"]) == 16 and len(tables["valid"]) == 2 and len(tables["test"]) == 2
    assert tables["test"]["timestamp"].min() > tables["train"]["timestamp"].max() - 1
    t1, _ = build_tables(_raw(rows), _cfg(split="random"), seed=1)
    t2, _ = build_tables(_raw(rows), _cfg(split="random"), seed=1)
    t3, _ = build_tables(_raw(rows), _cfg(split="random"), seed=2)
    assert t1["test"].equals(t2["test"]) and len(t1["test"]) == 2
    assert not (t1["test"].equals(t3["test"]) and t1["valid"].equals(t3["valid"]))


def test_split_assignment_is_vectorised_per_user():
    frame = pd.DataFrame(
        {"user": [0, 0, 0, 1, 1, 1, 1], "timestamp": [3, 1, 2, 1, 1, 1, 0], "row": np.arange(7)}
    )
    part = split_assignments(frame, "loo", [0.8, 0.1, 0.1], 0)
    assert part.tolist() == [2, 0, 1, 0, 1, 2, 0]
    part = split_assignments(frame, "temporal", [0.5, 0.25, 0.25], 0)
    assert part.tolist() == [2, 0, 1, 0, 1, 2, 0]  # 3 and 4 rows: one valid, one test each


def test_every_configurable_split_has_a_splitter():
    from recctl.config import SPLITS
    from recctl.data.transform import SPLITTERS

    assert tuple(SPLITTERS) == SPLITS


def test_threshold_kcore_and_duplicates():
    rows = [
        ("a", "1", 5, 1),
        ("a", "1", 4, 2),
        ("a", "2", 2, 3),
        ("b", "1", 5, 1),
        ("b", "3", 5, 2),
        ("c", "9", 5, 1),
    ]
    tables, stats = build_tables(_raw(rows), _cfg(rating_threshold=4, min_user_interactions=2), seed=0)
    assert stats["duplicate_rows"] == 1
    assert (
        stats["n_users"] == 1
    )  # a keeps only item 1 (2 is below threshold) -> dropped; c has one -> dropped
    with pytest.raises(DataError, match="duplicate"):
        build_tables(_raw(rows), _cfg(duplicates="error"), seed=0)
    with pytest.raises(DataError, match="every user was filtered out"):
        build_tables(_raw(rows), _cfg(min_user_interactions=50), seed=0)
    with pytest.raises(ConfigError, match="no rating column"):
        build_tables(_raw(rows, ratings=False), _cfg(rating_threshold=4), seed=0)


def test_ids_keep_their_original_spelling_and_numeric_order():
    rows = [("10", "007", 1, 1), ("2", "7", 1, 2), ("2", "10", 1, 3)]
    tables, _ = build_tables(_raw(rows), _cfg(), seed=0)
    assert tables["users"]["user_id"].tolist() == ["2", "10"]
    assert set(tables["items"]["item_id"]) == {"007", "7", "10"}


def test_synthetic_snapshot_round_trip(tmp_path):
    spec = {
        "name": "synthetic",
        "source": "synthetic",
        "synthetic": {"n_users": 80, "n_items": 50, "mean_interactions": 12},
    }
    snap, created = ensure_snapshot(spec, tmp_path, seed=3)
    again, created_again = ensure_snapshot(spec, tmp_path, seed=3)
    assert created and not created_again and again.path == snap.path
    snap = Snapshot(snap.path)
    assert snap.n_users == 80 and snap.n_items <= 50
    users, items = snap.pairs("train")
    assert users.max() < snap.n_users and items.max() < snap.n_items
    cat, vocab, num = snap.side_features("item")
    assert cat.shape == (snap.n_items, len(vocab)) and all(v >= 2 for v in vocab)
    history = snap.history_for("test")
    assert history.row_lengths().sum() == len(snap.split("train")) + len(snap.split("valid"))
    rows, its = history.rows(np.array([0, 5]))
    assert set(its[rows == 1]) == set(
        snap.csr("train", "valid").indices[history.indptr[5] : history.indptr[6]]
    )


def test_time_split_cuts_every_user_on_one_clock():
    from recctl.config import validate_dataset

    rows = [(1, 1, 5, 5), (1, 2, 4, 15), (1, 3, 3, 25), (2, 1, 5, 12), (2, 4, 5, 30), (3, 2, 4, 21)]
    tables, _ = build_tables(_raw(rows), _cfg(split="time", time_cutoffs=[10, 20]), seed=0)
    sizes = {name: len(tables[name]) for name in ("train", "valid", "test")}
    assert sizes == {"train": 1, "valid": 2, "test": 3}  # t<10 | 10<=t<20 | t>=20, whoever the user
    assert sorted(tables["test"]["timestamp"].tolist()) == [21, 25, 30]
    with pytest.raises(ConfigError, match=r"dataset.split=time needs dataset.time_cutoffs"):
        validate_dataset(_cfg(split="time"))
    with pytest.raises(ConfigError, match=r"Received: \[20.0, 10.0\]"):
        validate_dataset(_cfg(split="time", time_cutoffs=[20, 10]))
    with pytest.raises(DataError, match="split=time cuts on timestamps"):
        build_tables(_raw(rows, timestamps=False), _cfg(split="time", time_cutoffs=[10, 20]), seed=0)
