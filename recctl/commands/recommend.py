"""recctl recommend: top-K items for users (original ids), seen items excluded, titles where known."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recctl import console
from recctl.config import checked_k
from recctl.errors import ConfigError, DataError, RunNotFoundError


def run(cfg, result: dict) -> dict:
    k = checked_k(cfg)
    users = _requested_users(cfg)
    if cfg.get("export_dir"):
        ranked = _from_export(Path(cfg.export_dir), users, k)
        result["export_dir"] = str(Path(cfg.export_dir).resolve())
    else:
        ranked = _from_run(cfg, users, k, result)
    result["recommendations"] = ranked
    for entry in ranked:
        console.info(f"user {entry['user']}:")
        for rank, item in enumerate(entry["items"], 1):
            title = f"  {item['title']}" if item.get("title") else ""
            console.info(f"  {rank:>3}. {item['item_id']}{title}  ({item['score']:.4f})")
    return result


def _requested_users(cfg) -> list[str]:
    if cfg.get("users_file"):
        path = Path(cfg.users_file)
        if not path.is_file():
            raise DataError(f"{path}: file not found (users_file)")
        users = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not users:
            raise DataError(f"{path}: no user ids in the file")
        return users
    if cfg.get("user") is None:
        raise ConfigError("recommend needs user=ID or users_file=PATH")
    return [str(cfg.user)]


def _from_run(cfg, users: list[str], k: int, result: dict) -> list[dict]:
    from recctl.evaluation.ranking import rank_users
    from recctl.evaluation.report import score_function
    from recctl.runs import open_finished_run

    loaded = open_finished_run(cfg, "recommend")
    snap = loaded.snapshot
    result.update(
        run_dir=str(loaded.path.resolve()),
        model=loaded.model_name,
        dataset={"name": snap.name, "fingerprint": snap.fingerprint},
    )
    index = {u: i for i, u in enumerate(snap.user_ids)}
    unknown = [u for u in users if u not in index]
    if unknown:
        raise RunNotFoundError(
            f"unknown user id {unknown[0]!r} ({len(unknown)} unknown of {len(users)}): the run's dataset "
            f"{snap.name} has {snap.n_users} users, e.g. {', '.join(map(str, snap.user_ids[:3]))}"
        )
    idx = np.array([index[u] for u in users], dtype=np.int32)
    k = min(k, snap.n_items)
    seen = snap.csr("train", "valid", "test")
    score_fn = score_function(loaded.model, snap, "all")
    top = rank_users(score_fn, idx, seen, k, loaded.model.scoring_batch_size(256))
    scores = np.take_along_axis(np.asarray(score_fn(idx)), top, axis=1)
    titles = snap.item_titles()
    return [
        {
            "user": u,
            "items": [
                {
                    "item_id": str(snap.item_ids[i]),
                    "score": float(s),
                    **({"title": str(titles[i])} if titles is not None else {}),
                }
                for i, s in zip(row, srow, strict=True)
            ],
        }
        for u, row, srow in zip(users, top, scores, strict=True)
    ]


def _from_export(folder: Path, users: list[str], k: int) -> list[dict]:
    import pandas as pd
    import tensorflow as tf

    if not (folder / "saved_model.pb").is_file():
        raise RunNotFoundError(f"export_dir={folder}: not a SavedModel export folder (no saved_model.pb)")
    served = tf.saved_model.load(str(folder)).signatures["serving_default"]
    out = served(user_id=tf.constant(users))
    titles = {}
    if (folder / "items.parquet").is_file():
        items = pd.read_parquet(folder / "items.parquet")
        if "title" in items.columns:
            titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=True))
    return [
        {
            "user": u,
            "items": [
                {
                    "item_id": i.decode(),
                    "score": float(s),
                    **({"title": titles[i.decode()]} if i.decode() in titles else {}),
                }
                for i, s in zip(ids[:k], sc[:k], strict=True)
            ],
        }
        for u, ids, sc in zip(users, out["item_ids"].numpy(), out["scores"].numpy(), strict=True)
    ]
