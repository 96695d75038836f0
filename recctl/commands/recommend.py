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
    users, features = _requested_users(cfg)
    output = _checked_output(cfg, users)
    explain = _checked_explain(cfg, output)
    if cfg.get("export_dir"):
        if users is None:
            raise ConfigError(
                "users=all needs run=...: an export does not list its users (with export_dir, give user=ID "
                "or users_file=PATH)"
            )
        batches, titles = _from_export(Path(cfg.export_dir), users, k, features)
        result["export_dir"] = str(Path(cfg.export_dir).resolve())
    else:
        batches, titles = _from_run(cfg, users, k, result, explain, features)
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


def _requested_users(cfg) -> tuple[list[str] | None, dict[str, dict[str, str]]]:
    """(the requested user ids, None for users=all; user id -> raw feature values, for users the
    run may not know: `features.*` with user=, or the other columns of a users_file CSV)."""
    given = [key for key in ("user", "users_file", "users") if cfg.get(key) is not None]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(f'{key}=' for key in given)} exclude each other: give one of user=ID, "
            "users_file=PATH or users=all"
        )
    features = _features_node(cfg)
    if features and cfg.get("user") is None:
        raise ConfigError(
            "features.* describe the one user of user=ID; a users_file=PATH.csv carries features per user "
            "(a header, then the user id and the feature columns)"
        )
    if cfg.get("users") is not None:
        if str(cfg.users) != ALL:
            raise ConfigError(f"users must be 'all' (every user of the run). Received: {cfg.users!r}")
        return None, {}
    if cfg.get("users_file"):
        path = Path(cfg.users_file)
        if not path.is_file():
            raise DataError(f"{path}: file not found (users_file)")
        if path.suffix.lower() == ".csv":
            return _users_csv(path)
        users = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not users:
            raise DataError(f"{path}: no user ids in the file")
        return users, {}
    if cfg.get("user") is None:
        raise ConfigError("recommend needs user=ID, users_file=PATH or users=all")
    user = str(cfg.user)
    return [user], ({user: features} if features else {})


