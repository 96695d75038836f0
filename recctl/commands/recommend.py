"""recctl recommend: top-K items for users (original ids), seen items excluded, titles where known.

`user=ID`, `users_file=PATH` or `users=all` (every user of the run) pick the users; `output=PATH`
(.parquet) writes their top-K as rows `user_id, rank, item_id, score` instead of printing them
(users=all needs it). Users are ranked in batches through the evaluation scorer, so one user and
every user get the same items, order and scores."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recctl import console
from recctl.config import checked_k
from recctl.errors import ConfigError, DataError, RunNotFoundError, output_error

ALL = "all"
COLUMNS = ("user_id", "rank", "item_id", "score")


@dataclass
class Ranked:
    """One batch of ranked users: their ids, and for each their top-K item ids and scores."""

    users: np.ndarray  # str [U]
    items: np.ndarray  # str [U, k], best first
    scores: np.ndarray  # float32 [U, k]
    because: list | None = None  # explain=true: [user][rank] -> reasons (recctl/explain.py)
    explained_by: str | None = None  # how the reasons' weights were computed, in words


def run(cfg, result: dict) -> dict:
    k = checked_k(cfg)
    users = _requested_users(cfg)
    output = _checked_output(cfg, users)
    explain = _checked_explain(cfg, output)
    if cfg.get("export_dir"):
        if users is None:
            raise ConfigError(
                "users=all needs run=...: an export does not list its users (with export_dir, give user=ID "
                "or users_file=PATH)"
            )
        batches, titles = _from_export(Path(cfg.export_dir), users, k)
        result["export_dir"] = str(Path(cfg.export_dir).resolve())
    else:
        batches, titles = _from_run(cfg, users, k, result, explain)
    if output is not None:
        start = time.perf_counter()
        n_users, n_rows = _write_rows(output, batches)
        seconds = time.perf_counter() - start
        result.update(recommendations=None, output=str(output.resolve()), users=n_users, rows=n_rows)
        console.info(f"wrote the top-{k} of {n_users} users ({n_rows} rows) to {output} in {seconds:.2f} s")
        return result
    ranked = [entry for batch in batches for entry in _entries(batch, titles)]
    result["recommendations"] = ranked
    for entry in ranked:
        console.info(f"user {entry['user']}:")
        if entry.get("explained_by"):
            console.info(f"  (because: {entry['explained_by']})")
        for rank, item in enumerate(entry["items"], 1):
            title = f"  {item['title']}" if item.get("title") else ""
            console.info(f"  {rank:>3}. {item['item_id']}{title}  ({item['score']:.4f})")
            if "because" in item:
                from recctl.explain import because_text

                console.info(f"       {because_text(item['because'])}")
    return result


def _requested_users(cfg) -> list[str] | None:
    """The requested user ids; None for users=all."""
    given = [key for key in ("user", "users_file", "users") if cfg.get(key) is not None]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(f'{key}=' for key in given)} exclude each other: give one of user=ID, "
            "users_file=PATH or users=all"
        )
    if cfg.get("users") is not None:
        if str(cfg.users) != ALL:
            raise ConfigError(f"users must be 'all' (every user of the run). Received: {cfg.users!r}")
        return None
    if cfg.get("users_file"):
        path = Path(cfg.users_file)
        if not path.is_file():
            raise DataError(f"{path}: file not found (users_file)")
        users = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not users:
            raise DataError(f"{path}: no user ids in the file")
        return users
    if cfg.get("user") is None:
        raise ConfigError("recommend needs user=ID, users_file=PATH or users=all")
    return [str(cfg.user)]


def _checked_output(cfg, users: list[str] | None) -> Path | None:
    """output= as a path that does not exist yet (checked before any model is loaded)."""
    value = cfg.get("output")
    if value is None or str(value) == "":
        if users is None:
            raise ConfigError("users=all writes every user's top-K to a file: give output=PATH.parquet")
        return None
    path = Path(str(value))
    if path.suffix != ".parquet":
        raise ConfigError(f"output must be a .parquet file. Received: {value!r}")
    if path.exists() or path.is_symlink():
        raise ConfigError(
            f"output={value}: the file exists; recommend never overwrites one (remove it or pick another path)"
        )
    return path


def _checked_explain(cfg, output: Path | None) -> bool:
    """explain=true needs the run's model and snapshot and prints its reasons (checked before any work)."""
    value = cfg.get("explain", False)
    if not isinstance(value, bool):
        raise ConfigError(f"explain must be true or false. Received: {value!r}")
    if value and cfg.get("export_dir"):
        raise ConfigError(
            "explain=true needs the run (run=...): an export holds no training history to explain from"
        )
    if value and output is not None:
        raise ConfigError(
            "explain=true prints each item's reasons: not with output= (the rows have no column for them)"
        )
    return value


