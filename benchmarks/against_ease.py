"""Which deep families beat EASE beyond noise? Train EASE, the kNN baselines and every family at their
defaults on one dataset, then `recctl compare` each against EASE (paired per-user differences on the
same split, 95% bootstrap interval, sign-flip p-value). Prints a Markdown table for BENCHMARKS.md.

    python benchmarks/against_ease.py --dataset ml_100k
    python benchmarks/against_ease.py --dataset synthetic --models cnn mf

Quality only: the seconds of a run that shares the machine with nothing else are in `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
FAMILIES = [
    "item_knn",
    "user_knn",
    "pop",
    "mf",
    "neumf",
    "wide_deep",
    "cnn",
    "lstm",
    "attention",
    "autoencoder",
]


def recctl(*args: str, cwd: Path, expect: tuple[int, ...] = (0,)) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "recctl", "--json", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode not in expect:
        raise SystemExit(f"recctl {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml_100k", help="ml_100k or synthetic")
    parser.add_argument("--models", nargs="+", default=FAMILIES)
    parser.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()
    data = [] if args.dataset == "synthetic" else ["dataset=ml_100k", f"dataset.root={DATASETS / 'ml-100k'}"]
    with tempfile.TemporaryDirectory(prefix="recctl-ease-") as tmp:
        work = Path(tmp)
        ease = recctl("train", *data, "model=ease", cwd=work)
        rows, method = [], ""
        for model in args.models:
            run = recctl("train", *data, f"model={model}", cwd=work)
            compared = recctl("compare", f"run={run['run_dir']}", f"base={ease['run_dir']}", cwd=work)
            rows.append((model, run, compared["comparison"]["test"][args.metric]))
            method = compared["comparison"]["method"]
            print(f"{model}: done", file=sys.stderr, flush=True)
    m = args.metric
    low, high = ease["intervals"]["test"][m]
    print(
        f"\n{args.dataset}, defaults, seed 42; EASE test {m} {ease['metrics']['test'][m]:.4f} [{low:.4f}, {high:.4f}]\n"
    )
    print(f"| model | test {m} [95% interval] | minus EASE [95% paired interval] | p | verdict |")
    print("|---|---|---|---|---|")
    for model, run, c in rows:
        lo, hi = run["intervals"]["test"][m]
        verdict = (
            "beats EASE" if c["ci"][0] > 0 else ("below EASE" if c["ci"][1] < 0 else "not distinguishable")
        )
        print(
            f"| {model} | {c['run']:.4f} [{lo:.4f}, {hi:.4f}] | {c['diff']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}] "
            f"| {c['p_value']:.4f} | {verdict} |"
        )
    print(f"\n`recctl compare run=<model> base=<ease>`: {method}")


if __name__ == "__main__":
    main()
