"""Read a prepared snapshot: splits as index arrays, id maps, side features, masks for evaluation."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from recctl.errors import DataError

SPLITS = ("train", "valid", "test")


class CSR:
    """Per-user item lists (rows = user indexes): `indices[indptr[u]:indptr[u+1]]` are user u's items."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray):
        self.indptr = indptr
        self.indices = indices

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> CSR:
        order = np.argsort(users, kind="stable")
        counts = np.bincount(users, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, items[order].astype(np.int32))

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row position in `users`, item) pairs for a batch of users: vectorised, no Python loop."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        row = np.repeat(np.arange(len(users)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return row, self.indices[np.repeat(starts, lengths) + offsets]

    def latest(self, users: np.ndarray, length: int | None) -> np.ndarray:
        """Each user's last `length` items (all when None) as int32 [B, W], left-padded with -1,
        most recent last: the history that `Recommender.context_from_history` takes."""
        users = np.asarray(users, dtype=np.int64)
        rows, items = self.rows(users)
        counts = np.bincount(rows, minlength=len(users))
        width = int(counts.max(initial=0)) if length is None else int(length)
        from_end = np.cumsum(counts)[rows] - 1 - np.arange(len(rows))  # 0 = most recent
        keep = from_end < width
        out = np.full((len(users), width), -1, np.int32)
        out[rows[keep], width - 1 - from_end[keep]] = items[keep]
        return out


