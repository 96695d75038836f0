"""Deterministic, offline generator of implicit-feedback recommender data.

The data must let a model beat a popularity ranking (so that a pipeline can be tested end to end
without downloads) while still looking like real logs: a long-tailed item popularity, users with
a few favourite categories, individual tastes that features cannot explain, and short-range
sequential structure (a "next episode" successor). Every random draw comes from a generator keyed
by ``(seed, stream, block)``, so the result depends only on the seed and the spec, and not on
``chunk_users``, which only bounds memory. See docs/synthetic-data.md for the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recctl.data.raw import RawData
from recctl.errors import ConfigError

__all__ = ["generate"]

USER_BLOCK = 64  # users per random stream: the unit of determinism, and the smallest chunk
_WORLD_STREAM, _USER_STREAM = 0, 1

_CENTROID_NORM = 1.3  # a match with a favourite category adds about (cw * 1.3)^2 to the logit
_NOISE_STD = 0.7  # individual dot products get variance (iw^2 * 0.7^2)^2 whatever latent_dim
_COUNT_SIGMA = 0.8  # lognormal spread of the per-user interaction count
_SECOND_FAVOURITE_PROB = 0.5  # share of users with two favourite categories
_PRIMARY_WEIGHT = (0.5, 0.8)  # weight of the first favourite when there are two
_SEGMENT_NOISE = 0.15  # share of users whose `segment` is a random category
_AGE_SIGNAL = 0.3  # share of users whose `age_group` follows their favourite category
_AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
_PRICE_BANDS = ("low", "mid", "high")
_PRICE_NOISE = 1.0  # noise added to the item factor that sets the price band

_BASE_TIME = 1_577_836_800  # 2020-01-01T00:00:00Z
_START_SPAN_S = 365 * 86_400  # users start anywhere in the first year
_GAP_MEDIAN_S = 6 * 3600.0  # median gap between two interactions
_GAP_SIGMA = 1.2
_SEQUENTIAL_GAP_FACTOR = 0.1  # binge: a successor follows ten times faster

_RATING_CENTER = 2.7  # rating = round(center + scale * z + noise * N(0, 1)), clipped to 1..5
_RATING_SCALE = 0.8  # z: the user's affinity to the item, standardised over all items
_RATING_NOISE = 0.6


@dataclass
class _World:
    """Everything about items, shared by all users."""

    category: np.ndarray  # (n_items,) int64, the true category
    centroids: np.ndarray  # (K, d) float32, one direction per category
    item_vec: np.ndarray  # (n_items, d) float32 = cw * centroid + iw * noise
    pop: np.ndarray  # (n_items,) float32, the popularity bias b_i (mean 0)
    successor: np.ndarray  # (n_items,) int64, next item id of the same category (cyclic)
    price_band: np.ndarray  # (n_items,) int64 index into _PRICE_BANDS


@dataclass
class _Users:
    """Per-user draws and per-user results of the item ranking, for one block or one chunk."""

    fav1: np.ndarray
    fav2: np.ndarray
    segment: np.ndarray
    age: np.ndarray
    vec: np.ndarray  # (n, d) float32
    counts: np.ndarray  # (n,) int64
    start: np.ndarray  # (n,) int64 first timestamp
    coins: np.ndarray  # (n, W) float32: step t follows the successor when coins < sequence_prob
    gaps: np.ndarray  # (n, W) float64 seconds before step t
    rating_noise: np.ndarray  # (n, W) float32
    ranking: np.ndarray  # (n, W) int64: items by decreasing Gumbel key, -1 padded
    aff_mean: np.ndarray  # (n,) mean of the user's affinity over all items (for ratings)
    aff_std: np.ndarray


@dataclass
class _VarianceSums:
    """Running sums of the category and individual logit parts over all (user, item) pairs."""

    n: int = 0
    cat: float = 0.0
    cat_sq: float = 0.0
    ind: float = 0.0
    ind_sq: float = 0.0

    def add(self, cat: np.ndarray, ind: np.ndarray) -> None:
        self.n += cat.size
        self.cat += float(cat.sum(dtype=np.float64))
        self.cat_sq += float(np.square(cat, dtype=np.float64).sum())
        self.ind += float(ind.sum(dtype=np.float64))
        self.ind_sq += float(np.square(ind, dtype=np.float64).sum())

    def variances(self) -> tuple[float, float]:
        cat = self.cat_sq / self.n - (self.cat / self.n) ** 2
        ind = self.ind_sq / self.n - (self.ind / self.n) ** 2
        return max(cat, 0.0), max(ind, 0.0)


@dataclass(frozen=True)
class _Params:
    """The spec, read once, typed and checked (the spec may be a DictConfig or a dataclass)."""

    n_users: int
    n_items: int
    mean_interactions: float
    min_interactions: int
    max_interactions: int
    n_categories: int  # effective: at most n_items, so that no category is empty
    latent_dim: int
    popularity_exponent: float
    popularity_weight: float
    category_weight: float
    individual_weight: float
    sequence_prob: float
    temperature: float
    chunk_users: int  # rounded to a multiple of USER_BLOCK

    @property
    def noise_scale(self) -> float:
        """Per-coordinate std of individual vectors: makes their dot product unit-variance for any d."""
        return _NOISE_STD * float(self.latent_dim) ** -0.25


def _params(spec: Any) -> _Params:
    def check(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise ConfigError(f"dataset.synthetic.{key} must be {rule}. Received: {value}")

    n_users, n_items = int(spec.n_users), int(spec.n_items)
    check(n_users >= 1, "n_users", ">= 1", n_users)
    check(n_items >= 2, "n_items", ">= 2", n_items)
    min_int = int(spec.min_interactions)
    check(1 <= min_int <= n_items // 2, "min_interactions", f"in [1, n_items // 2 = {n_items // 2}]", min_int)
    mean_int = float(spec.mean_interactions)
    check(mean_int > 0, "mean_interactions", "> 0", mean_int)
    check(int(spec.n_categories) >= 1, "n_categories", ">= 1", spec.n_categories)
    check(int(spec.latent_dim) >= 1, "latent_dim", ">= 1", spec.latent_dim)
    for key in ("popularity_exponent", "popularity_weight", "category_weight", "individual_weight"):
        check(float(getattr(spec, key)) >= 0, key, ">= 0", getattr(spec, key))
    check(0.0 <= float(spec.sequence_prob) <= 1.0, "sequence_prob", "in [0, 1]", spec.sequence_prob)
    check(float(spec.temperature) > 0, "temperature", "> 0", spec.temperature)
    check(int(spec.chunk_users) >= 1, "chunk_users", ">= 1", spec.chunk_users)
    return _Params(
        n_users=n_users,
        n_items=n_items,
        mean_interactions=mean_int,
        min_interactions=min_int,
        max_interactions=n_items // 2,
        n_categories=min(int(spec.n_categories), n_items),
        latent_dim=int(spec.latent_dim),
        popularity_exponent=float(spec.popularity_exponent),
        popularity_weight=float(spec.popularity_weight),
        category_weight=float(spec.category_weight),
        individual_weight=float(spec.individual_weight),
        sequence_prob=float(spec.sequence_prob),
        temperature=float(spec.temperature),
        chunk_users=max(USER_BLOCK, int(spec.chunk_users) // USER_BLOCK * USER_BLOCK),
    )


def generate(spec: Any, seed: int) -> RawData:
    """Generate interactions, user and item tables for `spec`; identical for the same seed and spec.

    Users are processed `chunk_users` at a time (rounded to a multiple of 64), so memory stays
    around chunk_users x n_items booleans plus 64 x n_items floats, whatever the number of users.
    """
    p = _params(spec)
    seed = int(seed)
    if seed < 0:
        raise ConfigError(f"seed must be >= 0 for the synthetic generator. Received: {seed}")
    world = _make_world(p, seed)
    var_sums = _VarianceSums()

    parts: list[tuple[np.ndarray, ...]] = []
    user_features: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, p.n_users, p.chunk_users):
        hi = min(lo + p.chunk_users, p.n_users)
        blocks = [
            _draw_block(p, seed, world, b // USER_BLOCK, min(USER_BLOCK, hi - b), var_sums)
            for b in range(lo, hi, USER_BLOCK)
        ]
        chunk = _concat_blocks(blocks)
        parts.append(_run_sequences(p, world, chunk, lo))
        user_features.append((chunk.segment, chunk.age))

    user_idx, item_idx, ts, rating, sequential, favourite = (
        np.concatenate(col) for col in zip(*parts, strict=True)
    )
    segment, age = (np.concatenate(col) for col in zip(*user_features, strict=True))
    stats = _stats(p, world, item_idx, rating, sequential, favourite, var_sums)
    return RawData(
        interactions=_interactions_frame(p, user_idx, item_idx, rating, ts),
        users=_users_frame(p, segment, age),
        items=_items_frame(p, world),
        files=[],
        has_timestamps=True,
        has_ratings=True,
        stats=stats,
    )


def _make_world(p: _Params, seed: int) -> _World:
    """Items: balanced random categories, Zipf popularity, latent = category centroid + noise."""
    rng = np.random.default_rng([seed, _WORLD_STREAM])
    n, k, d = p.n_items, p.n_categories, p.latent_dim
    category = rng.permutation(np.arange(n) % k)
    centroids = (rng.standard_normal((k, d)) * (_CENTROID_NORM / np.sqrt(d))).astype(np.float32)
    noise = rng.standard_normal((n, d)) * p.noise_scale
    item_vec = (p.category_weight * centroids[category] + p.individual_weight * noise).astype(np.float32)
    rank = rng.permutation(n) + 1  # popularity rank, independent of category and id
    pop = -p.popularity_weight * p.popularity_exponent * np.log(rank)
    pop = (pop - pop.mean()).astype(np.float32)

    # successor: the next item id of the same category, wrapping around ("next episode")
    order = np.argsort(category, kind="stable")
    cat_sorted = category[order]
    first = np.searchsorted(cat_sorted, cat_sorted, side="left")
    nxt = np.arange(1, n + 1)
    last = np.r_[cat_sorted[1:] != cat_sorted[:-1], True]
    nxt[last] = first[last]
    successor = np.empty(n, dtype=np.int64)
    successor[order] = order[nxt]

    # price band: a noisy tercile of the first individual factor, so it carries a little signal
    score = noise[:, 0] / p.noise_scale + _PRICE_NOISE * rng.standard_normal(n)
    price_band = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
    return _World(category, centroids, item_vec, pop, successor, price_band)


def _draw_block(p: _Params, seed: int, world: _World, block: int, n: int, var_sums: _VarianceSums) -> _Users:
    """Draw `n` users of one block from their own stream, and rank all items for each of them.

    The ranking is the Gumbel-top-k trick: sorting logits + Gumbel noise once gives a draw
    without replacement from the softmax, so the sequence step only walks down this list.
    """
    rng = np.random.default_rng([seed, _USER_STREAM, block])
    k, d = p.n_categories, p.latent_dim
    fav1 = rng.integers(k, size=n)
    two = (rng.random(n) < _SECOND_FAVOURITE_PROB) & (k > 1)
    fav2 = np.where(two, (fav1 + 1 + rng.integers(max(k - 1, 1), size=n)) % k, fav1)
    w1 = np.where(two, rng.uniform(*_PRIMARY_WEIGHT, size=n), 1.0)[:, None]
    mix = (w1 * world.centroids[fav1] + (1.0 - w1) * world.centroids[fav2]).astype(np.float32)
    noise = rng.standard_normal((n, d)) * p.noise_scale
    vec = (p.category_weight * mix + p.individual_weight * noise).astype(np.float32)
    segment = np.where(rng.random(n) < _SEGMENT_NOISE, rng.integers(k, size=n), fav1)
    age = np.where(
        rng.random(n) < _AGE_SIGNAL, fav1 % len(_AGE_GROUPS), rng.integers(len(_AGE_GROUPS), size=n)
    )

    mu = np.log(p.mean_interactions) - _COUNT_SIGMA**2 / 2  # lognormal with the requested mean
    counts = np.clip(np.rint(rng.lognormal(mu, _COUNT_SIGMA, size=n)), p.min_interactions, p.max_interactions)
    counts = counts.astype(np.int64)
    width = int(counts.max())
    start = _BASE_TIME + rng.integers(_START_SPAN_S, size=n)
    coins = rng.random((n, width), dtype=np.float32)
    gaps = rng.lognormal(np.log(_GAP_MEDIAN_S), _GAP_SIGMA, size=(n, width))
    rating_noise = rng.standard_normal((n, width), dtype=np.float32)

    # affinity s_ui = u.v / T; logit = s_ui + b_i; Gumbel key = logit - log(Exp(1))
    aff = (vec @ world.item_vec.T) / np.float32(p.temperature)
    cat = (p.category_weight**2 / p.temperature) * (mix @ world.centroids.T)[:, world.category]
    var_sums.add(cat, aff - cat)
    keys = rng.standard_exponential((n, p.n_items), dtype=np.float32)
    with np.errstate(divide="ignore"):
        np.log(keys, out=keys)
    np.subtract(aff + world.pop, keys, out=keys)
    top = np.argpartition(-keys, width - 1, axis=1)[:, :width]
    ranking = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
    return _Users(
        fav1, fav2, segment, age, vec, counts, start, coins, gaps, rating_noise,
        ranking, aff.mean(axis=1), aff.std(axis=1),
    )  # fmt: skip


def _concat_blocks(blocks: list[_Users]) -> _Users:
    """Stack blocks, padding the per-step arrays to the widest block (padding is never read)."""
    width = max(b.coins.shape[1] for b in blocks)

    def pad(a: np.ndarray, fill: float) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill) if a.shape[1] < width else a

    cat = np.concatenate
    return _Users(
        *(
            cat([getattr(b, f) for b in blocks])
            for f in ("fav1", "fav2", "segment", "age", "vec", "counts", "start")
        ),
        coins=cat([pad(b.coins, 1.0) for b in blocks]),
        gaps=cat([pad(b.gaps, 1.0) for b in blocks]),
        rating_noise=cat([pad(b.rating_noise, 0.0) for b in blocks]),
        ranking=cat([pad(b.ranking, -1) for b in blocks]),
        aff_mean=cat([b.aff_mean for b in blocks]),
        aff_std=cat([b.aff_std for b in blocks]),
    )


def _run_sequences(p: _Params, world: _World, u: _Users, lo: int) -> tuple[np.ndarray, ...]:
    """Build every user's sequence of one chunk, one position at a time, vectorised across users.

    At step t > 0, with probability sequence_prob the user takes the successor of the previous
    item if not yet consumed; otherwise the next not-yet-consumed item of their Gumbel ranking,
    which is a draw from the softmax of the logits over the items not yet consumed.
    """
    n, width = len(u.counts), u.coins.shape[1]
    order = np.argsort(-u.counts, kind="stable")  # longest first: active users are a prefix
    counts = u.counts[order]
    ranking, coins = u.ranking[order], u.coins[order]
    n_active = n - np.searchsorted(counts[::-1], np.arange(width), side="right")

    consumed = np.zeros((n, p.n_items), dtype=bool)
    ptr = np.zeros(n, dtype=np.int64)
    items = np.full((n, width), -1, dtype=np.int64)
    follows = np.zeros((n, width), dtype=bool)
    for t in range(width):
        a = int(n_active[t])
        rows = np.arange(a)
        pick = np.empty(a, dtype=np.int64)
        if t > 0 and p.sequence_prob > 0:
            cand = world.successor[items[:a, t - 1]]
            ok = (coins[:a, t] < p.sequence_prob) & ~consumed[rows, cand]
            pick[ok] = cand[ok]
            follows[:a, t] = ok
            r = np.flatnonzero(~ok)
        else:
            r = rows
        it = ranking[r, ptr[r]]
        bad = np.flatnonzero(consumed[r, it])
        while bad.size:  # skip ranked items already taken as successors (a few per user at most)
            rb = r[bad]
            ptr[rb] += 1
            it[bad] = ranking[rb, ptr[rb]]
            bad = bad[consumed[rb, it[bad]]]
        ptr[r] += 1
        pick[r] = it
        consumed[rows, pick] = True
        items[:a, t] = pick

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    items, follows = items[inverse], follows[inverse]
    valid = np.arange(width)[None, :] < u.counts[:, None]
    local = np.repeat(np.arange(n), u.counts)
    item_idx = items[valid]
    sequential = follows[valid]

    gaps = np.maximum(np.rint(np.where(follows, _SEQUENTIAL_GAP_FACTOR, 1.0) * u.gaps), 1).astype(np.int64)
    gaps[:, 0] = 0
    ts = (u.start[:, None] + np.cumsum(gaps, axis=1))[valid]

    aff = np.einsum("ij,ij->i", u.vec[local], world.item_vec[item_idx]) / p.temperature
    z = (aff - u.aff_mean[local]) / np.maximum(u.aff_std[local], 1e-6)
    raw = _RATING_CENTER + _RATING_SCALE * z + _RATING_NOISE * u.rating_noise[valid]
    rating = np.clip(np.rint(raw), 1, 5).astype(np.float64)

    cat = world.category[item_idx]
    favourite = (cat == u.fav1[local]) | (cat == u.fav2[local])
    return (lo + local).astype(np.int64), item_idx, ts, rating, sequential, favourite


def _gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = uniform, near 1 = all on one item)."""
    x = np.sort(counts.astype(np.float64))
    n, total = len(x), x.sum()
    if total == 0:
        return 0.0
    return float(2.0 * np.sum(np.arange(1, n + 1) * x) / (n * total) - (n + 1) / n)


