"""Bad inputs (issue #7): every row of docs/bad-inputs.md, run as a user would run it.

Each row must end with exactly one `recctl: error: ...` line on stderr holding the row's message (its
stable part; `…` stands for a part that varies, such as a fingerprint), no traceback, the documented
exit code, and nothing new on disk beyond what the row says it leaves. ROWS is the single source:
docs/bad-inputs.md is generated from it (`python tests/test_bad_inputs.py`) and checked against it.

Rows marked `shell=True` run as a subprocess, exactly as a shell would: some of each kind (errors
Hydra finds while composing, config and data errors of `prepare`, `report`, a run folder Hydra cannot
make). The others run in this process through the CLI's own entry point, `recctl.runner.run_command`
(the same composition, validation, one-line reporting and exit code; only Typer's forwarding of the
arguments is skipped): TensorFlow is imported once for the whole file instead of once per row (about
4 s each), and faults such as a full disk can be injected.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, recctl

DOC = REPO / "docs" / "bad-inputs.md"
CSV = ("prepare", "dataset=csv")  # most data rows read a file of their own through dataset=csv
MAPPED = ("dataset.columns.rating=rating", "dataset.columns.timestamp=timestamp")


# ------------------------------------------------------------------------------------ input files


def _ratings(shift: int = 0) -> str:
    """30 users x 6 distinct items of 40. Users u1..u25 rated their first two items 5, the third 4 and
    the rest 3; u26..u30 rated everything 3. So `rating_threshold=4` leaves 25 users with 3 items each
    and 5 with none, `rating_threshold=5` leaves 25 users with 2 items each (too few to hold out)."""
    lines = ["user,item,rating,timestamp"]
    for u in range(1, 31):
        for j in range(6):
            rating = (5 if j < 2 else 4 if j == 2 else 3) if u <= 25 else 3
            lines.append(f"u{u},i{(u * 7 + j * 5 + shift) % 40 + 1},{rating},{1_000_000 + u * 100 + j}")
    return "\n".join(lines) + "\n"


def _parquet(columns: dict, truncate: bool = False) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({k: pa.array(v, from_pandas=False) for k, v in columns.items()}), sink)
    data = sink.getvalue()
    return data[: len(data) // 2] if truncate else data


# Written into every row's working folder. A value None is a folder; a callable is called for bytes.
FILES: dict[str, str | bytes | Callable[[], bytes] | None] = {
    "ratings.csv": _ratings(),
    "other.csv": _ratings(shift=1),
    "empty.csv": b"",
    "blank.csv": "\n   \n\t\n",
    "header_only.csv": "user,item\n",
    "semicolon.csv": "user;item;rating\nu1;i1;5\nu2;i2;4\n",
    "rating_abc.csv": "user,item,rating\nu1,i1,5\nu2,i2,abc\n",
    "empty_id.csv": "user,item\nu1,i1\n,i2\n",
    "nan_id.parquet": lambda: _parquet({"user": [1.0, float("nan")], "item": ["i1", "i2"]}),
    "duplicates.csv": "user,item\nu1,i1\nu1,i2\nu1,i1\nu1,i3\nu2,i1\nu2,i2\nu2,i3\n",
    "two_each.csv": "user,item\n" + "".join(f"u{u},i{u + j}\n" for u in range(10) for j in range(2)),
    "extra_field.csv": "user,item\nu1,i1\nu2,i2,oops\nu3,i3\n",
    "unclosed_quote.csv": 'user,item\nu1,"i1\nu2,i2\n',
    "latin1.csv": b"user,item\nu1,i1\nu\xe9,i2\n",
    "truncated.parquet": lambda: _parquet({"user": ["u1", "u2"] * 50, "item": ["i1", "i2"] * 50}, True),
    "bad_timestamp.csv": "user,item,timestamp\nu1,i1,1700000000\nu1,i2,yesterday\n",
    "a_folder": None,
    "blocker": "a regular file where a folder is expected\n",
}


def _write_files(folder: Path) -> None:
    for name, content in FILES.items():
        path = folder / name
        if content is None:
            path.mkdir()
            continue
        content = content() if callable(content) else content
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)


# ------------------------------------------------------------------------------ run folders (setups)


def _fake_run(cwd: Path, name: str, status: str) -> None:
    """A run folder as a training that died (or still runs) leaves it: a manifest, no model."""
    run = cwd / "outputs" / "runs" / name
    run.mkdir(parents=True)
    manifest = {"kind": "run", "status": status, "model": "mf", "dataset": "csv", "fingerprint": "0" * 16}
    if status == "failed":
        manifest["error"] = "RuntimeError: killed"
    (run / "manifest.json").write_text(json.dumps(manifest))


def _copy_trained(cwd: Path, trained: Path, name: str = "mf") -> Path:
    run = cwd / "outputs" / "runs" / name
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "*.png"))
    return run


def _no_model(cwd: Path, trained: Path) -> None:
    (_copy_trained(cwd, trained, "no_model") / "model.keras").unlink()


def _corrupt_model(cwd: Path, trained: Path) -> None:
    (_copy_trained(cwd, trained, "corrupt_model") / "model.keras").write_bytes(b"not a keras file")


def _data_changed(cwd: Path, trained: Path) -> None:
    """The run's snapshot was deleted and its raw file edited since: re-preparing gives other data."""
    run = _copy_trained(cwd, trained, "data_changed")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["snapshot"] = str(cwd / "data" / "processed" / "csv" / "deleted")
    (run / "manifest.json").write_text(json.dumps(manifest))
    (cwd / "ratings.csv").write_text(_ratings(shift=2))


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Row:
    id: str
    category: str  # config | data | runs
    bad: str  # what is wrong, in words
    args: tuple[str, ...]  # the command line after `recctl`
    code: int
    message: str  # stable part of the error line; `…` = a varying part
    shell: bool = False  # run as a subprocess, as a shell would (else in this process, see the top)
    setup: Callable[..., None] | None = None  # (cwd) or (cwd, trained run folder)
    needs_run: bool = False  # setup takes the trained run
    inject: str | None = None  # "module:attribute" replaced by a function raising OSError(ENOSPC)
    leaves: tuple[str, ...] = ()  # globs (under the working folder) of what the row may leave
    note: str = ""  # shown in the doc after `bad`
    extra: tuple[str, ...] = field(default=())  # files the row's command mentions, for the doc


