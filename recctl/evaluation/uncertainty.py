"""How sure a figure is (issue #15): 95% bootstrap intervals over users, and paired intervals of
the model's lift over each baseline.

A metric averaged over 943 test users moves by several percent when other users happen to be
held out; a ranking of two models whose intervals overlap heavily says little. The bootstrap
resamples the evaluated users with replacement (`evaluation.bootstrap` times, seeded by the run's
seed) and takes the 2.5th and 97.5th percentiles of each resampled mean. The lift over a baseline
is paired: model and baseline are averaged over the *same* resampled users, so the user-to-user
spread they share cancels. Catalogue-level figures (coverage) and row-level ones (logloss, the CTR
task's AUC) have no per-user value and no interval.

Resamples are drawn as per-user counts (a bincount per resample) and applied as one matrix product
per chunk, so memory stays at chunk x users, whatever the number of metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
_CHUNK = 64  # resamples per matrix product


@dataclass(frozen=True)
class PerUser:
    """Per-user values of the metrics that average over users, in one order of users."""

    users: np.ndarray  # user indexes [n]
    values: dict[str, np.ndarray]  # metric -> [n]

    def __len__(self) -> int:
        return len(self.users)

    def aligned(self, other: PerUser) -> bool:
        return np.array_equal(self.users, other.users)


def resample_weights(n_users: int, resamples: int, seed: int):
    """Chunks of [chunk, n_users] counts: how often each user is drawn in each resample."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        draws = rng.integers(0, n_users, size=(size, n_users))
        yield np.stack([np.bincount(row, minlength=n_users) for row in draws]).astype(np.float64)


def _percentiles(samples: np.ndarray) -> list[float]:
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
    return [round(float(lo), 6), round(float(hi), 6)]


def bootstrap(
    model: PerUser, baselines: dict[str, PerUser], resamples: int, seed: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """({metric: [lo, hi]} of the model, {baseline: {metric: [lo, hi]}} of model / baseline)."""
    metrics = sorted(model.values)
    paired = {name: b for name, b in baselines.items() if b.aligned(model)}
    matrix = np.column_stack([model.values[m] for m in metrics]) if metrics else np.zeros((len(model), 0))
    base = {
        name: np.column_stack([b.values.get(m, np.full(len(b), np.nan)) for m in metrics])
        for name, b in paired.items()
    }
    means, ratios = [], {name: [] for name in paired}
    n = max(len(model), 1)
    for weights in resample_weights(len(model), resamples, seed):
        sample = weights @ matrix / n
        means.append(sample)
        for name, values in base.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios[name].append(sample / (weights @ values / n))
    if not means or not metrics:
        return {}, {name: {} for name in paired}
    means = np.concatenate(means)
    own = {m: _percentiles(means[:, j]) for j, m in enumerate(metrics)}
    lifts = {}
    for name, chunks in ratios.items():
        ratio = np.concatenate(chunks)
        ratio[~np.isfinite(ratio)] = np.nan
        lifts[name] = {
            m: _percentiles(ratio[:, j]) for j, m in enumerate(metrics) if np.isfinite(ratio[:, j]).any()
        }
    return own, lifts


SIGN_FLIPS = 10_000  # randomisations of the paired test: p-values down to 1e-4


def paired_difference(run: np.ndarray, base: np.ndarray, resamples: int, seed: int) -> dict:
    """Two runs' per-user values of one metric on the same users: the means, their difference with
    a 95% paired bootstrap interval, and a two-sided p-value from a sign-flip randomisation test
    (under "no difference" each user's difference is as likely negative as positive)."""
    diff = np.asarray(run, np.float64) - np.asarray(base, np.float64)
    n = len(diff)
    out = {"run": round(float(np.mean(run)), 6), "base": round(float(np.mean(base)), 6)}
    out["diff"] = round(float(diff.mean()), 6)
    means = [w @ diff / n for w in resample_weights(n, max(resamples, 1), seed)]
    out["ci"] = _percentiles(np.concatenate(means))
    rng = np.random.default_rng(seed + 1)
    observed, extreme = abs(diff.sum()), 0
    for start in range(0, SIGN_FLIPS, _CHUNK):
        signs = rng.integers(0, 2, size=(min(_CHUNK, SIGN_FLIPS - start), n)) * 2 - 1
        extreme += int((np.abs(signs @ diff) >= observed - 1e-12).sum())
    out["p_value"] = round((extreme + 1) / (SIGN_FLIPS + 1), 6)
    return out


COMPARISON_METHOD = (
    "per-user paired differences on the same users (same evaluation digest); 95% interval: "
    "bootstrap over users ({resamples} resamples, seed {seed}); p-value: two-sided sign-flip "
    f"randomisation test ({SIGN_FLIPS:,} flips)"
)
