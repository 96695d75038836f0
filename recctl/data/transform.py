"""The pure part of preparation: raw rows -> deduplicated, filtered, indexed and split tables.

Kept apart from publishing (prepare.py) so it can be tested and benchmarked on frames in memory:
nothing here reads or writes a file, and the same rows and settings always give the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from recctl import console
from recctl.data.raw import RawData
from recctl.errors import ConfigError, DataError


def build_tables(raw: RawData, d: DictConfig, seed: int) -> tuple[dict[str, pd.DataFrame], dict]:
    """Deduplicate, convert to implicit, k-core filter, index and split. Pure: no files."""
    inter = raw.interactions.reset_index(drop=True)
    stats: dict[str, Any] = {"raw_interactions": len(inter)}
    if len(inter) == 0:
        raise DataError("the interactions table is empty")
    # Ids become integer codes once (first-appearance order); every later step works on integers,
    # which is most of what makes prepare run at ~1 M interactions/s (BENCHMARKS.md, section 11).
    u_codes, u_uniques = pd.factorize(inter["user_id"])
    i_codes, i_uniques = pd.factorize(inter["item_id"])
    inter = inter.assign(
        row=np.arange(len(inter), dtype=np.int64),
        u_code=u_codes.astype(np.int64),
        i_code=i_codes.astype(np.int64),
    )
    pair_key = pd.Series(inter["u_code"].to_numpy() * max(len(i_uniques), 1) + inter["i_code"].to_numpy())
    repeat = pair_key.duplicated(keep="first").to_numpy()
    stats["duplicate_rows"] = int(repeat.sum())
    if stats["duplicate_rows"]:
        n_dup = stats["duplicate_rows"]
        row = int(np.flatnonzero(repeat)[0])
        user, item = inter["user_id"].iat[row], inter["item_id"].iat[row]
        if d.duplicates == "error":
            first = int(np.flatnonzero(pair_key.to_numpy() == pair_key.iat[row])[0])
            raise DataError(
                f"{_locate(raw, row)}: duplicate (user, item) row: user {user!r}, item {item!r} first at "
                f"{_locate(raw, first)}; {n_dup} duplicate row{'s' if n_dup > 1 else ''} in all "
                "(dataset.duplicates=error; keep_first, keep_last or keep_all accept them)"
            )
        if d.duplicates == "keep_first":
            inter = inter[~repeat]
        elif d.duplicates == "keep_last":
            inter = inter[~pair_key.duplicated(keep="last").to_numpy()]
        kept = {"keep_first": "kept the first of each", "keep_last": "kept the last of each"}
        console.warn(
            f"{n_dup} duplicate (user, item) row{'s' if n_dup > 1 else ''} (e.g. user {user!r}, item {item!r}): "
            f"{kept.get(d.duplicates, 'kept them all')} (dataset.duplicates={d.duplicates})"
        )
    users_before = _distinct(inter["u_code"])

    if d.rating_threshold is not None:
        if not raw.has_ratings:
            raise ConfigError("dataset.rating_threshold is set but the data has no rating column")
        inter = inter[inter["rating"] >= d.rating_threshold]
        stats["after_threshold"] = len(inter)
        if len(inter) == 0:
            raise DataError(f"no interactions have rating >= {d.rating_threshold} (dataset.rating_threshold)")

    if d.label_threshold is not None and not raw.has_ratings:
        raise ConfigError("dataset.label_threshold is set but the data has no rating column")

    inter = _kcore(inter, d.min_user_interactions, d.min_item_interactions)
    filters = ", ".join(
        f"dataset.{key}={d.get(key)}"
        for key in ("rating_threshold", "min_user_interactions", "min_item_interactions")
        if d.get(key) not in (None, 0)
    )
    if len(inter) == 0:
        raise DataError(f"every user was filtered out ({filters}): no interactions are left")
    dropped = users_before - _distinct(inter["u_code"])
    if dropped:
        console.warn(
            f"{dropped} of {users_before} users have no interactions left after {filters}: they are left out"
        )

    user_ids, user_of_code = _index_ids(inter["u_code"].to_numpy(), u_uniques)
    item_ids, item_of_code = _index_ids(inter["i_code"].to_numpy(), i_uniques)
    frame = pd.DataFrame(
        {
            "user": user_of_code[inter["u_code"].to_numpy()],
            "item": item_of_code[inter["i_code"].to_numpy()],
            "rating": inter["rating"].to_numpy(np.float32),
            "timestamp": inter["timestamp"].to_numpy(np.int64),
            "row": inter["row"].to_numpy(np.int64),
        }
    )
    # Binary labels for the CTR task: every row kept, positive when rating >= label_threshold
    # (without a label threshold every interaction is a positive).
    if d.label_threshold is not None:
        frame["label"] = (frame["rating"].to_numpy() >= d.label_threshold).astype(np.int8)
    else:
        frame["label"] = np.ones(len(frame), np.int8)
    if d.split == "time" and not raw.has_timestamps:
        raise DataError(f"dataset.split=time cuts on timestamps: the {d.name} interactions have none")
    if d.split in ("loo", "temporal") and not raw.has_timestamps:
        console.warn(
            f"dataset.split={d.split} without timestamps: users' interactions are ordered by file row"
        )
    tie = _tie_order(inter, u_uniques, i_uniques, d.ties if raw.has_timestamps else "row")
    order = np.lexsort(
        (frame["row"].to_numpy(), tie, frame["timestamp"].to_numpy(), frame["user"].to_numpy())
    )
    frame = frame.iloc[order].reset_index(drop=True)  # each user's rows in time order (sequence models)
    if raw.has_timestamps and d.ties == "row":
        _warn_if_ties_follow_item_ids(frame, d.name)
    cutoffs = d.get("time_cutoffs")
    cold = SplitContext(
        float(d.get("cold_share", 0.1)), user_ids, item_ids, tuple(cutoffs) if cutoffs is not None else None
    )
    part = split_assignments(frame, d.split, list(d.split_ratio), seed, cold)
    tables = {
        name: frame[part == code].reset_index(drop=True)
        for code, name in enumerate(("train", "valid", "test"))
    }

    users = pd.DataFrame({"user": np.arange(len(user_ids), dtype=np.int32), "user_id": user_ids})
    items = pd.DataFrame({"item": np.arange(len(item_ids), dtype=np.int32), "item_id": item_ids})
    features: dict[str, Any] = {}
    users, features["user"] = _encode_features(users, raw.users, "user_id")
    items, features["item"] = _encode_features(items, raw.items, "item_id")
    tables["users"], tables["items"] = users, items

    n_inter = len(frame)
    stats.update(
        n_users=len(user_ids),
        n_items=len(item_ids),
        n_interactions=n_inter,
        density=n_inter / (len(user_ids) * len(item_ids)),
        split=d.split,
        train=len(tables["train"]),
        valid=len(tables["valid"]),
        test=len(tables["test"]),
        valid_users=int(tables["valid"]["user"].nunique()),
        test_users=int(tables["test"]["user"].nunique()),
        **_cold_stats(tables, d.split, cold.share),
        has_timestamps=raw.has_timestamps,
        ties=d.ties if raw.has_timestamps else None,
        tied_targets=_tied_targets(frame, part) if raw.has_timestamps else None,
        has_ratings=raw.has_ratings,
        label_threshold=d.label_threshold,
        positive_rate=float(frame["label"].mean()),
        features=features,
        source_stats=raw.stats,
    )
    return tables, stats


def _locate(raw: RawData, row: int) -> str:
    """Where a 0-based interactions row is in the source ("ratings.csv, line 7"), for messages."""
    return raw.locate(row) if raw.locate is not None else f"interaction row {row + 1}"


@dataclass(frozen=True)
class SplitContext:
    """What a split needs beyond the rows: for the cold-start splits `dataset.cold_share` and the
    original ids (by index), so the users or items held out depend on the ids and the seed, not on
    the file's order; for `time`, `dataset.time_cutoffs`."""

    share: float = 0.1
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    time_cutoffs: tuple[float, float] | None = None