class Snapshot:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise DataError(f"{self.path}: not a dataset snapshot (no manifest.json)")
        self.manifest = json.loads(manifest.read_text())
        self.stats = json.loads((self.path / "stats.json").read_text())
        self.fingerprint: str = self.manifest["fingerprint"]
        self.name: str = self.manifest["dataset"]
        self.n_users: int = int(self.stats["n_users"])
        self.n_items: int = int(self.stats["n_items"])
        self._splits: dict[str, pd.DataFrame] = {}

    def verify(self) -> list[str]:
        """Check every file against the sha256 the manifest recorded when the snapshot was written.

        Returns the problems found (empty: intact). A snapshot from a recctl that recorded no
        digests yields one problem saying so, never a silent pass.
        """
        from recctl.artifacts import verify_digests

        digests = self.manifest.get("files")
        if not digests:
            return [f"{self.path}: the manifest records no file digests (prepared by an older recctl)"]
        return verify_digests(self.path, digests)

    def split(self, name: str) -> pd.DataFrame:
        if name not in self._splits:
            self._splits[name] = pd.read_parquet(self.path / f"{name}.parquet")
        return self._splits[name]

    def pairs(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        frame = self.split(name)
        return frame["user"].to_numpy(np.int32), frame["item"].to_numpy(np.int32)

    def labels(self, name: str) -> np.ndarray:
        """Binary labels of a split's rows (all 1 unless the snapshot has a label_threshold)."""
        return self.split(name)["label"].to_numpy(np.float32)

    def ratings(self, name: str) -> np.ndarray:
        """The rating of each of a split's rows (model.task=rating; see has_ratings)."""
        return self.split(name)["rating"].to_numpy(np.float32)

    @property
    def has_ratings(self) -> bool:
        """True when the source had a rating column (without one every rating is 1.0)."""
        return bool(self.stats.get("has_ratings"))

    @property
    def has_labels(self) -> bool:
        return self.stats.get("label_threshold") is not None

    def csr(self, *names: str) -> CSR:
        users = np.concatenate([self.pairs(n)[0] for n in names])
        items = np.concatenate([self.pairs(n)[1] for n in names])
        return CSR.from_pairs(users, items, self.n_users)

    def evaluation_digest(self, split: str, candidates: str = "full") -> str:
        """sha256 of what an evaluation of `split` ranks against, in original ids: the split's
        distinct (user, item) targets, the history masked for it, the catalogue and the candidate
        rule. Two runs with the same digest were scored on the same problem (recctl compare
        requires it)."""
        import hashlib

        def pairs_text(*names: str) -> bytes:
            users = np.concatenate([self.pairs(n)[0] for n in names])
            items = np.concatenate([self.pairs(n)[1] for n in names])
            text = np.unique(np.char.add(np.char.add(self.user_ids[users], "\t"), self.item_ids[items]))
            return "\n".join(text.tolist()).encode()

        masked = ("train",) if split == "valid" else ("train", "valid")
        digest = hashlib.sha256(pairs_text(split))
        digest.update(
            b"\0" + pairs_text(*masked) + b"\0" + "\n".join(sorted(self.item_ids.tolist())).encode()
        )
        if candidates != "full":  # full ranking keeps the digest of runs evaluated before the rule existed
            digest.update(b"\0" + candidates.encode())
        return digest.hexdigest()[:16]

    def history_for(self, split: str) -> CSR:
        """Items masked when ranking for `split`: train at validation, train + valid at test."""
        return self.csr("train") if split == "valid" else self.csr("train", "valid")

    @cached_property
    def users(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "users.parquet")

    @cached_property
    def items(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "items.parquet")

    @cached_property
    def user_ids(self) -> np.ndarray:
        return self.users["user_id"].to_numpy(dtype=object).astype(str)

    @cached_property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=object).astype(str)

    def item_titles(self) -> np.ndarray | None:
        return self.items["title"].to_numpy(dtype=object) if "title" in self.items.columns else None

    def side_features(self, who: str) -> tuple[np.ndarray, list[int], np.ndarray]:
        """(categorical codes [n, c] int32, vocabulary sizes incl. 0 = unknown, numeric [n, m] float32)."""
        table = self.users if who == "user" else self.items
        cat_cols = [c for c in table.columns if c.startswith("cat__")]
        num_cols = [c for c in table.columns if c.startswith("num__")]
        spec = self.stats["features"][who]["categorical"]
        vocab = [len(spec[c[5:]]) + 1 for c in cat_cols]
        cat = table[cat_cols].to_numpy(np.int32) if cat_cols else np.zeros((len(table), 0), np.int32)
        num = table[num_cols].to_numpy(np.float32) if num_cols else np.zeros((len(table), 0), np.float32)
        return cat, vocab, num

    def item_popularity(self) -> np.ndarray:
        return np.bincount(self.pairs("train")[1], minlength=self.n_items).astype(np.float32)

    @property
    def cold_side(self) -> str | None:
        """users or items on a cold-start split (dataset.split=cold_users / cold_items), else None."""
        return (self.stats.get("cold") or {}).get("side")

    def cold_candidates(self, split: str) -> np.ndarray | None:
        """The items ranked at `split` on dataset.split=cold_items: that split's cold items (each has
        all its interactions there); None on every other split (the whole catalogue)."""
        if self.cold_side != "items":
            return None
        return np.unique(self.pairs(split)[1])

    def split_description(self) -> str:
        """How the split was made, in words, for the protocol line of every task (evaluation/tasks.py):
        the split, the rule that ordered rows sharing a timestamp, and how many held-out rows it decided."""
        split = self.stats["split"]
        cold = self.stats.get("cold")
        if cold:
            seed = self.manifest.get("seed")
            return (
                f"{split}: {cold['test']} test and {cold['valid']} validation {cold['side']} "
                f"(dataset.cold_share={cold['share']} each, chosen by a hash of their ids and seed {seed}) "
                "held out of training with all their interactions"
            )
        if not self.stats.get("has_timestamps"):
            order = "by file row order"
        elif self.stats.get("ties") == "hash":
            order = "by time, ties by a hash of user and item ids"
        else:
            order = "by time, ties by original row order"
        how = {
            "loo": f"leave-one-out {order} (last interaction test, second-last valid)",
            "temporal": f"per-user temporal ratio split {order}",
            "random": "per-user random ratio split",
            "time": "one clock for every user (timestamps): train before {0}, validation from {0}, test from {1}; "
            "users new after a cutoff have no training history and count".format(
                *(self.manifest.get("config", {}).get("time_cutoffs") or ["?", "?"])
            ),
        }[split]
        tied = self.stats.get("tied_targets") or {}
        if split != "random" and any(tied.get(s) is not None for s in ("valid", "test")):
            shares = " and ".join(
                f"{tied[s]:.0%} of {s}" for s in ("test", "valid") if tied.get(s) is not None
            )
            how += f"; {shares} targets share their timestamp with the interaction before them"
        return how