ROWS: list[Row] = [
    # ---- config: validated before any data is read
    Row(
        "unknown-group-option",
        "config",
        "unknown option of a config group",
        ("train", "model=nope"),
        2,
        "Could not find 'model/nope'. Available options in 'model': attention, autoencoder, …, mf, …, "
        "wide_deep",
        shell=True,
    ),
    Row(
        "unknown-key",
        "config",
        "unknown key (typo)",
        ("train", "trainer.epoch=3"),
        2,
        "Could not override 'trainer.epoch': no such key; did you mean trainer.epochs?",
        shell=True,
    ),
    Row(
        "wrong-type",
        "config",
        "wrong type",
        ("train", "trainer.epochs=abc"),
        2,
        "Error merging override trainer.epochs=abc: Value 'abc' of type 'str' could not be converted to Integer",
        shell=True,
    ),
    Row(
        "bad-choice",
        "config",
        "value not among the choices",
        ("prepare", "dataset.split=sideways"),
        2,
        "dataset.split must be one of loo, temporal, random, time, cold_users, cold_items. Received: 'sideways'",
    ),
    Row(
        "bad-duplicates-choice",
        "config",
        "value not among the choices",
        ("prepare", "dataset.duplicates=drop"),
        2,
        "dataset.duplicates must be one of keep_first, keep_last, keep_all, error. Received: 'drop'",
    ),
    Row(
        "negative-learning-rate",
        "config",
        "out of range: negative learning rate",
        ("train", "optimizer.learning_rate=-0.001"),
        2,
        "optimizer.learning_rate must be a positive number. Received: -0.001",
    ),
    Row(
        "zero-epochs",
        "config",
        "out of range: no epochs",
        ("train", "trainer.epochs=0"),
        2,
        "trainer.epochs must be >= 1. Received: 0",
    ),
    Row(
        "evaluation-k-zero",
        "config",
        "out of range: a metric cut-off of 0",
        ("evaluate", "evaluation.ks=[10,0]"),
        2,
        "evaluation.ks must be positive cut-offs. Received: [10, 0]",
    ),
    Row(
        "recommend-k-zero",
        "config",
        "out of range: top-0 recommendations",
        ("recommend", "user=u1", "k=0"),
        2,
        "k must be a positive integer. Received: 0",
    ),
    Row(
        "export-k-zero",
        "config",
        "out of range: a top-0 export",
        ("export", "export.k=0"),
        2,
        "export.k must be >= 1. Received: 0",
    ),
    Row(
        "embedding-dim-zero",
        "config",
        "out of range: a model hyperparameter",
        ("train", "model.embedding_dim=0", "dataset=csv", "dataset.path=ratings.csv"),
        2,
        "model (recctl.models.mf.MatrixFactorization): embedding_dim should be positive. "
        "Received: embedding_dim=0",
    ),
    Row(
        "softmax-typo",
        "config",
        "unknown choice: a sequence model's softmax",
        (
            "train",
            "model=cnn",
            "model.softmax=fulll",
            "dataset=csv",
            "dataset.path=ratings.csv",
            "dataset.row_order_is_time=true",
        ),
        2,
        "model (recctl.models.cnn.Caser): softmax should be one of auto, sampled, full. "
        "Received: softmax='fulll'",
    ),
    Row(
        "missing-required",
        "config",
        "missing required value",
        ("prepare", "dataset=csv"),
        2,
        "dataset.path is required for dataset=csv (the interactions file)",
        shell=True,
    ),
    Row(
        "missing-id-column",
        "config",
        "required column mapped to null",
        (*CSV, "dataset.path=ratings.csv", "dataset.columns.user=null"),
        2,
        "dataset.columns.user is required (the user id column)",
    ),
    Row(
        "threshold-without-ratings",
        "config",
        "contradictory: a rating threshold with no rating column",
        (*CSV, "dataset.path=ratings.csv", "dataset.rating_threshold=4"),
        2,
        "dataset.rating_threshold=4.0 needs ratings, but dataset.columns.rating is null: map the rating "
        "column (dataset.columns.rating=NAME) or leave dataset.rating_threshold null",
    ),
    Row(
        "nothing-held-out",
        "config",
        "contradictory: a split that holds nothing out",
        ("prepare", "dataset.split=random", "dataset.split_ratio=[1,0,0]"),
        2,
        "dataset.split_ratio=[1.0, 0.0, 0.0] leaves nothing to validate or test on: give valid or test a share",
    ),
    Row(
        "sequence-without-time",
        "config",
        "contradictory: a sequence model on data without timestamps",
        ("train", "model=lstm", "dataset=csv", "dataset.path=ratings.csv"),
        2,
        "RecurrentRecommender is a sequence model, but dataset csv has no timestamp column "
        "(dataset.columns.timestamp=null): map one, or set dataset.row_order_is_time=true",
    ),
    Row(
        "ctr-without-labels",
        "config",
        "contradictory: a CTR model with no labels",
        ("train", "model=wide_deep", "model.task=ctr"),
        2,
        "model.task=ctr needs labelled rows: set dataset.label_threshold",
    ),
    Row(
        "device-not-here",
        "config",
        "contradictory: a device this machine does not have",
        ("train", "strategy=one_device", "strategy.device=/gpu:99"),
        2,
        "strategy: device '/gpu:99' is not on this machine",
    ),
    Row(
        "quantize-wrong-format",
        "config",
        "contradictory: quantisation of a format that has none",
        ("export", "export.format=saved_model", "export.quantize=dynamic"),
        2,
        "export.quantize=dynamic applies to export.format=litert only",
    ),
    Row(
        "gate-without-threshold",
        "config",
        "incomplete: a gate metric with no threshold",
        ("evaluate", "gate.metric=ndcg@10"),
        2,
        "gate.metric=ndcg@10 needs gate.min, gate.max and/or gate.min_lift",
    ),
    Row(
        "retired-baseline-key",
        "config",
        "a key that was replaced (evaluation.baseline, before evaluation.baselines)",
        ("evaluate", "evaluation.baseline=false"),
        2,
        "evaluation.baseline was replaced by evaluation.baselines, a list: [pop] (the default), e.g. "
        "evaluation.baselines=[pop,ease], or [] for none",
        shell=True,
    ),
    Row(
        "unknown-baseline",
        "config",
        "unknown baseline",
        ("evaluate", "evaluation.baselines=[pop,bpr]"),
        2,
        "evaluation.baselines: unknown ['bpr']; known: pop, ease, item_knn, user_knn, feature_pop, bias",
    ),
    Row(
        "gate-baseline-not-computed",
        "config",
        "contradictory: a lift over a baseline that is not computed",
        ("evaluate", "gate.metric=ndcg@10", "gate.min_lift=1.1", "gate.baseline=ease"),
        2,
        "gate.min_lift is measured against gate.baseline=ease, which is not in evaluation.baselines=['pop']: "
        "add it there or choose another gate.baseline",
    ),
    Row(
        "ctr-fitted-baseline",
        "config",
        "contradictory: a ranking baseline beside a CTR model",
        ("train", "experiment=ml100k_ctr", "evaluation.baselines=[pop,ease]"),
        2,
        "evaluation.baselines: ease does not apply to model.task=ctr; choose from pop (or [] for none)",
    ),
    Row(
        "rating-without-ratings",
        "config",
        "contradictory: a rating model on a table with no rating column mapped",
        (
            "train",
            "model=mf",
            "model.task=rating",
            "model.loss=mse",
            "dataset=csv",
            "dataset.path=ratings.csv",
        ),
        2,
        "model.task=rating needs a rating column: the dataset has none (map one with dataset.columns.rating",
    ),
    Row(
        "rating-wrong-loss",
        "config",
        "contradictory: a rating model with a ranking loss",
        ("train", "model=mf", "model.task=rating"),
        2,
        "task=rating trains on labelled rows with loss=mse. Received: loss='softmax'",
    ),
    Row(
        "rating-ranking-baseline",
        "config",
        "contradictory: a ranking baseline beside a rating model",
        ("train", "experiment=ml100k_rating", "evaluation.baselines=[ease]"),
        2,
        "evaluation.baselines: ease does not apply to model.task=rating; choose from bias (or [] for none)",
    ),
    # ---- data: dataset=csv (CSV, TSV or Parquet) read by `prepare`
    Row(
        "missing-file",
        "data",
        "missing file",
        (*CSV, "dataset.path=nowhere.csv"),
        2,
        "nowhere.csv: file not found (dataset.path)",
        shell=True,
    ),
    Row(
        "folder-not-file",
        "data",
        "a folder without Parquet files where the interactions are expected",
        (*CSV, "dataset.path=a_folder"),
        2,
        "a_folder: no Parquet files (*.parquet, *.pq) in this folder or its subfolders (dataset.path)",
    ),
    Row(
        "empty-file",
        "data",
        "empty file (0 bytes)",
        (*CSV, "dataset.path=empty.csv"),
        2,
        "empty.csv: file is empty",
    ),
    Row(
        "blank-lines-only",
        "data",
        "a file of blank lines",
        (*CSV, "dataset.path=blank.csv"),
        2,
        "blank.csv: file is empty (no lines with data)",
    ),
    Row(
        "header-only",
        "data",
        "a header and no rows",
        (*CSV, "dataset.path=header_only.csv"),
        2,
        "header_only.csv: no data rows (only a header line)",
    ),
    Row(
        "wrong-separator",
        "data",
        "wrong separator",
        (*CSV, "dataset.path=semicolon.csv"),
        2,
        "dataset.columns.user='user' is not a column of semicolon.csv; its columns are: 'user;item;rating' "
        "(the file parsed into a single column with dataset.sep=','; it looks ';'-separated: try dataset.sep=';')",
        shell=True,
    ),
    Row(
        "missing-mapped-column",
        "data",
        "mapped column not in the file",
        (*CSV, "dataset.path=ratings.csv", "dataset.columns.user=userId"),
        2,
        "dataset.columns.user='userId' is not a column of ratings.csv; its columns are: 'user', 'item', "
        "'rating', 'timestamp'",
    ),
    Row(
        "non-numeric-rating",
        "data",
        "non-numeric rating",
        (*CSV, "dataset.path=rating_abc.csv", "dataset.columns.rating=rating"),
        2,
        "rating_abc.csv, line 3, column 'rating': 'abc' is not a finite number",
    ),
    Row(
        "empty-id",
        "data",
        "empty id",
        (*CSV, "dataset.path=empty_id.csv"),
        2,
        "empty_id.csv, line 3, column 'user': empty id",
    ),
    Row(
        "nan-id",
        "data",
        "NaN id (a float id column in Parquet)",
        (*CSV, "dataset.path=nan_id.parquet"),
        2,
        "nan_id.parquet, row 2, column 'user': empty id (NaN)",
    ),
    Row(
        "bad-timestamp",
        "data",
        "a timestamp that is not one",
        (*CSV, "dataset.path=bad_timestamp.csv", "dataset.columns.timestamp=timestamp"),
        2,
        "bad_timestamp.csv, line 3, column 'timestamp': 'yesterday' is not a timestamp (epoch seconds or an "
        "ISO-8601 date/time)",
    ),
    Row(
        "extra-field",
        "data",
        "a line with an extra field",
        (*CSV, "dataset.path=extra_field.csv"),
        2,
        "extra_field.csv, line 3: expected 2 fields, found 3 (check dataset.sep=',' and quoting)",
    ),
    Row(
        "unclosed-quote",
        "data",
        "a quote that is never closed",
        (*CSV, "dataset.path=unclosed_quote.csv"),
        2,
        "unclosed_quote.csv, line 2, column 'item': id contains a line break (a quote that is never closed?)",
    ),
    Row(
        "invalid-utf8",
        "data",
        "encoding error (Latin-1 bytes read as UTF-8)",
        (*CSV, "dataset.path=latin1.csv"),
        2,
        "latin1.csv, line 3 (byte offset 17): not valid utf-8 text (invalid continuation byte, byte(s) e9); "
        "set dataset.encoding to the file's encoding, e.g. dataset.encoding=latin-1",
        shell=True,
    ),
    Row(
        "truncated-parquet",
        "data",
        "truncated Parquet file",
        (*CSV, "dataset.path=truncated.parquet"),
        2,
        "truncated.parquet: not a valid Parquet file (Parquet magic bytes not found in footer.",
        shell=True,
    ),
    Row(
        "duplicates-error",
        "data",
        "duplicate rows, with `dataset.duplicates=error`",
        (*CSV, "dataset.path=duplicates.csv", "dataset.duplicates=error"),
        2,
        "duplicates.csv, line 4: duplicate (user, item) row: user 'u1', item 'i1' first at duplicates.csv, "
        "line 2; 1 duplicate row in all (dataset.duplicates=error; keep_first, keep_last or keep_all accept them)",
        note="the default, `keep_first`, reports them and keeps the first of each: see the second table",
        shell=True,
    ),
    Row(
        "too-few-per-user",
        "data",
        "no user with enough interactions to hold out a validation and a test item",
        (*CSV, "dataset.path=two_each.csv"),
        2,
        "two_each.csv: no user has the 3 interactions that a validation and a test item need (10 users, 20 "
        "interactions): the valid and test splits would be empty",
    ),
    Row(
        "users-left-empty",
        "data",
        "users left with no (or too few) interactions after filtering",
        (*CSV, "dataset.path=ratings.csv", *MAPPED, "dataset.rating_threshold=5"),
        2,
        "ratings.csv: no user has the 3 interactions that a validation and a test item need after "
        "filtering (25 users, 50 interactions): the valid and test splits would be empty",
        note="a warning first says `5 of 30 users have no interactions left after dataset.rating_threshold=5.0`",
    ),
    Row(
        "all-users-filtered",
        "data",
        "every user filtered out",
        (*CSV, "dataset.path=ratings.csv", "dataset.min_user_interactions=100"),
        2,
        "every user was filtered out (dataset.min_user_interactions=100): no interactions are left",
    ),
    Row(
        "threshold-keeps-nothing",
        "data",
        "a rating threshold no rating reaches",
        (*CSV, "dataset.path=ratings.csv", *MAPPED, "dataset.rating_threshold=6"),
        2,
        "no interactions have rating >= 6.0 (dataset.rating_threshold)",
    ),
    Row(
        "missing-feature-file",
        "data",
        "missing side-feature file",
        (*CSV, "dataset.path=ratings.csv", "dataset.user_features.path=users.csv"),
        2,
        "users.csv: file not found (dataset.user_features.path)",
    ),
    Row(
        "movielens-absent",
        "data",
        "MovieLens 100K not where it is said to be, download off",
        ("prepare", "dataset=ml_100k", "dataset.root=nowhere", "dataset.download=false"),
        2,
        "MovieLens 100K not found in nowhere (need u.data, u.item, u.user; missing u.data, u.item, u.user) "
        "and dataset.download=false",
    ),
    Row(
        "data-dir-under-file",
        "data",
        "unwritable data folder, a path under a regular file",
        ("prepare", "paths.data_dir=blocker/data"),
        2,
        "paths.data_dir=blocker/data: cannot write the dataset snapshot under blocker/data/processed/synthetic "
        "(blocker is a file, not a folder)",
    ),
    Row(
        "snapshot-disk-full",
        "data",
        "disk full while the snapshot is written",
        (*CSV, "dataset.path=ratings.csv"),
        1,
        "no space left on device while writing the dataset snapshot under data/processed/csv; nothing was "
        "kept (free some space, or set paths.data_dir to a folder on another disk)",
        inject="recctl.data.prepare:atomic_write_json",
        note="ENOSPC injected after the Parquet tables are written; the staging folder is removed",
    ),
    # ---- runs: `run=` and the folders commands write
    Row(
        "run-nowhere",
        "runs",
        "`run=` pointing at nothing",
        ("evaluate", "run=nowhere"),
        2,
        "run=nowhere: no such run folder",
    ),
    Row(
        "run-latest-none",
        "runs",
        "`run=latest` with no completed run",
        ("export", "run=latest"),
        2,
        "run=latest: no completed training run under outputs/ (train one with `recctl train`)",
        setup=lambda cwd: _fake_run(cwd, "died", "failed"),
    ),
    Row(
        "run-failed",
        "runs",
        "a run whose training died",
        ("evaluate", "run=outputs/runs/died"),
        2,
        "run=outputs/runs/died: that run did not complete (status: failed); pick another run or train again",
        setup=lambda cwd: _fake_run(cwd, "died", "failed"),
    ),
    Row(
        "run-running",
        "runs",
        "a run still training (or killed without a trace)",
        ("export", "run=outputs/runs/busy"),
        2,
        "run=outputs/runs/busy: that run did not complete (status: running)",
        setup=lambda cwd: _fake_run(cwd, "busy", "running"),
    ),
    Row(
        "run-without-model",
        "runs",
        "`export` of a run whose model.keras was deleted",
        ("export", "run=outputs/runs/no_model"),
        2,
        "run=outputs/runs/no_model: the run has no model.keras",
        setup=_no_model,
        needs_run=True,
    ),
    Row(
        "run-corrupt-model",
        "runs",
        "a run whose model.keras is not a model",
        ("evaluate", "run=outputs/runs/corrupt_model"),
        2,
        "outputs/runs/corrupt_model/model.keras: the model could not be loaded",
        setup=_corrupt_model,
        needs_run=True,
    ),
    Row(
        "run-other-dataset",
        "runs",
        "a run evaluated with other dataset settings",
        ("evaluate", "run=outputs/runs/mf", "+dataset=csv", "dataset.path=other.csv"),
        2,
        "run=outputs/runs/mf was trained on dataset csv (snapshot …), but the dataset settings given make "
        "snapshot … (csv): evaluate always uses the run's own data; drop the dataset overrides, or train on "
        "this data",
        setup=_copy_trained,
        needs_run=True,
        note="the same settings as the run's are accepted",
    ),
    Row(
        "run-cutoff-beyond-catalogue",
        "runs",
        "`evaluate` with a cut-off larger than the run's catalogue",
        ("evaluate", "run=outputs/runs/mf", "evaluation.ks=[100000]"),
        2,
        "evaluation.ks=[100000]: cut-off 100000 is larger than the catalogue of run outputs/runs/mf (… items); "
        "use cut-offs up to …",
        setup=_copy_trained,
        needs_run=True,
        note="checked before scoring: the completed run gets no error.log",
    ),
    Row(
        "run-data-changed",
        "runs",
        "a run whose snapshot was deleted and whose raw file changed since",
        ("evaluate", "run=outputs/runs/data_changed"),
        2,
        "run outputs/runs/data_changed: its dataset snapshot … is gone and the data now gives … (the raw "
        "files changed): train again on the current data",
        setup=_data_changed,
        needs_run=True,
        leaves=("data/processed/csv/*",),
        note="the changed data is prepared to find that out: its snapshot remains",
    ),
    Row(
        "unknown-user",
        "runs",
        "`recommend` for a user the run has never seen",
        ("recommend", "run=outputs/runs/mf", "user=nobody"),
        2,
        "unknown user id 'nobody' (1 unknown of 1): the run's dataset csv has 30 users, e.g. u1, u10, u11",
        setup=_copy_trained,
        needs_run=True,
    ),
    Row(
        "users-file-missing",
        "runs",
        "`recommend` with a missing users file",
        ("recommend", "run=outputs/runs/mf", "users_file=users.txt"),
        2,
        "users.txt: file not found (users_file)",
    ),
    Row(
        "not-an-export",
        "runs",
        "`recommend export_dir=` pointing at a run, not an export",
        ("recommend", "export_dir=outputs/runs/mf", "user=u1"),
        2,
        "export_dir=outputs/runs/mf: not a SavedModel export folder (no saved_model.pb)",
        setup=_copy_trained,
        needs_run=True,
    ),
    Row(
        "sweep-nowhere",
        "runs",
        "`report sweep=` pointing at nothing",
        ("report", "sweep=nowhere"),
        2,
        "sweep=nowhere: no such folder",
        shell=True,
    ),
    Row(
        "train-output-under-file",
        "runs",
        "unwritable output folder for `train`, a path under a regular file",
        ("train", "paths.output_dir=blocker/out"),
        2,
        "paths.output_dir=blocker/out: cannot write the run folder (blocker is a file, not a folder)",
        shell=True,
    ),
    Row(
        "export-output-under-file",
        "runs",
        "unwritable output folder for `export`, a path under a regular file",
        ("export", "run=outputs/runs/mf", "paths.output_dir=blocker/out"),
        2,
        "paths.output_dir=blocker/out: cannot write the export under blocker/out/exports/mf (blocker is a "
        "file, not a folder)",
        setup=_copy_trained,
        needs_run=True,
    ),
    Row(
        "export-disk-full",
        "runs",
        "disk full while an export is written",
        ("export", "run=outputs/runs/mf"),
        1,
        "no space left on device while writing the export under outputs/exports/mf; nothing was kept (free "
        "some space, or set paths.output_dir to a folder on another disk)",
        setup=_copy_trained,
        needs_run=True,
        inject="recctl.commands.export:atomic_write_json",
        note="ENOSPC injected after the SavedModel, items and model card are written; no version folder "
        "appears and the staging folder is removed",
    ),
]