def split_assignments(
    frame: pd.DataFrame, split: str, ratio: list[float], seed: int, cold: SplitContext | None = None
) -> np.ndarray:
    """0/1/2 (train/valid/test) per row, as the `dataset.split` named by `split` assigns them."""
    return SPLITTERS[split](frame, ratio, seed, cold or SplitContext())


def _per_user_tail(frame: pd.DataFrame, order: np.ndarray, held_out) -> np.ndarray:
    """Walk each user's rows in `order`: `held_out(n)` gives (n_valid, n_test) for a user with n rows;
    the last n_test rows are test and the n_valid before them valid."""
    users = frame["user"].to_numpy()
    sorted_users = users[order]
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[sorted_users]
    n = counts[sorted_users]
    from_end = n - 1 - position
    n_valid, n_test = held_out(n)
    part_sorted = np.where(from_end < n_test, 2, np.where(from_end < n_test + n_valid, 1, 0)).astype(np.int8)
    part = np.empty(len(frame), dtype=np.int8)
    part[order] = part_sorted
    return part


def _time_order(frame: pd.DataFrame) -> np.ndarray:
    """Each user's rows by timestamp; rows with the same timestamp keep the frame's order (a stable
    sort), which build_tables has set by dataset.ties."""
    return np.lexsort((frame["timestamp"].to_numpy(), frame["user"].to_numpy()))