def _stats(
    p: _Params,
    world: _World,
    item_idx: np.ndarray,
    rating: np.ndarray,
    sequential: np.ndarray,
    favourite: np.ndarray,
    var_sums: _VarianceSums,
) -> dict[str, Any]:
    """Plain-number statistics that show how much of the signal is popularity, features, individual."""
    var_pop = float(np.var(world.pop.astype(np.float64)))
    var_cat, var_ind = var_sums.variances()
    total = var_pop + var_cat + var_ind
    shares = [v / total if total > 0 else 1 / 3 for v in (var_pop, var_cat, var_ind)]
    n_int = len(item_idx)
    return {
        "n_users": p.n_users,
        "n_items": p.n_items,
        "n_interactions": int(n_int),
        "mean_interactions_per_user": round(n_int / p.n_users, 4),
        "item_popularity_gini": round(_gini(np.bincount(item_idx, minlength=p.n_items)), 4),
        "share_sequential": round(float(sequential.mean()), 4),
        "share_favourite_category": round(float(favourite.mean()), 4),
        "mean_rating": round(float(rating.mean()), 4),
        "logit_variance": round(total, 4),
        "variance_share_popularity": round(shares[0], 4),
        "variance_share_category": round(shares[1], 4),
        "variance_share_individual": round(shares[2], 4),
    }