# Reported on stderr (one warning line each), then handled as configured: exit code 0.
HANDLED: list[Row] = [
    Row(
        "duplicates-kept",
        "data",
        "duplicate rows (default `dataset.duplicates=keep_first`)",
        (*CSV, "dataset.path=duplicates.csv"),
        0,
        "1 duplicate (user, item) row (e.g. user 'u1', item 'i1'): kept the first of each "
        "(dataset.duplicates=keep_first)",
        leaves=("data/processed/csv/*",),
    ),
    Row(
        "users-dropped",
        "data",
        "users left with no interactions after filtering",
        (*CSV, "dataset.path=ratings.csv", *MAPPED, "dataset.rating_threshold=4"),
        0,
        "5 of 30 users have no interactions left after dataset.rating_threshold=4.0: they are left out",
        leaves=("data/processed/csv/*",),
    ),
]


# --------------------------------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny mf run on ratings.csv (1 epoch), trained in this process."""
    work = tmp_path_factory.mktemp("trained")
    _write_files(work)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras: "Your input ran out of data" on a 1-epoch toy run
        mp.chdir(work)
        code, _, err = _in_process(
            mp,
            ("train", "dataset=csv", "dataset.path=ratings.csv", *MAPPED, "trainer.epochs=1", "logger=none"),
        )
    assert code == 0, err
    (run,) = (work / "outputs" / "runs").iterdir()
    return run


