"""Do the default configs hold up on data they were not tuned on? (issue #3: no hand-tuning)

Trains every model family with its default config on dataset shapes other than ml-100k and prints
test NDCG@10 beside popularity:
  - synthetic, larger and sparser (5000 users x 3000 items, ~20 interactions each)
  - synthetic, small and dense (500 users x 200 items, ~40 each)
  - MovieLens 100K as a plain CSV with no timestamps and no side features (random split)
    python benchmarks/robustness.py [model ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from common import train_result

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
MODELS = ["mf", "wide_deep", "neumf", "cnn", "lstm", "attention", "autoencoder", "deepfm", "lightgcn"]


def datasets(work: Path) -> dict[str, list[str]]:
    out = {
        "synthetic 5000x3000 sparse": [
            "dataset.synthetic.n_users=5000",
            "dataset.synthetic.n_items=3000",
            "dataset.synthetic.mean_interactions=20",
        ],
        "synthetic 500x200 dense": [
            "dataset.synthetic.n_users=500",
            "dataset.synthetic.n_items=200",
            "dataset.synthetic.mean_interactions=40",
        ],
    }
    udata = DATASETS / "ml-100k" / "u.data"
    if udata.is_file():
        csv = work / "ml100k_plain.csv"
        lines = ["user,item"] + [",".join(line.split("\t")[:2]) for line in udata.read_text().splitlines()]
        csv.write_text("\n".join(lines) + "\n")
        out["ml-100k csv, no timestamps/features, random split"] = [
            "dataset=csv",
            f"dataset.path={csv}",
            "dataset.split=random",
            "dataset.row_order_is_time=true",  # u.data's order, for the sequence families
        ]
    return out


def main() -> None:
    models = sys.argv[1:] or MODELS
    work = Path(tempfile.mkdtemp(prefix="recctl-robust-"))
    print("| dataset | model | test NDCG@10 | pop | lift | epochs | fit s |\n|---|---|---|---|---|---|---|")
    for name, args in datasets(work).items():
        for model in models:
            r, failure = train_result([f"model={model}", *args], work)
            if failure:
                print(f"| {name} | {model} | {failure} |||||")
                continue
            t, p = r["metrics"]["test"]["ndcg@10"], r["baseline"]["pop"]["test"]["ndcg@10"]
            print(
                f"| {name} | {model} | {t:.4f} | {p:.4f} | {t / p:.2f}x | {r['seconds']['epochs']} | {r['seconds']['fit']:.1f} |"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
