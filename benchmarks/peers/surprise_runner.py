"""Train scikit-surprise's rating models on recctl's split and write their errors as JSON (run by
benchmarks/peers/run.py --rating).

Runs inside the surprise virtualenv (.venv-peers-surprise: scikit-surprise 1.1.5), never recctl's:

    .venv-peers-surprise/bin/python benchmarks/peers/surprise_runner.py FOLDER OUT.json

FOLDER holds recctl's split as train.tsv, valid.tsv and test.tsv (header `user_id item_id rating`,
original ids), written by run.py. Each of BaselineOnly, SVD and SVDpp is fitted on train at surprise's
defaults (random_state 0 where the algorithm has one) and scored on valid and test: RMSE and MAE of
surprise's predictions, which it clips to the rating scale (1..5), and the test RMSE unclipped too
(recctl's predictions are its model's raw output). Fit seconds: `algo.fit(trainset)` alone.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import surprise
from surprise import SVD, BaselineOnly, Dataset, Reader, SVDpp, accuracy

ALGORITHMS = {
    "BaselineOnly": lambda: BaselineOnly(verbose=False),
    "SVD": lambda: SVD(random_state=0),
    "SVDpp": lambda: SVDpp(random_state=0),
}


def read_rows(path: Path) -> list[tuple[str, str, float]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)  # header
        return [(u, i, float(r)) for u, i, r in rows]


def scores(algo, rows: list[tuple[str, str, float]]) -> dict[str, float]:
    predictions = algo.test(rows)
    return {
        "rmse": accuracy.rmse(predictions, verbose=False),
        "mae": accuracy.mae(predictions, verbose=False),
    }


def main(folder: str, out_path: str) -> None:
    folder_path = Path(folder)
    reader = Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5), skip_lines=1)
    trainset = Dataset.load_from_file(str(folder_path / "train.tsv"), reader).build_full_trainset()
    valid, test = read_rows(folder_path / "valid.tsv"), read_rows(folder_path / "test.tsv")
    out = {
        "surprise": surprise.__version__,
        "numpy": np.__version__,
        "rows": {"train": trainset.n_ratings, "valid": len(valid), "test": len(test)},
        "users": trainset.n_users,
        "items": trainset.n_items,
        "models": {},
    }
    for name, make in ALGORITHMS.items():
        algo = make()
        start = time.perf_counter()
        algo.fit(trainset)
        fit = time.perf_counter() - start
        raw = np.array([algo.predict(u, i, clip=False).est for u, i, _ in test])
        truth = np.array([r for *_, r in test])
        out["models"][name] = {
            "fit_seconds": fit,
            "epochs": getattr(algo, "n_epochs", None) or algo.bsl_options.get("n_epochs", 10),  # ALS sweeps
            "valid": scores(algo, valid),
            "test": scores(algo, test),
            "test_rmse_unclipped": float(np.sqrt(np.mean((raw - truth) ** 2))),
        }
        print(f"{name}: fit {fit:.1f} s, {json.dumps(out['models'][name])}", file=sys.stderr)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