def _in_process(mp: pytest.MonkeyPatch, args: tuple[str, ...]) -> tuple[int, str, str]:
    """The CLI's own entry point, in this process; stdout and stderr captured."""
    import contextlib

    from recctl.runner import run_command

    # run_command sets these for its own process: monkeypatch puts back what they were afterwards.
    for key, value in (
        ("HYDRA_FULL_ERROR", "1"),
        ("RECCTL_JSON_MODE", "0"),
        ("KERAS_BACKEND", "tensorflow"),
        ("TF_CPP_MIN_LOG_LEVEL", "2"),
    ):
        mp.setenv(key, os.environ.get(key, value))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command(args[0], list(args[1:]))
    return code, out.getvalue(), err.getvalue()


def _artifacts(cwd: Path) -> set[str]:
    """What commands write: snapshot folders (staging ones included), runs, sweeps, export versions."""
    globs = ("data/processed/*/*", "outputs/runs/*", "outputs/sweeps/*", "outputs/exports/*/*")
    return {str(p.relative_to(cwd)) for g in globs for p in cwd.glob(g)}


def _matches(message: str, line: str) -> bool:
    """The parts of `message` around each `…` appear in `line`, in order."""
    position = 0
    for part in message.split("…"):
        found = line.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def _check(row: Row, cwd: Path, request, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_files(cwd)
    if row.setup is not None:
        if row.needs_run:
            row.setup(cwd, request.getfixturevalue("trained_run"))
        else:
            row.setup(cwd)
    before = _artifacts(cwd)
    if not row.shell:
        monkeypatch.chdir(cwd)
        if row.inject:
            module, attribute = row.inject.split(":")

            def disk_full(*args, **kwargs):
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(f"{module}.{attribute}", disk_full)
        code, out, err = _in_process(monkeypatch, row.args)
    else:
        proc = recctl(*row.args, cwd=cwd, timeout=120)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    shown = f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert code == row.code, shown
    assert "Traceback" not in err, shown
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("recctl: error: ")]
    warnings = [line for line in lines if line.startswith("recctl: warning: ")]
    assert len(errors) + len(warnings) == len(lines), f"stray lines on stderr:\n{err}"
    if row.code == 0:
        assert not errors and any(_matches(row.message, line) for line in warnings), shown
    else:
        assert len(errors) == 1, f"expected one error line:\n{err}"
        assert _matches(row.message, errors[0]), f"expected {row.message!r} in:\n{errors[0]}"
    new = _artifacts(cwd) - before
    unexpected = {p for p in new if not any(Path(p).match(g) for g in row.leaves)}
    assert not unexpected, f"left behind: {sorted(unexpected)}"


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input(row: Row, tmp_path: Path, request, monkeypatch):
    _check(row, tmp_path, request, monkeypatch)