def _ids(prefix: str, n: int) -> np.ndarray:
    """Zero-padded ids, so that sorting them as strings keeps the numeric order."""
    width = len(str(max(n - 1, 0)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _strings(values: np.ndarray) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"))


def _interactions_frame(
    p: _Params, user_idx: np.ndarray, item_idx: np.ndarray, rating: np.ndarray, ts: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": _strings(_ids("u", p.n_users)[user_idx]),
            "item_id": _strings(_ids("i", p.n_items)[item_idx]),
            "rating": rating.astype(np.float64),
            "timestamp": ts.astype(np.int64),
        }
    )


def _users_frame(p: _Params, segment: np.ndarray, age: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": _strings(_ids("u", p.n_users)),
            "segment": _strings(np.array([f"seg_{c}" for c in range(p.n_categories)], dtype=object)[segment]),
            "age_group": _strings(np.array(_AGE_GROUPS, dtype=object)[age]),
        }
    )


def _items_frame(p: _Params, w: _World) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": _strings(_ids("i", p.n_items)),
            "title": _strings(
                np.array([f"Item {i} (cat {c})" for i, c in enumerate(w.category)], dtype=object)
            ),
            "category": _strings(
                np.array([f"cat_{c}" for c in range(p.n_categories)], dtype=object)[w.category]
            ),
            "price_band": _strings(np.array(_PRICE_BANDS, dtype=object)[w.price_band]),
        }
    )
