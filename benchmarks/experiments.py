"""Check the figures quoted in conf/experiment/ml100k_*.yaml: train each one, print test metrics.

    python benchmarks/experiments.py [family ...]      (needs ml-100k under $RECCTL_DATASETS)

Quality only: the seconds printed come from whatever else the machine is doing; timings belong to
`make bench`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from common import train_result

from recctl.runs import RunFolder

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
FAMILIES = [
    "mf", "wide_deep", "neumf", "cnn", "lstm", "attention", "autoencoder", "ctr",
    "lightgcn", "deepfm_ctr", "xdeepfm_ctr", "dcn_ctr", "rating",
]  # fmt: skip


def main() -> None:
    ml = DATASETS / "ml-100k"
    if not (ml / "u.data").is_file():
        raise SystemExit(f"ml-100k not found at {ml}")
    work = Path(tempfile.mkdtemp(prefix="recctl-experiments-"))
    print(
        "| experiment | test NDCG@10 | HR@10 | AUC | RMSE | pop NDCG@10 | epochs | best epoch |\n|---|---|---|---|---|---|---|---|"
    )
    for family in sys.argv[1:] or FAMILIES:
        name = f"ml100k_{family}"
        r, failure = train_result([f"experiment={name}", f"dataset.root={ml}", "logger=none"], work)
        if failure:
            print(f"| {name} | {failure} ||||||")
            continue
        t, p = r["metrics"]["test"], r["baseline"]["pop"]["test"] or {}
        manifest = json.loads(RunFolder(Path(work) / r["run_dir"]).manifest.read_text())
        print(
            f"| {name} | {t.get('ndcg@10', float('nan')):.4f} | {t.get('hr@10', float('nan')):.4f} | "
            f"{t.get('auc', float('nan')):.4f} | {t.get('rmse', float('nan')):.4f} | "
            f"{p.get('ndcg@10', float('nan')):.4f} | {r['seconds']['epochs']} | "
            f"{manifest.get('best_epoch')} |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
