"""`make bench-scale`: issue #8's figures at data sizes beyond ml-100k, printed as Markdown.

1. prepare: synthetic 1 M and 10 M interactions from CSV and from Parquet (interactions/s, peak RSS).
2. training: examples/s of every family on synthetic 1 M (steady epochs, no validation).
3. evaluation: full-ranking users/s on ml-100k and on synthetic 100 k users x 50 k items (mf; lstm
   with --with-sequence), against the target of 100 k users in 60 s.
4. scale: synthetic 20 M interactions end to end (prepare, one epoch of mf, evaluate), peak RSS of
   each step against the 8 GB target.
5. folder (`--parquet-folder PARTS`, off by default): the 20 M set of 4 as one Parquet file and as a
   Hive-partitioned folder of PARTS files (`bucket=K/`, users hashed to buckets, what Spark writes),
   each prepared once; seconds, peak RSS, and a check that both snapshots hold identical splits.

Every command is a real `recctl --json ...` subprocess; its wall time and peak RSS come from
wait4(). Medians of --runs runs with min-max. The synthetic files have a Zipf-like item popularity
and per-user time order; they exist to measure speed, not quality.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
FAMILIES = ("mf", "neumf", "wide_deep", "cnn", "lstm", "attention", "autoencoder")
GB = 1024**3


def measured(args: list[str], cwd: Path) -> tuple[dict, float, int]:
    """Run one command through a tiny parent whose only child it is: its ru_maxrss is that child's."""
    code = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-3000:], 'wall': wall, 'rss': rss}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BIN / "recctl"), "--json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    info = json.loads(proc.stdout)
    if info["rc"] != 0:
        raise SystemExit(f"recctl {' '.join(args)} failed ({info['rc']}):\n{info['err']}")
    return json.loads(info["out"]), info["wall"], info["rss"]


