"""A 20-trial Optuna search of one family with and without median pruning (issue #18), on ml-100k.

Both searches run the same command (`recctl train -m experiment=ml100k_mf_fast hparams_search=mf_optuna`,
TPE seeded 42) in the same session, one after the other, each in a fresh folder so neither continues
the other's study; only `hydra.sweeper.pruner` differs. Reported per search: wall seconds, the best
validation NDCG@10, the seconds from launch until the trial that reached it completed, trials pruned,
and the epochs trained in all. Read from the study's own SQLite file (trial start/complete times).

    .venv/bin/python benchmarks/search.py [--trials 20] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))


def one_search(pruner: str, trials: int, work: Path) -> dict:
    import optuna

    work.mkdir(parents=True)
    cmd = [
        str(BIN / "recctl"),
        "train",
        "-m",
        "experiment=ml100k_mf_fast",
        "hparams_search=mf_optuna",
        f"dataset.root={DATASETS / 'ml-100k'}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.pruner={pruner}",
        "logger=none",
    ]
    launched = time.time()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.time() - launched
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="mf_optuna", storage=f"sqlite:///{work / 'outputs/optuna/mf_optuna.db'}"
    )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    best = max(done, key=lambda t: t.value)
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {
        "wall": wall,
        "best": best.value,
        "to_best": best.datetime_complete.timestamp() - launched,
        "pruned": len(pruned),
        "epochs": epochs,
        "trials": len(study.trials),
        # (seconds from launch, value) of every completed trial, in completion order
        "curve": sorted((t.datetime_complete.timestamp() - launched, t.value) for t in done),
    }


def first_reaching(curve: list[tuple[float, float]], value: float) -> float:
    return next(seconds for seconds, v in curve if v >= value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1, help="searches per setting (median reported)")
    args = parser.parse_args()
    if not (DATASETS / "ml-100k" / "u.data").is_file():
        raise SystemExit(f"ml-100k not found under {DATASETS} (set RECCTL_DATASETS)")
    root = Path(tempfile.mkdtemp(prefix="recctl-bench-search-"))
    results: dict[str, list[dict]] = {"none": [], "median": []}
    for repeat in range(args.repeats):  # interleaved, so a drift in machine load hits both alike
        for pruner in ("none", "median"):
            results[pruner].append(one_search(pruner, args.trials, root / f"{pruner}-{repeat}"))
    print(
        f"\n## Optuna search, {args.trials} trials of `experiment=ml100k_mf_fast hparams_search=mf_optuna` "
        f"(TPE seed 42), {args.repeats} search(es) per setting, load average {os.getloadavg()[0]:.2f} at end\n"
    )
    # The two searches may end on different bests (pruning changes what TPE learns from), so each is
    # also timed to the lower of the two bests: the same figure, reached by both.
    common = min(r["best"] for rows in results.values() for r in rows)
    for rows in results.values():
        for r in rows:
            r["to_common"] = first_reaching(r["curve"], common)
    print(f"s to {common:.4f}: seconds until the search first reached the lower of the bests\n")
    print(
        f"| pruner | wall s | s to best | best valid NDCG@10 | s to {common:.4f} | trials pruned | epochs trained |"
    )
    print("|---|---|---|---|---|---|---|")
    for pruner, rows in results.items():

        def cell(key, fmt, rows=rows):
            values = [r[key] for r in rows]
            med = statistics.median(values)
            return fmt.format(med) + (
                f" [{fmt.format(min(values))}-{fmt.format(max(values))}]" if len(rows) > 1 else ""
            )

        print(
            f"| {pruner} | {cell('wall', '{:.0f}')} | {cell('to_best', '{:.0f}')} | {cell('best', '{:.4f}')} | "
            f"{cell('to_common', '{:.0f}')} | "
            f"{cell('pruned', '{:.0f}')} | {cell('epochs', '{:.0f}')} |"
        )
    print(f"\n(work folder: {root})")


if __name__ == "__main__":
    main()
