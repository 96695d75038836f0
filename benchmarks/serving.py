"""`make bench-serving` (issue #19 part 4): what an exported model costs per request.

For an mf and an attention model trained on synthetic data with a 50 k-item catalogue, every export
format (SavedModel, ONNX, LiteRT) is loaded in a fresh process that never imports recctl
(benchmarks/serving_client.py) and timed: p50/p99 latency of single-user requests, and users/s for
one request of 1,000 users. Beside them, in the same run, the floor: a bare numpy and TensorFlow
matmul + top-k over the same item embeddings (mf: the model's own user rows; attention: query
vectors of the model's width, so the floor leaves out the encoder the exports run). Each figure is
the median over `--repeats` fresh processes, with min-max.

    .venv/bin/python benchmarks/serving.py [--items 50000 --users 20000 --per-user 20 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLIENT = Path(__file__).resolve().parent / "serving_client.py"
FORMATS = ("saved_model", "onnx", "litert")
FILES = {"saved_model": "", "onnx": "model.onnx", "litert": "model.tflite"}


def catalogue(n_users: int, n_items: int, per_user: int, seed: int = 0):
    """Zipf-like interactions over exactly `n_items` items: every item is someone's interaction once
    (round robin over users), the rest are drawn Zipf-like, so the exports rank the full catalogue."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n_zipf = max(n_users * per_user - n_items, 0)
    users = np.concatenate([np.arange(n_items) % n_users, rng.integers(0, n_users, n_zipf)])
    items = np.concatenate(
        [rng.permutation(n_items), rng.permutation(n_items)[rng.zipf(1.2, n_zipf) % n_items]]
    )
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    timestamps = 1_600_000_000 + np.arange(len(users), dtype=np.int64)
    return pa.table({"user": users.astype(np.int64), "item": items.astype(np.int64), "timestamp": timestamps})