def interactions(n_users: int, n_items: int, per_user: int, seed: int = 0) -> pa.Table:
    """n_users x per_user rows (user, item, timestamp): Zipf-like items, time-ordered per user."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    ranks = rng.zipf(1.2, size=n) % n_items
    perm = rng.permutation(n_items)
    items = perm[ranks]
    timestamps = 1_600_000_000 + np.tile(np.arange(per_user, dtype=np.int64), n_users) * 60
    return pa.table({"user": users, "item": items, "timestamp": timestamps})


def write(table: pa.Table, folder: Path, stem: str) -> tuple[Path, Path]:
    csv_path, parquet_path = folder / f"{stem}.csv", folder / f"{stem}.parquet"
    pacsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path


def csv_args(path: Path, data_dir: str) -> list[str]:
    return [
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.columns.timestamp=timestamp",
        f"paths.data_dir={data_dir}",
    ]


def one_epoch(path: Path, data_dir: str, model: str, epochs: int = 1) -> list[str]:
    """`train` for exactly `epochs` epochs of training: no validation, test, checkpoint or logger."""
    return [
        "train",
        *csv_args(path, data_dir),
        f"model={model}",
        f"trainer.epochs={epochs}",
        "trainer.validate_every=1000",
        "trainer.early_stopping=false",
        "trainer.evaluate_test=false",
        "trainer.checkpoint=false",
        "logger=none",
    ]


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def bench_prepare(work: Path, sizes: list[int], runs: int) -> None:
    print("## prepare: synthetic interactions from CSV and Parquet\n")
    print("| rows | format | file MB | wall s | in-command s | interactions/s (in-command) | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        n_users = max(n // 100, 10)
        table = interactions(n_users, max(n_users // 2, 50), 100)
        csv_path, parquet_path = write(table, work, f"prep{n}")
        for label, path in (("csv", csv_path), ("parquet", parquet_path)):
            walls, inner, rss = [], [], []
            for r in range(runs):
                data_dir = f"data-prep-{n}-{label}-{r}"  # a fresh folder: snapshots are reused
                result, wall, peak = measured(["prepare", *csv_args(path, data_dir)], work)
                walls.append(wall)
                inner.append(result["seconds"]["total"])
                rss.append(peak)
                shutil.rmtree(work / data_dir, ignore_errors=True)
            rate = [len(table) / s for s in inner]
            print(
                f"| {len(table):,} | {label} | {path.stat().st_size / 1e6:.0f} | {med(walls)} | {med(inner)} | "
                f"{statistics.median(rate) / 1e6:.2f} M [{min(rate) / 1e6:.2f}-{max(rate) / 1e6:.2f}] | "
                f"{max(rss) / GB:.2f} |"
            )
    print()


def bench_training(work: Path, n: int) -> None:
    print(f"## training: every family on synthetic {n / 1e6:g} M interactions (no validation)\n")
    n_users = max(n // 100, 10)
    csv_path, _ = write(interactions(n_users, max(n_users // 2, 50), 100, seed=1), work, "train")
    print(
        "A run of 1 epoch and a run of 3: the first epoch carries graph building and XLA compilation, "
        "so the steady epoch is (fit of 3 - fit of 1) / 2.\n"
    )
    print("| model | train examples | first epoch s | steady epoch s | examples/s (steady) |")
    print("|---|---|---|---|---|")
    for model in FAMILIES:
        first = measured(one_epoch(csv_path, "data-train", model), work)[0]["seconds"]["fit"]
        three = measured(one_epoch(csv_path, "data-train", model, 3), work)[0]["seconds"]["fit"]
        steady = (three - first) / 2
        n_train = _train_rows(work / "data-train")
        print(f"| {model} | {n_train:,} | {first:.1f} | {steady:.1f} | {n_train / steady / 1e3:.0f} k |")
    print()


def _train_rows(data_dir: Path) -> int:
    stats = next(data_dir.glob("processed/csv/*/stats.json"))
    return int(json.loads(stats.read_text())["train"])


def bench_evaluation(work: Path, n_users: int, n_items: int, models: list[str]) -> None:
    print(
        f"## evaluation: full ranking, {n_users:,} users x {n_items:,} items (test split, history masked)\n"
    )
    print(
        "`recctl evaluate` ranks the whole catalogue for every user four times (the model and pop, on\n"
        "valid and test, with AUC): user rankings/s counts 4 per user.\n"
    )
    print("| dataset | model | users | evaluate command s | user rankings/s | peak RSS GB |")
    print("|---|---|---|---|---|---|")
    ml = DATASETS / "ml-100k"
    if (ml / "u.data").is_file():
        run_dir = measured(
            [
                "train",
                "dataset=ml_100k",
                f"dataset.root={ml}",
                "trainer.epochs=1",
                "trainer.evaluate_test=false",
                "logger=none",
                "paths.output_dir=out-ml",
            ],
            work,
        )[0]["run_dir"]
        times = [measured(["evaluate", f"run={run_dir}"], work)[0]["seconds"]["total"] for _ in range(3)]
        print(f"| ml-100k | mf | 943 | {med(times)} | {4 * 943 / statistics.median(times):,.0f} | - |")
    csv_path, _ = write(interactions(n_users, n_items, 20, seed=2), work, "eval")
    for model in models:
        result, _, _ = measured(
            [*one_epoch(csv_path, "data-eval", model), f"paths.output_dir=out-eval-{model}"], work
        )
        evaluated, _, rss = measured(
            ["evaluate", f"run={result['run_dir']}", "paths.data_dir=data-eval"], work
        )
        seconds = evaluated["seconds"]["total"]
        print(
            f"| synthetic | {model} | {n_users:,} | {seconds:.1f} | {4 * n_users / seconds:,.0f} | {rss / GB:.2f} |"
        )
    print("\ntarget: 100 k users x 50 k items within 60 s for the dot-product scorers\n")


def bench_end_to_end(work: Path, n: int) -> None:
    print(f"## scale: synthetic {n / 1e6:g} M interactions end to end (mf)\n")
    n_users = n // 100
    csv_path, _ = write(interactions(n_users, 50_000, 100, seed=3), work, "e2e")
    print("| step | wall s | in-command s | peak RSS GB |\n|---|---|---|---|")
    steps = [
        ("prepare", ["prepare", *csv_args(csv_path, "data-e2e")]),
        (
            "train (1 epoch mf, validation, test)",
            [
                "train",
                *csv_args(csv_path, "data-e2e"),
                "trainer.epochs=1",
                "trainer.early_stopping=false",
                "logger=none",
                "paths.output_dir=out-e2e",
            ],
        ),
    ]
    peak = 0
    total = 0.0
    for label, args in steps:
        result, wall, rss = measured(args, work)
        peak, total = max(peak, rss), total + wall
        print(f"| {label} | {wall:.1f} | {result['seconds']['total']:.1f} | {rss / GB:.2f} |")
        if label.startswith("train"):
            run_dir = result["run_dir"]
    result, wall, rss = measured(["evaluate", f"run={run_dir}", "paths.data_dir=data-e2e"], work)
    peak, total = max(peak, rss), total + wall
    print(f"| evaluate | {wall:.1f} | {result['seconds']['total']:.1f} | {rss / GB:.2f} |")
    print(f"| **all** | {total:.1f} | | **{peak / GB:.2f}** (target 8) |\n")


def write_partitioned(table: pa.Table, folder: Path, parts: int) -> int:
    """`table` as a Hive-partitioned folder: users hashed to `parts` buckets, one file each, every
    bucket's rows in their original order (as a Spark `repartition(user).write.partitionBy` would
    leave them). Returns the folder's size in bytes."""
    users = table["user"].to_numpy()
    bucket = (users * 2654435761) % parts  # a multiplicative hash: buckets are not user ranges
    order = np.argsort(bucket, kind="stable")
    ends = np.cumsum(np.bincount(bucket, minlength=parts))
    start = 0
    for k, end in enumerate(ends):
        sub = folder / f"bucket={k:0{len(str(parts - 1))}d}"
        sub.mkdir(parents=True)
        pq.write_table(table.take(pa.array(order[start:end])), sub / f"part-{k:05d}.snappy.parquet")
        start = end
    (folder / "_SUCCESS").write_bytes(b"")
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def _same_splits(work: Path, a: str, b: str) -> tuple[bool, int]:
    """Whether two snapshots hold the same users, items and splits (every column but the file row,
    which differs because the folder's rows come in bucket order). Returns (same, rows compared)."""
    snaps = [next((work / d).glob("processed/csv/*/manifest.json")).parent for d in (a, b)]
    n = 0
    for name in ("users", "items", "train", "valid", "test"):
        tables = [pq.read_table(s / f"{name}.parquet") for s in snaps]
        keep = [c for c in tables[0].column_names if c != "row"]
        if tables[0].select(keep) != tables[1].select(keep):
            return False, n
        n += tables[0].num_rows if name in ("train", "valid", "test") else 0
    return True, n