def _from_run(cfg, users: list[str] | None, k: int, result: dict, explain: bool = False):
    """(batches of Ranked, item titles or None): the run's model through the evaluation scorer."""
    from recctl.evaluation.report import score_function
    from recctl.runs import open_finished_run

    loaded = open_finished_run(cfg, "recommend")
    snap = loaded.snapshot
    result.update(
        run_dir=str(loaded.path.resolve()),
        model=loaded.model_name,
        dataset={"name": snap.name, "fingerprint": snap.fingerprint},
    )
    if users is None:
        idx = np.arange(snap.n_users, dtype=np.int32)
    else:
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
    batch_size = loaded.model.scoring_batch_size(256)
    user_ids, item_ids = np.asarray(snap.user_ids).astype(str), np.asarray(snap.item_ids).astype(str)
    titles = snap.item_titles()
    titles = None if titles is None else dict(zip(item_ids, np.asarray(titles).astype(str), strict=True))
    batches = _ranked_batches(score_fn, idx, seen, k, batch_size, user_ids, item_ids)
    if explain:
        from recctl.explain import RunExplanations

        batches = RunExplanations(loaded.model, loaded.model_name, snap, seen, titles)(batches)
    return batches, titles


def _ranked_batches(score_fn, idx, seen, k, batch_size, user_ids, item_ids):
    """Batches of users ranked as evaluation ranks them (seen items masked, tf.math.top_k's tie
    rule); the scores reported are the model's own (unmasked) scores of the top-K items."""
    from recctl.evaluation.ranking import _mask_and_topk

    for start in range(0, len(idx), batch_size):
        batch = idx[start : start + batch_size]
        rows, items = seen.rows(batch)
        scores = np.asarray(score_fn(batch), np.float32)
        _, top = _mask_and_topk(scores, rows.astype(np.int32), items.astype(np.int32), k)
        top = top.numpy()
        yield Ranked(user_ids[batch], item_ids[top], np.take_along_axis(scores, top, axis=1))


def _from_export(folder: Path, users: list[str], k: int):
    import pandas as pd
    import tensorflow as tf

    if not (folder / "saved_model.pb").is_file():
        raise RunNotFoundError(f"export_dir={folder}: not a SavedModel export folder (no saved_model.pb)")
    served = tf.saved_model.load(str(folder)).signatures["serving_default"]
    out = served(user_id=tf.constant(users))
    titles = None
    if (folder / "items.parquet").is_file():
        items = pd.read_parquet(folder / "items.parquet")
        if "title" in items.columns:
            titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=True))
    ids = out["item_ids"].numpy()[:, :k].astype(str)
    return [Ranked(np.asarray(users, dtype=str), ids, out["scores"].numpy()[:, :k])], titles


def _entries(batch: Ranked, titles: dict | None) -> list[dict]:
    """The `recommendations` entries of --json: one per user, its items best first."""
    titles = titles or {}
    because = batch.because or [None] * len(batch.users)
    return [
        {
            "user": str(user),
            **({"explained_by": batch.explained_by} if batch.because is not None else {}),
            "items": [
                {
                    "item_id": str(i),
                    "score": float(s),
                    **({"title": titles[i]} if i in titles else {}),
                    **({"because": reasons[rank]} if reasons is not None else {}),
                }
                for rank, (i, s) in enumerate(zip(row, srow, strict=True))
            ],
        }
        for user, row, srow, reasons in zip(batch.users, batch.items, batch.scores, because, strict=True)
    ]


def _write_rows(path: Path, batches) -> tuple[int, int]:
    """Stream the batches into a Parquet file beside `path`, then link it into place: readers
    never see half a file, and a file that appeared meanwhile is not overwritten. (users, rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("user_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()), ("score", pa.float32())]
    )
    target = f"the recommendations {path}"
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    n_users = n_rows = 0
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(tmp, schema) as writer:
                for batch in batches:
                    n, k = batch.items.shape
                    table = pa.table(
                        {
                            "user_id": np.repeat(batch.users, k),
                            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
                            "item_id": batch.items.reshape(-1),
                            "score": batch.scores.reshape(-1).astype(np.float32),
                        },
                        schema=schema,
                    )
                    writer.write_table(table)
                    n_users, n_rows = n_users + n, n_rows + n * k
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            _link_into_place(tmp, path)
        except FileExistsError:
            raise ConfigError(
                f"output={path}: the file exists; recommend never overwrites one (remove it or pick another path)"
            ) from None
        except OSError as exc:
            raise output_error(exc, target, "output", path) or exc from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return n_users, n_rows


def _link_into_place(tmp: Path, path: Path) -> None:
    """Give the finished file its name unless that name exists (os.link refuses an existing one;
    on a file system without hard links, a check and a rename)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists() or path.is_symlink():
            raise FileExistsError(path) from None
        os.replace(tmp, path)