def _tie_order(inter: pd.DataFrame, u_uniques, i_uniques, rule: str) -> np.ndarray:
    """A sort key that orders rows sharing (user, timestamp): the file row ("row"), or a hash of
    the original user and item ids ("hash"), the same whatever the file's row order, the seed or the
    other rows, and unrelated to the order of item ids."""
    if rule == "row":
        return inter["row"].to_numpy()
    user_hash = pd.util.hash_array(np.asarray(u_uniques, dtype=object).astype(str))
    item_hash = pd.util.hash_array(np.asarray(i_uniques, dtype=object).astype(str))
    mixed = user_hash[inter["u_code"].to_numpy()] ^ (
        item_hash[inter["i_code"].to_numpy()] * np.uint64(0x9E3779B97F4A7C15)
    )
    return pd.util.hash_array(mixed)


def _tied_pairs(frame: pd.DataFrame) -> np.ndarray:
    """For each row of a time-ordered frame: whether it has the user and timestamp of the row before."""
    users, stamps = frame["user"].to_numpy(), frame["timestamp"].to_numpy()
    tied = np.zeros(len(frame), dtype=bool)
    tied[1:] = (users[1:] == users[:-1]) & (stamps[1:] == stamps[:-1])
    return tied


def _tied_targets(frame: pd.DataFrame, part: np.ndarray) -> dict[str, float | None]:
    """The share of valid and test rows whose timestamp equals that of the user's row before them:
    for those, only the tie rule decided which row is held out."""
    tied = _tied_pairs(frame)
    return {
        split: round(float(tied[part == code].mean()), 4) if (part == code).any() else None
        for code, split in ((1, "valid"), (2, "test"))
    }


def _warn_if_ties_follow_item_ids(frame: pd.DataFrame, name: str) -> None:
    """Under dataset.ties=row, a file sorted by user then item (or timestamps at day resolution in
    such a file) makes the held-out row among tied ones follow the item id, which a sequence model
    can learn and no production log repeats."""
    tied = _tied_pairs(frame)
    if tied.sum() < 50:
        return
    items = frame["item"].to_numpy()
    rising = float((items[1:][tied[1:]] > items[:-1][tied[1:]]).mean())
    if 0.1 < rising < 0.9:
        return
    console.warn(
        f"dataset {name}: {max(rising, 1 - rising):.0%} of {int(tied.sum()):,} rows that share a user and "
        f"timestamp are in {'ascending' if rising >= 0.9 else 'descending'} item-id order in the file, so "
        "with dataset.ties=row the held-out rows follow item ids; dataset.ties=hash orders ties apart from the file"
    )


