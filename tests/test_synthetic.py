"""Tests of the synthetic generator: determinism, schema, and that its structure is really there."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recctl.config import SyntheticSpec
from recctl.data.raw import RawData
from recctl.data.synthetic import generate
from recctl.errors import ConfigError

SMALL = SyntheticSpec(
    n_users=300,
    n_items=200,
    mean_interactions=20,
    min_interactions=5,
    n_categories=10,
    latent_dim=8,
    chunk_users=128,
)


@pytest.fixture(scope="module")
def data() -> RawData:
    return generate(SMALL, seed=7)


def _category_index(items: pd.DataFrame) -> pd.Series:
    """item_id -> category number, read from the public `category` column ("cat_3" -> 3)."""
    return items.set_index("item_id")["category"].str.removeprefix("cat_").astype(int)


def _successor_hit_rate(d: RawData, steps: int) -> float:
    """Share of consecutive pairs where the next item is `steps` items further in its category's id order."""
    items = d.items.copy()
    items["cat"] = items["category"]
    items["pos"] = items.groupby("cat").cumcount()  # items are listed by id, so this is id order
    size = items.groupby("cat")["item_id"].transform("size")
    target = items["pos"].add(steps).mod(size)
    by_cat_pos = items.set_index(["cat", "pos"])["item_id"]
    succ = dict(
        zip(items["item_id"], by_cat_pos.loc[list(zip(items["cat"], target, strict=True))], strict=True)
    )
    inter = d.interactions
    same_user = inter["user_id"].eq(inter["user_id"].shift(-1))
    expected = inter["item_id"].map(succ)
    nxt = inter["item_id"].shift(-1)
    return float((nxt[same_user] == expected[same_user]).mean())


def test_same_seed_same_data_and_chunking_does_not_matter(data: RawData) -> None:
    again = generate(replace(SMALL, chunk_users=1000), seed=7)  # one chunk instead of three
    pd.testing.assert_frame_equal(data.interactions, again.interactions)
    pd.testing.assert_frame_equal(data.users, again.users)
    pd.testing.assert_frame_equal(data.items, again.items)
    assert data.stats == again.stats


def test_dictconfig_spec_gives_the_same_data(data: RawData) -> None:
    cfg = OmegaConf.structured(SMALL)
    pd.testing.assert_frame_equal(generate(cfg, seed=7).interactions, data.interactions)


def test_different_seed_different_data(data: RawData) -> None:
    other = generate(SMALL, seed=8)
    assert not data.interactions.equals(other.interactions)
    assert not data.items["category"].equals(other.items["category"])