@pytest.mark.parametrize("row", HANDLED, ids=[row.id for row in HANDLED])
def test_reported_then_handled(row: Row, tmp_path: Path, request, monkeypatch):
    _check(row, tmp_path, request, monkeypatch)


def test_the_table_covers_every_category():
    counts = {c: sum(r.category == c for r in ROWS) for c in ("config", "data", "runs")}
    assert len(ROWS) >= 30 and min(counts.values()) >= 8, counts
    assert len({r.id for r in ROWS + HANDLED}) == len(ROWS) + len(HANDLED)


def test_doc_lists_every_row():
    assert DOC.read_text() == render_doc(), "docs/bad-inputs.md is stale: run python tests/test_bad_inputs.py"


# --------------------------------------------------------------------------------------------- the doc


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _command(row: Row) -> str:
    return "`recctl " + " ".join(row.args) + "`"


def _table(rows: list[Row], first: int) -> list[str]:
    lines = [
        "| # | category | bad input | command | exit | message (stable part; … varies) |",
        "|---|---|---|---|---|---|",
    ]
    for n, row in enumerate(rows, first):
        bad = row.bad + (f" ({row.note})" if row.note else "")
        number = f"{n}{' †' if row.shell else ''}"
        lines.append(
            f"| {number} | {row.category} | {_cell(bad)} | {_cell(_command(row))} | {row.code} | "
            f"{_cell(row.message)} |"
        )
    return lines


