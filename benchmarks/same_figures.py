"""Does a change move any figure? Train the same configs with the code of a base revision and with
the working tree, alternately in one run, and compare test metrics (identical at a fixed seed, unless
the change altered the computation) and seconds per epoch (noise only).

    python benchmarks/same_figures.py --base 7e074f8 --models mf cnn autoencoder

The base revision is checked out into a temporary git worktree and run from the same virtualenv
(`python -m recctl` with that worktree first on PYTHONPATH). Prints a Markdown table.
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


def train(code: Path, args: list[str], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run(
        [sys.executable, "-m", "recctl", "--json", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"train {' '.join(args)} with {code} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the working tree with")
    parser.add_argument("--models", nargs="+", default=["mf", "cnn", "autoencoder"])
    parser.add_argument("--dataset", default="ml_100k", help="ml_100k or synthetic")
    parser.add_argument("--runs", type=int, default=1, help="runs per side (seconds: median)")
    args = parser.parse_args()
    data = [] if args.dataset == "synthetic" else ["dataset=ml_100k", f"dataset.root={DATASETS / 'ml-100k'}"]

    with tempfile.TemporaryDirectory(prefix="recctl-same-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            rows = []
            for model in args.models:
                sides: dict[str, list[dict]] = {"base": [], "tree": []}
                for i in range(args.runs):
                    for side, code in (("base", base), ("tree", REPO)):
                        work = Path(tmp) / f"{side}-{model}-{i}"
                        work.mkdir()
                        sides[side].append(train(code, [*data, f"model={model}"], work))
                rows.append((model, sides))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)

    print(
        f"\n{args.dataset}, base {args.base} against the working tree, {args.runs} run(s) per side, seed 42\n"
    )
    print(
        "| model | test NDCG@10 base | tree | identical metrics | epochs base / tree | s/epoch base | tree |"
    )
    print("|---|---|---|---|---|---|---|")
    for model, sides in rows:
        b, t = sides["base"][0], sides["tree"][0]
        same = all(s["metrics"] == b["metrics"] for s in sides["tree"] + sides["base"])

        def per_epoch(runs: list[dict]) -> str:
            values = sorted(r["seconds"]["per_epoch"] or 0.0 for r in runs)
            return f"{values[len(values) // 2]:.2f}" + (
                f" [{values[0]:.2f}-{values[-1]:.2f}]" if len(values) > 1 else ""
            )

        metric = "ndcg@10"
        print(
            f"| {model} | {b['metrics']['test'][metric]:.4f} | {t['metrics']['test'][metric]:.4f} | "
            f"{'yes' if same else 'NO'} | {b['seconds']['epochs']} / {t['seconds']['epochs']} | "
            f"{per_epoch(sides['base'])} | {per_epoch(sides['tree'])} |"
        )


if __name__ == "__main__":
    main()
