"""Independent reference for the ml-100k popularity figures (no recctl import): see docs/evaluation.md.

python benchmarks/pop_reference.py [path/to/ml-100k]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def split(data: pd.DataFrame, tie_key) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ordered = data.iloc[np.lexsort((tie_key, data.t.to_numpy(), data.u.to_numpy()))].copy()
    ordered["from_end"] = ordered.groupby("u").cumcount(ascending=False)
    return ordered[ordered.from_end >= 2], ordered[ordered.from_end == 1], ordered[ordered.from_end == 0]


def ndcg_hr_at_10(counts: np.ndarray, train, valid, test, mask: bool = True) -> tuple[float, float]:
    counts = counts.astype(float).copy()
    counts[0] = -1  # ids start at 1
    order = np.argsort(-counts, kind="stable")  # ties: lower item id first
    seen: dict[int, set[int]] = {}
    if mask:
        for frame in (train, valid):
            for u, i in zip(frame.u, frame.i, strict=True):
                seen.setdefault(u, set()).add(i)
    ndcg, hr = [], []
    for u, i in zip(test.u, test.i, strict=True):
        top = [x for x in order[:400] if x not in seen.get(u, ())][:10]
        ndcg.append(1 / np.log2(top.index(i) + 2) if i in top else 0.0)
        hr.append(i in top)
    return float(np.mean(ndcg)), float(np.mean(hr))


def batch_counts(train, n: int, batch: int = 2048, epochs: int = 1, seed: int = 2020) -> np.ndarray:
    """RecBole Pop's counting: +1 per batch an item appears in (indexed assignment drops repeats)."""
    rng, counts, items = np.random.default_rng(seed), np.zeros(n), train.i.to_numpy()
    for _ in range(epochs):
        perm = rng.permutation(len(items))
        for start in range(0, len(items), batch):
            counts[np.unique(items[perm[start : start + batch]])] += 1
    return counts


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/ml-100k")
    data = pd.read_csv(root / "u.data", sep="\t", names=["u", "i", "r", "t"])
    row = np.arange(len(data))
    n = int(data.i.max()) + 1
    train, valid, test = split(data, row)
    true_counts = np.bincount(train.i, minlength=n)
    print(
        "true popularity, history masked:   ndcg@10=%.4f hr@10=%.4f"
        % ndcg_hr_at_10(true_counts, train, valid, test)
    )
    print(
        "true popularity, nothing masked:   ndcg@10=%.4f hr@10=%.4f"
        % ndcg_hr_at_10(true_counts, train, valid, test, mask=False)
    )
    print(
        "RecBole-style batch counts, 1 ep:  ndcg@10=%.4f hr@10=%.4f"
        % ndcg_hr_at_10(batch_counts(train, n), train, valid, test)
    )
    for name, key in (
        ("item id asc", data.i.to_numpy()),
        ("item id desc", -data.i.to_numpy()),
        ("reverse row", -row),
    ):
        tr, va, te = split(data, key)
        print(
            f"true popularity, ties by {name:<12} ndcg@10=%.4f hr@10=%.4f"
            % ndcg_hr_at_10(np.bincount(tr.i, minlength=n), tr, va, te)
        )


if __name__ == "__main__":
    main()