def recctl(*args: str, cwd: Path) -> dict:
    proc = subprocess.run([str(BIN / "recctl"), "--json", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"recctl {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def train(model: str, data: Path, work: Path, extra: list[str]) -> Path:
    result = recctl(
        "train",
        "dataset=csv",
        f"dataset.path={data}",
        "dataset.columns.timestamp=timestamp",
        f"model={model}",
        "trainer.epochs=1",
        "trainer.validate_every=1000",
        "trainer.early_stopping=false",
        "trainer.evaluate_test=false",
        "trainer.checkpoint=false",
        "logger=none",
        *extra,
        cwd=work,
    )
    run = Path(result["run_dir"])
    return run if run.is_absolute() else work / run


def floor_embeddings(run: Path, n_users: int, n_items: int, work: Path, name: str, rng) -> dict:
    """The model's item embedding matrix, and query vectors: the user rows (id models) or random
    vectors of the same width (sequence models, whose query is the encoder's output)."""
    import keras

    import recctl.models.registry  # noqa: F401  (registers recctl's classes for loading)

    model = keras.saving.load_model(run / "model.keras", safe_mode=True, compile=False)
    matrices = [np.asarray(w) for w in model.weights if len(w.shape) == 2]
    items = next(m for m in matrices if m.shape[0] in (n_items, n_items + 1))
    items = items[-n_items:] if items.shape[0] == n_items + 1 else items  # row 0 pads sequences
    users = next((m for m in matrices if m.shape[0] == n_users and m.shape[1] == items.shape[1]), None)
    queries = (
        users if users is not None else rng.standard_normal((n_users, items.shape[1])).astype(np.float32)
    )
    paths = {"query": work / f"{name}_query.npy", "items": work / f"{name}_items.npy"}
    np.save(paths["query"], queries.astype(np.float32))
    np.save(paths["items"], np.ascontiguousarray(items, np.float32))
    return {key: str(value) for key, value in paths.items()}


def client(spec: dict, work: Path) -> dict:
    path = work / f"spec-{spec['runtime']}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, str(CLIENT), str(path)], capture_output=True, text=True, env=env, cwd=work
    )
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["recctl_imported"], "the serving client imported recctl"
    return result


def requests_for(kind: str, runtime: str, ids: dict, n: int, length: int, rng) -> tuple[list, list]:
    """(single requests, one batch): original ids for the SavedModel, indexes for the others."""
    n_users, n_items = len(ids["users"]), len(ids["items"])
    if kind == "user":
        rows = rng.integers(0, n_users, n).tolist()
        as_input = (lambda r: ids["users"][r]) if runtime == "saved_model" else (lambda r: r)
        return [as_input(r) for r in rows[:-1000]], [as_input(r) for r in rows[-1000:]]
    histories = rng.integers(0, n_items, (n, length))
    if runtime == "saved_model":
        rows = [[ids["items"][i] for i in h] for h in histories.tolist()]
    else:
        rows = histories.astype(int).tolist()
    return rows[:-1000], rows[-1000:]


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--singles", type=int, default=300, help="single-user requests timed per process")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per runtime")
    parser.add_argument("--models", default="mf,attention")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    work = Path(tempfile.mkdtemp(prefix="recctl-bench-serving-"))
    data = work / "interactions.parquet"
    pq.write_table(catalogue(args.users, args.items, args.per_user), data)
    rng = np.random.default_rng(7)
    k = 10
    print(
        f"## Serving latency (issue #19, `make bench-serving`, {time.strftime('%Y-%m-%d')}): synthetic, "
        f"{args.users:,} users x {args.items:,} items, k={k}, load average {os.getloadavg()[0]:.2f} at start\n"
    )
    print(
        f"Median over {args.repeats} fresh processes [min-max]; latency over {args.singles} single-user requests.\n"
    )
    print("| model | runtime | p50 ms | p99 ms | users/s, batch of 1,000 | p99 / numpy floor p99 |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        extra = ["trainer.batch_size=4096"] if model == "mf" else ["trainer.batch_size=256"]
        run = train(model, data, work, extra)
        exports = {
            f: Path(recctl("export", f"run={run}", f"export.format={f}", cwd=work)["export_dir"])
            for f in FORMATS
        }
        ids_folder = exports["onnx"]
        ids = {
            "items": (ids_folder / "item_ids.txt").read_text().splitlines(),
            "users": (ids_folder / "user_ids.txt").read_text().splitlines()
            if (ids_folder / "user_ids.txt").is_file()
            else [],
        }
        kind = "user" if ids["users"] else "history"
        length = int(
            OmegaConf.load(run / "config.yaml").model.get("max_length") or 0
        )  # exports take a full window
        n_users = len(ids["users"]) or args.users
        embeddings = floor_embeddings(run, n_users, len(ids["items"]), work, model, rng)
        rows = {}
        for runtime in (*FORMATS, "floor_numpy", "floor_tf"):
            if runtime.startswith("floor"):
                singles = rng.integers(0, n_users, args.singles + 20).tolist()
                batch = rng.integers(0, n_users, 1000).tolist()
                path = ""
            else:
                singles, batch = requests_for(kind, runtime, ids, args.singles + 20 + 1000, length, rng)
                path = str(exports[runtime] / FILES[runtime]) if FILES[runtime] else str(exports[runtime])
            spec = {
                "runtime": runtime,
                "path": path,
                "input": kind,
                "requests": singles,
                "batch": batch,
                "k": k,
                "singles": args.singles,
                "repeats": 5,
                "embeddings": embeddings,
            }
            results = [client(spec, work) for _ in range(args.repeats)]
            errors = [r["error"] for r in results if "error" in r]
            rows[runtime] = [r for r in results if "error" not in r] or errors
        floor = [r["p99_ms"] for r in rows["floor_numpy"] if isinstance(r, dict)]
        for runtime, results in rows.items():
            if results and isinstance(results[0], str):
                print(f"| {model} | {runtime} | failed: {results[0][:80]} | | | |")
                continue
            p99 = [r["p99_ms"] for r in results]
            ratio = f"{statistics.median(p99) / statistics.median(floor):.1f}x" if floor else "-"
            label = {
                "floor_numpy": "floor: numpy matmul + top-k",
                "floor_tf": "floor: TF matmul + top_k",
            }.get(runtime, runtime)
            print(
                f"| {model} | {label} | {cell([r['p50_ms'] for r in results], '{:.2f}')} | {cell(p99, '{:.2f}')} | "
                f"{cell([r['users_per_s'] for r in results], '{:,.0f}')} | {ratio} |"
            )
    print(f"\n(work folder: {work})")


if __name__ == "__main__":
    main()