_FILE_NOTES = {
    "ratings.csv": "`user,item,rating,timestamp`, 30 users x 6 distinct items of 40: u1..u25 rated two "
    "items 5, one 4 and three 3; u26..u30 rated all six 3 (`_ratings()` in the test)",
    "other.csv": "the same shape as ratings.csv with other items",
    "nan_id.parquet": "columns `user` (float64: 1.0, NaN) and `item` (string)",
    "truncated.parquet": "the first half of a valid 100-row Parquet file",
}


def _file_line(name: str) -> str:
    content = FILES[name]
    if name in _FILE_NOTES:
        return f"- `{name}`: {_FILE_NOTES[name]}"
    if content is None:
        return f"- `{name}/`: a folder"
    if not content:
        return f"- `{name}`: 0 bytes"
    shown = repr(content)[2:-1] if isinstance(content, bytes) else json.dumps(content)[1:-1]
    return f"- `{name}`: `{shown}`"


def render_doc() -> str:
    counts = {c: sum(r.category == c for r in ROWS) for c in ("config", "data", "runs")}
    number = {row.id: n for n, row in enumerate(ROWS + HANDLED, 1)}
    parts = [
        "# Bad inputs: what recctl says, and with which exit code",
        "",
        "<!-- Generated from tests/test_bad_inputs.py (ROWS, HANDLED): edit the test, then run",
        "     `python tests/test_bad_inputs.py` to rewrite this file. A test fails when they differ. -->",
        "",
        f"{len(ROWS)} bad inputs ({counts['config']} config, {counts['data']} data, {counts['runs']} runs and "
        "outputs), each checked by `tests/test_bad_inputs.py::test_bad_input`. For every row the test "
        "runs the command in a fresh folder holding the files listed below and checks:",
        "",
        "- the exit code (docs/interface.md: 1 runtime failure such as a full disk, 2 usage, config or "
        "input-data error);",
        "- exactly one `recctl: error: ...` line on stderr, containing the message below (warnings may "
        "precede it), and no traceback;",
        "- that nothing was written or left half-written: no new snapshot folder (staging ones included), "
        "run folder, sweep or export version, unless the row says what remains.",
        "",
        "Rows marked † run `recctl` as a subprocess, as a shell would; the others run in the test's "
        "process through the same entry point (`recctl.runner.run_command`), so that TensorFlow is "
        "imported once and a full disk can be simulated. Config errors are found before any data is read; "
        "data errors name the file and, where there is one, the line (Parquet: "
        "the row) and the column. Commands run in the folder holding the files, so paths in messages are "
        "relative.",
        "",
        *_table(ROWS, 1),
        "",
        "## Reported, then handled (exit code 0)",
        "",
        "Checked by `test_reported_then_handled`: one `recctl: warning: ...` line each, and the data is "
        "prepared as configured.",
        "",
        *_table(HANDLED, len(ROWS) + 1),
        "",
        "## Not errors",
        "",
        "- A sequence model (`cnn`, `lstm`, `attention`) on data without timestamps *with* "
        "`dataset.row_order_is_time=true`: each user's history follows the file's row order, as promised. "
        "BENCHMARKS.md (robustness) trains every family on ml-100k that way.",
        "- The text `nan` or `NaN` as an id in a CSV file: an ordinary string id. An empty field, or a "
        f"null or NaN in a Parquet id column, is an error (rows {number['empty-id']} and {number['nan-id']}).",
        "- `strategy=one_device strategy.device=/gpu:0` on a machine with a GPU: the table uses `/gpu:99` "
        "so that the row fails the same way on every machine.",
        "",
        "## The files the commands read",
        "",
        *[_file_line(name) for name in FILES],
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.write_text(render_doc())
    print(f"wrote {DOC}", file=sys.stderr)


def test_ml_100k_default_root_resolves_to_the_data_folder(tmp_path, monkeypatch, capsys):
    # `root: ${paths.data_dir}/raw/ml-100k` must resolve before the section is merged onto its schema
    from conftest import recctl_in_process

    monkeypatch.chdir(tmp_path)
    code, _, err = recctl_in_process(
        monkeypatch, capsys, "prepare", "dataset=ml_100k", "dataset.download=false"
    )
    assert code == 2, err
    assert "MovieLens 100K not found in data/raw/ml-100k" in err and "Interpolation" not in err
