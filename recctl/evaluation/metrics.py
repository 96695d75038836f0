"""Top-K ranking metrics, computed from each user's ranked top-K list and held-out target items.

Definitions (per user with at least one target T, then averaged over those users):
  hr@K        1 if any target is in the top K
  precision@K hits / K
  recall@K    hits / |T|
  ndcg@K      sum over hits at rank r (0-based) of 1/log2(r+2), divided by the ideal
              sum_{r < min(|T|, K)} 1/log2(r+2)
  mrr@K       1/(r+1) for the first hit at rank r, 0 without a hit
  map@K       sum over hits at rank r of precision@(r+1), divided by min(|T|, K)
  coverage@K  distinct items in all users' top K / number of items (a catalogue-level figure)
  f1@K        2 precision recall / (precision + recall) of the user, 0 without a hit
  novelty@K   mean self-information -log2(p_i) of the top K items, p_i = the share of training
              users who have item i (an item no one has counts as one user): how unexpected the
              recommended items are, whether or not they are hits (Zhou et al., PNAS 2010)
  auc         per target, the share of candidate items (not masked, not targets) scored below it
              (ties count half), averaged over targets of a user, then over users
Rating task (model.task=rating), over a split's rated rows: rmse = sqrt(mean((r - r_hat)^2)),
mae = mean(|r - r_hat|). Both are lower-is-better (LOWER_IS_BETTER), as is logloss.

keras-rs ships NDCG/MRR/MAP metrics, but they take dense [batch, list] relevance and score tensors;
over a whole catalogue that is n_items columns per user. Working from top-K indexes is exact for
these cut-off metrics and needs K columns instead (tests cross-check NDCG against keras-rs).
"""

from __future__ import annotations

import numpy as np

DEFAULT_NAMES = ("hr", "ndcg", "recall", "mrr", "precision", "map", "coverage")  # evaluation.metrics' default
NAMES = (*DEFAULT_NAMES, "f1", "novelty")
# Figures where smaller is better: early stopping, gate.max / gate.min_lift and the sweep direction
# follow this set (a lift is then the baseline's value divided by the model's).
LOWER_IS_BETTER = frozenset({"rmse", "mae", "logloss"})


def lower_is_better(metric: str) -> bool:
    return metric.split("@")[0] in LOWER_IS_BETTER


class RankingAccumulator:
    """Sums per-user metric values over batches of users; `result()` averages them. With
    `keep_per_user`, it also keeps each user's values (`per_user()`: the bootstrap's input)."""

    def __init__(
        self,
        ks: list[int],
        n_items: int,
        names: tuple[str, ...] | list[str] = DEFAULT_NAMES,
        keep_per_user: bool = False,
        item_information: np.ndarray | None = None,
    ):
        unknown = set(names) - set(NAMES)
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
        self.ks = sorted(set(int(k) for k in ks))
        self.n_items = n_items
        self.names = tuple(names)
        self.sums: dict[str, float] = {}
        self.users = 0
        self.seen_items = {k: np.zeros(n_items, dtype=bool) for k in self.ks}
        self.auc_sum = 0.0
        self.auc_users = 0
        self.kept: dict[str, list[np.ndarray]] | None = {} if keep_per_user else None
        if "novelty" in self.names and item_information is None:
            raise ValueError("novelty needs item_information (self-information of every item)")
        self.item_information = item_information

    def update(
        self, topk: np.ndarray, target_rows: np.ndarray, target_items: np.ndarray, n_rows: int
    ) -> None:
        """topk: [B, >=max K] ranked item indexes; targets: (row in batch, item) pairs."""
        n_targets = np.bincount(target_rows, minlength=n_rows)
        keep = n_targets > 0
        if not keep.any():
            return
        kmax = max(self.ks)
        top = topk[:, :kmax].astype(np.int64)
        rows = np.arange(n_rows, dtype=np.int64)[:, None]
        codes = rows * self.n_items + top
        target_codes = target_rows.astype(np.int64) * self.n_items + target_items.astype(np.int64)
        hit = np.isin(codes, target_codes)[keep]
        n_t = n_targets[keep].astype(np.float64)
        top = top[keep]
        discounts = 1.0 / np.log2(np.arange(kmax) + 2.0)
        ideal_cum = np.cumsum(discounts)
        self.users += int(keep.sum())
        for k in self.ks:
            h = hit[:, :k]
            n_hits = h.sum(axis=1)
            values = {
                "hr": (n_hits > 0).astype(np.float64),
                "precision": n_hits / k,
                "recall": n_hits / n_t,
            }
            dcg = (h * discounts[:k]).sum(axis=1)
            values["ndcg"] = dcg / ideal_cum[np.minimum(n_t, k).astype(np.int64) - 1]
            first = np.where(h.any(axis=1), h.argmax(axis=1), -1)
            values["mrr"] = np.where(first >= 0, 1.0 / np.maximum(first + 1.0, 1.0), 0.0)
            cum_hits = np.cumsum(h, axis=1)
            precision_at = cum_hits / np.arange(1, k + 1)
            values["map"] = (precision_at * h).sum(axis=1) / np.minimum(n_t, k)
            both = values["precision"] + values["recall"]
            values["f1"] = np.where(
                both > 0, 2 * values["precision"] * values["recall"] / np.maximum(both, 1e-12), 0.0
            )
            if self.item_information is not None:
                values["novelty"] = self.item_information[top[:, :k]].mean(axis=1)
            for name in self.names:
                if name == "coverage":
                    self.seen_items[k][top[:, :k].ravel()] = True
                    continue
                key = f"{name}@{k}"
                self.sums[key] = self.sums.get(key, 0.0) + float(values[name].sum())
                if self.kept is not None:
                    self.kept.setdefault(key, []).append(values[name])

    def update_auc(self, per_user_auc: np.ndarray) -> None:
        self.auc_sum += float(per_user_auc.sum())
        self.auc_users += len(per_user_auc)
        if self.kept is not None:
            self.kept.setdefault("auc", []).append(np.asarray(per_user_auc, np.float64))

    def per_user(self) -> dict[str, np.ndarray]:
        """{metric: [users]} in the order users were updated (users without targets left out)."""
        return {key: np.concatenate(parts) for key, parts in (self.kept or {}).items()}

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.ks:
            for name in self.names:
                key = f"{name}@{k}"
                if name == "coverage":
                    out[key] = float(self.seen_items[k].sum() / self.n_items)
                else:
                    out[key] = self.sums.get(key, 0.0) / self.users if self.users else 0.0
        if self.auc_users:
            out["auc"] = self.auc_sum / self.auc_users
        return out


def binary_logloss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(probabilities.astype(np.float64), eps, 1 - eps)
    y = labels.astype(np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def rating_errors(ratings: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of predicted ratings (float64 sums, so the figure does not depend on batching)."""
    error = np.asarray(predictions, np.float64).ravel() - np.asarray(ratings, np.float64).ravel()
    if error.size == 0:
        return {}
    return {"rmse": float(np.sqrt(np.mean(error * error))), "mae": float(np.mean(np.abs(error)))}


def binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC via the rank-sum formula (ties get their average rank)."""
    y = labels.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(average, counts)
    return ranks