def bench_parquet_folder(work: Path, n: int, parts: int) -> None:
    print(f"## folder: synthetic {n / 1e6:g} M interactions, one Parquet file vs a folder of {parts}\n")
    n_users = n // 100
    table = interactions(n_users, 50_000, 100, seed=3)
    one = work / "one.parquet"
    pq.write_table(table, one)
    folder_bytes = write_partitioned(table, work / "folder", parts)
    del table
    print(
        "| input | files | MB | prepare wall s | in-command s | interactions/s (in-command) | peak RSS GB |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, path, files, size in (
        ("one Parquet file", one, 1, one.stat().st_size),
        ("Hive-partitioned folder (`bucket=K/`)", work / "folder", parts, folder_bytes),
    ):
        result, wall, rss = measured(["prepare", *csv_args(path, f"data-{files}")], work)
        seconds = result["seconds"]["total"]
        print(
            f"| {label} | {files} | {size / 1e6:.0f} | {wall:.1f} | {seconds:.1f} | "
            f"{n / seconds / 1e6:.2f} M | {rss / GB:.2f} |"
        )
    same, compared = _same_splits(work, "data-1", f"data-{parts}")
    print(
        f"\nidentical users, items and train/valid/test splits: **{'yes' if same else 'NO'}** "
        f"({compared:,} split rows compared, every column but the file row)\n"
    )
    if not same:
        raise SystemExit("the folder and the single file gave different snapshots")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (0.01: a smoke test)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="prepare,training,evaluation,scale")
    parser.add_argument("--with-sequence", action="store_true", help="also evaluate lstm at 100 k x 50 k")
    parser.add_argument(
        "--parquet-folder",
        type=int,
        default=0,
        metavar="PARTS",
        help="also prepare the 20 M set from a Hive-partitioned folder of PARTS Parquet files (step 5)",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if args.parquet_folder:
        only.add("folder")
    s = args.scale
    work = Path(tempfile.mkdtemp(prefix="recctl-scale-"))
    print(
        f"# recctl scale benchmarks ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start, scale {s:g})\n"
    )
    try:
        if "prepare" in only:
            bench_prepare(work, [int(1_000_000 * s), int(10_000_000 * s)], args.runs)
        if "training" in only:
            bench_training(work, int(1_000_000 * s))
        if "evaluation" in only:
            models = ["mf", "lstm"] if args.with_sequence else ["mf"]
            bench_evaluation(work, max(int(100_000 * s), 100), max(int(50_000 * s), 50), models)
        if "scale" in only:
            bench_end_to_end(work, int(20_000_000 * s))
        if "folder" in only:
            bench_parquet_folder(work, int(20_000_000 * s), args.parquet_folder or 32)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
