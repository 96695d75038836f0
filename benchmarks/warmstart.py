"""Weekly replay of ml-100k (issue #17, part 5): does a warm start pay?

ml-100k's ratings span 31 weeks (week w = the 7 days from the first timestamp + 7w days). For a
slice s: the data is every rating before week s+2, split on one clock (`dataset.split=time`):
weeks 0..s-1 train, week s validation, week s+1 test. Per slice, the same command trains

- scratch: from random weights on weeks 0..s-1;
- warm: `init_from=` the scratch run of slice s-1 (trained on weeks 0..s-2, so the new week s-1 is
  what it has not seen), `trainer.carry_optimizer=true`, on the same data as scratch;

and reports test NDCG@10 (with the evaluation's 95% interval over users), fit seconds and epochs.
Early stopping on validation NDCG@10 decides when each stops. The files are written to a temporary
folder (the ml-100k licence forbids copies in the repo); both runs of a slice read the same file.

    .venv/bin/python benchmarks/warmstart.py [--slices 24,26,28] [--families mf,lstm] [--repeats 1]
        [--warm-args 'trainer.patience=1']   (extra overrides for the warm runs only)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
WEEK = 7 * 86400

# Each family's settings (mf: experiment=ml100k_mf_fast's, spelled out because the experiment pins
# dataset=ml_100k; lstm: its defaults).
FAMILIES = {
    "mf": [
        "model=mf",
        "model.num_negatives=256",
        "model.shared_negatives=true",
        "model.l2=0.0003",
        "optimizer.learning_rate=0.005",
        "trainer.batch_size=512",
        "trainer.epochs=40",
        "trainer.patience=3",
    ],
    "lstm": ["model=lstm"],
    "attention": ["model=attention"],
}


def write_slice(ratings, t0: int, s: int, folder: Path) -> tuple[Path, list[int]]:
    """The ratings before week s+2 as a CSV, and the cutoffs [start of week s, start of week s+1]."""
    path = folder / f"weeks_0_{s + 1}.csv"
    if not path.is_file():
        ratings[ratings["timestamp"] < t0 + (s + 2) * WEEK].to_csv(path, index=False)
    return path, [t0 + s * WEEK, t0 + (s + 1) * WEEK]


def train(family: str, data: Path, cutoffs: list[int], work: Path, seed: int, extra: list[str]) -> dict:
    cmd = [
        str(BIN / "recctl"),
        "--json",
        "train",
        *FAMILIES[family],
        "dataset=csv",
        "dataset.name=ml100k_weeks",
        f"dataset.path={data}",
        "dataset.columns.timestamp=timestamp",
        "dataset.ties=row",
        "dataset.split=time",
        f"dataset.time_cutoffs=[{cutoffs[0]},{cutoffs[1]}]",
        f"seed={seed}",
        "logger=none",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    test = result["metrics"]["test"]
    interval = result.get("intervals", {}).get("test", {}).get("ndcg@10")
    return {
        "run": result["run_dir"],
        "ndcg": test["ndcg@10"],
        "interval": interval,
        "fit": result["seconds"]["fit"],
        "epochs": result["seconds"].get("epochs"),
    }


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="24,26,28")
    parser.add_argument("--families", default="mf,lstm")
    parser.add_argument("--repeats", type=int, default=1, help="seeds per slice (42, 43, ...)")
    parser.add_argument(
        "--warm-args", default="", help="extra overrides of the warm run only, e.g. 'trainer.patience=1'"
    )
    args = parser.parse_args()
    source = DATASETS / "ml-100k" / "u.data"
    if not source.is_file():
        raise SystemExit(f"{source}: not found (set RECCTL_DATASETS to the folder holding ml-100k/)")
    ratings = pd.read_csv(source, sep="\t", names=["user", "item", "rating", "timestamp"])
    t0 = int(ratings["timestamp"].min())
    slices = [int(s) for s in args.slices.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="recctl-warmstart-") as tmp:
        work = Path(tmp)
        for family in args.families.split(","):
            for s in slices:
                for seed in range(42, 42 + args.repeats):
                    before, before_cut = write_slice(ratings, t0, s - 1, work)
                    data, cut = write_slice(ratings, t0, s, work)
                    base = train(family, before, before_cut, work, seed, [])
                    scratch = train(family, data, cut, work, seed, [])
                    warm = train(
                        family,
                        data,
                        cut,
                        work,
                        seed,
                        [f"init_from={base['run']}", "trainer.carry_optimizer=true", *args.warm_args.split()],
                    )
                    row = {"family": family, "slice": s, "seed": seed, "scratch": scratch, "warm": warm}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    if args.warm_args:
        print(f"warm runs also: {args.warm_args}")
    print(
        "| family | slice (train weeks, test week) | scratch NDCG@10 (95%) | warm NDCG@10 | scratch fit s (epochs) | warm fit s (epochs) | warm/scratch s | warm within scratch's interval |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for family in args.families.split(","):
        for s in slices:
            mine = [r for r in rows if r["family"] == family and r["slice"] == s]
            sc = statistics.median(r["scratch"]["ndcg"] for r in mine)
            wa = statistics.median(r["warm"]["ndcg"] for r in mine)
            sf = statistics.median(r["scratch"]["fit"] for r in mine)
            wf = statistics.median(r["warm"]["fit"] for r in mine)
            interval = mine[0]["scratch"]["interval"]
            low = interval[0] if isinstance(interval, list) else (interval or {}).get("low")
            within = "yes" if low is not None and wa >= low else ("no" if low is not None else "?")
            iv = f" ({interval[0]:.4f}-{interval[1]:.4f})" if isinstance(interval, list) else ""
            print(
                f"| {family} | 0-{s - 1}, {s + 1} | {sc:.4f}{iv} | {wa:.4f} | {sf:.1f} ({mine[0]['scratch']['epochs']}) "
                f"| {wf:.1f} ({mine[0]['warm']['epochs']}) | {wf / sf:.2f} | {within} |"
            )


if __name__ == "__main__":
    main()