def _features_node(cfg) -> dict[str, str]:
    """`features.NAME=VALUE` as strings (a zip code keeps its leading zeros: Hydra reads 02139 as text)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    node = cfg.get("features")
    if node is None:
        return {}
    if not isinstance(node, DictConfig):
        raise ConfigError(f"features must be a group of features.NAME=VALUE settings. Received: {node!r}")
    values = {}
    for name, value in OmegaConf.to_container(node, resolve=True).items():
        if isinstance(value, (dict, list, DictConfig, ListConfig)):
            raise ConfigError(f"features.{name} must be one value. Received: {value!r}")
        values[str(name)] = "" if value is None else str(value)
    return values


def _users_csv(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """A users_file CSV: a header, then per line the user id (first column) and feature values
    (the other columns, read as text; an empty cell is unknown)."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or not [c for c in rows[0] if c.strip()]:
        raise DataError(
            f"{path}: line 1: a users_file CSV needs a header (the user id column first, then features)"
        )
    header = [c.strip() for c in rows[0]]
    if "" in header[1:] or len(set(header)) != len(header):
        raise DataError(f"{path}: line 1: every column needs its own name. Received: {rows[0]!r}")
    users, features = [], {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {line}: {len(row)} columns, the header has {len(header)}")
        user = row[0].strip()
        if not user:
            raise DataError(f"{path}: line {line}, column {header[0]!r}: no user id")
        users.append(user)
        values = {name: cell.strip() for name, cell in zip(header[1:], row[1:], strict=True) if cell.strip()}
        if values:
            features.setdefault(user, values)
    if not users:
        raise DataError(f"{path}: no user ids in the file")
    return users, features


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


def _from_run(cfg, users: list[str] | None, k: int, result: dict, explain: bool = False, features=None):
    """(batches of Ranked, item titles or None): the run's model through the evaluation scorer;
    users the run does not know but whose features are given, from their features."""
    from recctl.evaluation.report import score_function
    from recctl.runs import open_finished_run

    loaded = open_finished_run(cfg, "recommend")
    snap = loaded.snapshot
    result.update(
        run_dir=str(loaded.path.resolve()),
        model=loaded.model_name,
        dataset={"name": snap.name, "fingerprint": snap.fingerprint},
    )
    features = features or {}
    new_users: dict[str, int] = {}
    if users is None:
        idx = np.arange(snap.n_users, dtype=np.int32)
    else:
        index = {u: i for i, u in enumerate(snap.user_ids)}
        unknown = [u for u in users if u not in index and u not in features]
        if unknown:
            raise RunNotFoundError(
                f"unknown user id {unknown[0]!r} ({len(unknown)} unknown of {len(users)}): the run's dataset "
                f"{snap.name} has {snap.n_users} users, e.g. {', '.join(map(str, snap.user_ids[:3]))}"
                " (a user the run has never seen needs features: features.NAME=VALUE, or a users_file CSV)"
            )
        ignored = [u for u in users if u in index and u in features]
        if ignored:
            console.info(
                f"user {ignored[0]!r} is in the run ({len(ignored)} such): scored from their history, features not used"
            )
        new_users = {u: -1 - j for j, u in enumerate(dict.fromkeys(u for u in users if u not in index))}
        idx = np.array([index.get(u, new_users.get(u)) for u in users], dtype=np.int32)
    if new_users and explain:
        raise ConfigError(
            f"explain=true explains from a user's history; {next(iter(new_users))!r} is new to the run "
            "(scored from features only)"
        )
    new_scores = _new_user_scores(loaded, snap, new_users, features) if new_users else None
    k = min(k, snap.n_items)
    seen = snap.csr("train", "valid", "test")
    score_fn = score_function(loaded.model, snap, "all")
    batch_size = loaded.model.scoring_batch_size(256)
    user_ids, item_ids = np.asarray(snap.user_ids).astype(str), np.asarray(snap.item_ids).astype(str)
    titles = snap.item_titles()
    titles = None if titles is None else dict(zip(item_ids, np.asarray(titles).astype(str), strict=True))
    batches = _ranked_batches(score_fn, idx, seen, k, batch_size, user_ids, item_ids, new_scores)
    if explain:
        from recctl.explain import RunExplanations

        batches = RunExplanations(loaded.model, loaded.model_name, snap, seen, titles)(batches)
    return batches, titles


def _new_user_scores(loaded, snap, new_users: dict[str, int], features) -> tuple[list[str], np.ndarray]:
    """(the new users' ids, their scores [N, n_items] from their features), checked before any ranking."""
    from recctl.data.features import FeatureEncoder

    model = loaded.model
    first = next(iter(new_users))
    if not model.serves_features():
        raise ConfigError(
            f"user {first!r} is not in the run, and model={loaded.model_name} cannot score a user from features: "
            "wide_deep and deepfm trained with model.user_dropout > 0 can (they learn the unknown-user row)"
        )
    encoder = FeatureEncoder.of(snap, "user")
    if not encoder.columns:
        raise ConfigError(
            f"user {first!r} is not in the run, and the run's dataset {snap.name} has no user features"
        )
    from recctl.data import sources

    source = sources.get(snap.manifest["config"]["source"])
    ids = list(new_users)
    codes, numeric = encoder.encode([source.user_features_from_raw(features[u]) for u in ids], "features")
    return ids, np.asarray(model.score_all_from_features(codes, numeric), np.float32)


def _ranked_batches(score_fn, idx, seen, k, batch_size, user_ids, item_ids, new_scores=None):
    """Batches of users ranked as evaluation ranks them (seen items masked, tf.math.top_k's tie
    rule); the scores reported are the model's own (unmasked) scores of the top-K items. Negative
    indexes are users new to the run (-1 - j: row j of `new_scores`), scored from their features
    with nothing to mask; the requested order is kept."""
    from recctl.evaluation.ranking import _mask_and_topk

    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        cuts = np.flatnonzero(np.diff((chunk < 0).astype(np.int8))) + 1
        for batch in np.split(chunk, cuts):
            if batch[0] < 0:  # new users: no history, nothing masked
                rows_of = -1 - batch
                scores = new_scores[1][rows_of]
                top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
                ids = np.asarray(new_scores[0], dtype=str)[rows_of]
                yield Ranked(ids, item_ids[top], np.take_along_axis(scores, top, axis=1))
                continue
            rows, items = seen.rows(batch)
            scores = np.asarray(score_fn(batch), np.float32)
            _, top = _mask_and_topk(scores, rows.astype(np.int32), items.astype(np.int32), k)
            top = top.numpy()
            yield Ranked(user_ids[batch], item_ids[top], np.take_along_axis(scores, top, axis=1))


def _from_export(folder: Path, users: list[str], k: int, features=None):
    import pandas as pd
    import tensorflow as tf

    if not (folder / "saved_model.pb").is_file():
        raise RunNotFoundError(f"export_dir={folder}: not a SavedModel export folder (no saved_model.pb)")
    loaded = tf.saved_model.load(str(folder))
    out = loaded.signatures["serving_default"](user_id=tf.constant(users))
    if features:
        out = _export_feature_scores(loaded, folder, users, features, out)
    titles = None
    if (folder / "items.parquet").is_file():
        items = pd.read_parquet(folder / "items.parquet")
        if "title" in items.columns:
            titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=True))
    ids, scores = (np.asarray(out[key]) for key in ("item_ids", "scores"))
    return [Ranked(np.asarray(users, dtype=str), ids[:, :k].astype(str), scores[:, :k])], titles


def _export_feature_scores(loaded, folder: Path, users: list[str], features, out) -> dict:
    """serving_default's output with the rows of users the export does not know, but whose
    features are given, replaced by `serving_features` (the tie rule of tf.math.top_k on both)."""
    import tensorflow as tf

    # exports before serving_features had no `known_users`: every user given with features is new
    known = (
        loaded.known_users(tf.constant(users)).numpy()
        if hasattr(loaded, "known_users")
        else np.zeros(len(users), bool)
    )
    new = [j for j, u in enumerate(users) if not known[j] and u in features]
    if not new:
        return out
    if "serving_features" not in loaded.signatures:
        raise ConfigError(
            f"user {users[new[0]]!r} is not in the export, and export_dir={folder} has no serving_features "
            "signature (only wide_deep and deepfm trained with model.user_dropout > 0 score a user from features)"
        )
    signature = loaded.signatures["serving_features"]
    names = sorted(signature.structured_input_signature[1])
    given = {n for u in new for n in features[users[u]]}
    extra = sorted(given - set(names))
    if extra:
        raise ConfigError(
            f"features: unknown user feature {extra[0]!r}; the export's user features are: {', '.join(names)}"
        )
    served = signature(**{n: tf.constant([features[users[j]].get(n, "") for j in new]) for n in names})
    merged = {key: out[key].numpy() for key in ("item_ids", "scores")}
    for key in merged:
        merged[key][new] = served[key].numpy()
    return merged


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