def test_schema_and_dtypes(data: RawData) -> None:
    inter = data.interactions
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert pd.api.types.is_string_dtype(inter["user_id"]) and pd.api.types.is_string_dtype(inter["item_id"])
    assert inter["rating"].dtype == np.float64 and inter["timestamp"].dtype == np.int64
    assert set(inter["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert inter["rating"].nunique() >= 4
    assert list(data.users.columns) == ["user_id", "segment", "age_group"]
    assert list(data.items.columns) == ["item_id", "title", "category", "price_band"]
    for frame in (data.users, data.items):
        assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns)
    assert data.users["user_id"].is_unique and len(data.users) == SMALL.n_users
    assert data.items["item_id"].is_unique and len(data.items) == SMALL.n_items
    assert set(inter["user_id"]) == set(data.users["user_id"])
    assert set(inter["item_id"]) <= set(data.items["item_id"])
    assert (
        data.items["title"].iloc[17]
        == f"Item 17 (cat {data.items['category'].iloc[17].removeprefix('cat_')})"
    )
    assert data.files == [] and data.has_timestamps and data.has_ratings


def test_stats_are_plain_and_consistent(data: RawData) -> None:
    stats = json.loads(json.dumps(data.stats))
    assert stats["n_users"] == SMALL.n_users and stats["n_items"] == SMALL.n_items
    assert stats["n_interactions"] == len(data.interactions)
    shares = [stats[f"variance_share_{k}"] for k in ("popularity", "category", "individual")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert all(0.05 < s < 0.9 for s in shares)
    assert 0.15 < stats["share_sequential"] < SMALL.sequence_prob


def test_pairs_unique_and_counts_clipped(data: RawData) -> None:
    inter = data.interactions
    assert not inter.duplicated(["user_id", "item_id"]).any()
    per_user = inter.groupby("user_id").size()
    assert per_user.min() >= SMALL.min_interactions
    assert per_user.max() <= SMALL.n_items // 2
    assert per_user.std() > 5  # counts vary between users
    assert per_user.mean() == pytest.approx(SMALL.mean_interactions, rel=0.25)


def test_rows_ordered_by_user_then_time(data: RawData) -> None:
    inter = data.interactions
    assert inter["user_id"].is_monotonic_increasing
    same_user = inter["user_id"].eq(inter["user_id"].shift(-1))
    assert (inter["timestamp"].shift(-1)[same_user] > inter["timestamp"][same_user]).all()
    first = inter.groupby("user_id")["timestamp"].min()
    assert first.nunique() > 0.95 * len(first)


def test_popularity_is_long_tailed_and_driven_by_popularity_weight(data: RawData) -> None:
    def gini(d: RawData) -> float:
        counts = d.interactions["item_id"].value_counts().reindex(d.items["item_id"], fill_value=0)
        x = np.sort(counts.to_numpy(dtype=float))
        n = len(x)
        return float(2 * np.sum(np.arange(1, n + 1) * x) / (n * x.sum()) - (n + 1) / n)

    assert gini(data) > 0.3
    assert data.stats["item_popularity_gini"] == pytest.approx(gini(data), abs=1e-3)
    flat = generate(replace(SMALL, popularity_weight=0.0), seed=7)
    assert gini(flat) < gini(data) - 0.1


def _segment_share(d: RawData) -> tuple[float, float]:
    """Share of interactions in the user's segment's category, and the share expected by chance."""
    cat = _category_index(d.items)
    seg = d.users.set_index("user_id")["segment"].str.removeprefix("seg_").astype(int)
    inter = d.interactions
    user_seg = inter["user_id"].map(seg)
    hit = float((inter["item_id"].map(cat) == user_seg).mean())
    chance = float(user_seg.map(cat.value_counts(normalize=True)).mean())
    return hit, chance


def test_interactions_concentrate_on_the_segment_category(data: RawData) -> None:
    hit, chance = _segment_share(data)
    assert hit > 2 * chance
    hit0, chance0 = _segment_share(generate(replace(SMALL, category_weight=0.0), seed=7))
    assert hit0 < 1.3 * chance0  # without category factors the segment tells nothing


def test_ratings_carry_signal(data: RawData) -> None:
    cat = _category_index(data.items)
    seg = data.users.set_index("user_id")["segment"].str.removeprefix("seg_").astype(int)
    inter = data.interactions
    in_segment = inter["item_id"].map(cat) == inter["user_id"].map(seg)
    assert inter["rating"][in_segment].mean() > inter["rating"][~in_segment].mean() + 0.3


def test_successor_follows_previous_item(data: RawData) -> None:
    hit, baseline = _successor_hit_rate(data, 1), _successor_hit_rate(data, 2)
    assert hit > 0.15 and hit > 5 * baseline
    assert hit >= data.stats["share_sequential"] - 1e-9

    off = generate(replace(SMALL, sequence_prob=0.0), seed=7)
    assert off.stats["share_sequential"] == 0.0
    hit0, baseline0 = _successor_hit_rate(off, 1), _successor_hit_rate(off, 2)
    assert hit0 < 0.05 and hit0 < 2 * baseline0 + 0.01


@pytest.mark.parametrize(
    "change",
    [
        {"min_interactions": 101},
        {"temperature": 0.0},
        {"sequence_prob": 1.5},
        {"n_items": 1},
        {"chunk_users": 0},
    ],
)
def test_bad_spec_is_a_config_error(change: dict) -> None:
    with pytest.raises(ConfigError, match="dataset.synthetic"):
        generate(replace(SMALL, **change), seed=0)