def _last_one_each(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out: one valid and one test row for users with 3 or more; the rest stay in train."""
    one = np.where(n >= 3, 1, 0)
    return one, one


def _shares(n: np.ndarray, ratio: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Rows per user for valid and test: the ratio's shares, at least one each where the share is
    positive, and always at least one row left for training; users with fewer than 3 rows keep all."""

    def share(r: float) -> np.ndarray:
        return np.where(n >= 3, np.maximum(1, np.round(n * r)), 0).astype(np.int64) if r > 0 else 0 * n

    n_test, n_valid = share(ratio[2]), share(ratio[1])
    too_many = n_test + n_valid >= n
    n_valid = np.where(too_many, np.minimum(n_valid, 1), n_valid)
    n_test = np.where(too_many & (n_test + n_valid >= n), np.minimum(n_test, 1), n_test)
    return n_valid, n_test


def _split_loo(frame: pd.DataFrame, ratio: list[float], seed: int, cold: SplitContext) -> np.ndarray:
    """Leave-one-out by time: per user, the last interaction is test and the second-last valid."""
    return _per_user_tail(frame, _time_order(frame), _last_one_each)


def _split_temporal(frame: pd.DataFrame, ratio: list[float], seed: int, cold: SplitContext) -> np.ndarray:
    """Per user, in time order: the last `ratio[2]` share test and the `ratio[1]` share before it valid."""
    return _per_user_tail(frame, _time_order(frame), lambda n: _shares(n, ratio))


def _split_random(frame: pd.DataFrame, ratio: list[float], seed: int, cold: SplitContext) -> np.ndarray:
    """The same per-user shares over a seeded random order."""
    key = np.random.default_rng(seed).random(len(frame))
    return _per_user_tail(frame, np.lexsort((key, frame["user"].to_numpy())), lambda n: _shares(n, ratio))


def held_out_ids(ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """0/1/2 (kept/valid/test) per id: the ids are ordered by a hash of (seed, original id), the
    first round(share x n) go to test and the next as many to validation. The choice depends only on
    the ids and the seed: the same in any file order."""
    ids = np.asarray(ids, dtype=object).astype(str)
    keys = pd.util.hash_array(np.array([f"{seed}:{i}" for i in ids], dtype=object))
    order = np.lexsort((ids, keys))
    n_out = max(1, int(round(share * len(ids)))) if share > 0 else 0
    n_out = min(n_out, max((len(ids) - 1) // 2, 0))  # always something left to train on
    part = np.zeros(len(ids), dtype=np.int8)
    part[order[:n_out]] = 2
    part[order[n_out : 2 * n_out]] = 1
    return part


def _split_time(frame: pd.DataFrame, ratio: list[float], seed: int, cold: SplitContext) -> np.ndarray:
    """One clock for everyone (dataset.split=time): rows before `time_cutoffs[0]` train, from it to
    `time_cutoffs[1]` valid, from `time_cutoffs[1]` on test. A user may have rows in valid or test
    only (a new user that week); the replay of real time, not a per-user holdout."""
    valid_from, test_from = cold.time_cutoffs
    t = frame["timestamp"].to_numpy(dtype=np.float64)
    return np.where(t < valid_from, 0, np.where(t < test_from, 1, 2)).astype(np.int8)


def _split_cold_users(frame: pd.DataFrame, ratio: list[float], seed: int, cold: SplitContext) -> np.ndarray:
    """A `cold_share` of users in test and as many in validation, with every one of their rows:
    training has none of their interactions (dataset.split=cold_users)."""
    return held_out_ids(cold.user_ids, cold.share, seed)[frame["user"].to_numpy()]


def _split_cold_items(frame: pd.DataFrame, ratio: list[float], seed: int, cold: SplitContext) -> np.ndarray:
    """A `cold_share` of items in test and as many in validation, with every row that has them:
    training has none of their interactions (dataset.split=cold_items)."""
    return held_out_ids(cold.item_ids, cold.share, seed)[frame["item"].to_numpy()]


def _cold_stats(tables: dict[str, pd.DataFrame], split: str, share: float) -> dict[str, Any]:
    """How many users or items a cold split held out of training (stats.json `cold`)."""
    side = COLD_SPLITS.get(split)
    if side is None:
        return {}
    column = "user" if side == "users" else "item"
    held = {name: int(tables[name][column].nunique()) for name in ("valid", "test")}
    return {"cold": {"side": side, "share": share, **held}}


# dataset.split -> how it assigns rows (config.SPLITS lists the same names for validation). A new
# protocol is one function and one line here.
SPLITTERS = {
    "loo": _split_loo,
    "temporal": _split_temporal,
    "random": _split_random,
    "time": _split_time,
    "cold_users": _split_cold_users,
    "cold_items": _split_cold_items,
}
# The cold-start splits and what they hold out of training (docs/evaluation.md).
COLD_SPLITS = {"cold_users": "users", "cold_items": "items"}


def _kcore(inter: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    if min_user <= 1 and min_item <= 1:
        return inter
    while True:
        before = len(inter)
        for column, least in (("i_code", min_item), ("u_code", min_user)):
            if least > 1:
                codes = inter[column].to_numpy()
                inter = inter[np.bincount(codes)[codes] >= least]
        if len(inter) == before or len(inter) == 0:
            return inter


def _distinct(codes: pd.Series) -> int:
    return int(np.count_nonzero(np.bincount(codes.to_numpy()))) if len(codes) else 0


def _index_ids(codes: np.ndarray, uniques) -> tuple[np.ndarray, np.ndarray]:
    """(the ids still present, in natural order; code -> their index, -1 for ids filtered out)."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(uniques)))
    ids = _natural_sorted(np.asarray(uniques)[present])
    index_of_code = np.full(len(uniques), -1, np.int32)
    index_of_code[pd.Index(np.asarray(uniques, dtype=object).astype(str)).get_indexer(ids)] = np.arange(
        len(ids), dtype=np.int32
    )
    return ids, index_of_code


def _natural_sorted(values: np.ndarray) -> np.ndarray:
    """Numeric ids in numeric order ("2" before "10"), others lexicographically."""
    values = np.asarray(values, dtype=object)
    as_str = pd.Series(values, dtype="string")
    if as_str.str.fullmatch(r"\d{1,18}").all():
        return values[np.argsort(as_str.astype("int64").to_numpy(), kind="stable")].astype(str)
    return np.sort(values.astype(str))


def _encode_features(
    base: pd.DataFrame, table: pd.DataFrame | None, id_col: str
) -> tuple[pd.DataFrame, dict]:
    """Categorical columns -> int codes (0 = unknown), numeric columns -> float32 (standardised unless 0/1)."""
    spec: dict[str, Any] = {"categorical": {}, "numeric": {}}
    if table is None or len(table) == 0:
        return base, spec
    table = table.drop_duplicates(subset=[id_col], keep="first").set_index(id_col)
    table.index = table.index.astype(str)
    aligned = table.reindex(base[id_col].to_numpy())
    out = base.copy()
    if "title" in aligned.columns:
        out["title"] = aligned["title"].fillna("").astype(str).to_numpy()
    for col in aligned.columns:
        if col == "title":
            continue
        values = aligned[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = arr[np.isfinite(arr)]
            binary = finite.size > 0 and np.isin(finite, (0.0, 1.0)).all()
            mean = 0.0 if binary or finite.size == 0 else float(finite.mean())
            std = 1.0 if binary or finite.size == 0 else float(finite.std() or 1.0)
            out[f"num__{col}"] = np.nan_to_num((arr - mean) / std, nan=0.0).astype(np.float32)
            spec["numeric"][col] = {"mean": mean, "std": std}
        else:
            strings = values.astype("string")
            vocab = sorted(strings.dropna().unique().tolist())
            codes = pd.Series(np.arange(1, len(vocab) + 1, dtype=np.int32), index=vocab)
            out[f"cat__{col}"] = codes.reindex(strings.fillna("\0").to_numpy()).fillna(0).to_numpy(np.int32)
            spec["categorical"][col] = vocab
    return out, spec
