"""`make bench-targets`: issue #8's time-to-model targets against RecBole 1.2.1, on ml-100k.

For each family: recctl trains its configuration to the end (early stopping as configured) and
`seconds.fit` is compared with RecBole's fit time until early stopping, at >= 0.95x its test metric.
For the sequence families the target is seconds of training until validation NDCG@10 first reaches
0.0667 (0.95 x RecBole GRU4Rec's best), against RecBole GRU4Rec's 988 s: within 198 s. That time is
read from history.csv as (epochs up to and including the first one at the threshold) x the run's
seconds per epoch (validation included; the first epoch's compilation spread over all).

The RecBole figures are issue #8's reference measurements (same machine class, 2 cores), not measured
here: `make bench-peers` runs RecBole itself. Median of --runs runs, min-max beside.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from recctl.runs import RunFolder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import train_result  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))

# recctl config -> (RecBole counterpart, its fit seconds, its test metric, metric name)
PAIRS = [
    ("experiment=ml100k_mf_fast", "BPR", 27.5, 0.0673, "ndcg@10"),
    ("experiment=ml100k_neumf_fast", "NeuMF", 182.0, 0.0649, "ndcg@10"),
    ("experiment=ml100k_autoencoder_fast", "MultiVAE", 22.4, 0.0433, "ndcg@10"),
    ("experiment=ml100k_ctr", "WideDeep (CTR)", 43.0, 0.7830, "auc"),
    ("model=mf", "BPR (recctl default config)", 27.5, 0.0673, "ndcg@10"),
]
SEQUENCE = ["model=cnn", "model=lstm", "model=attention", "experiment=ml100k_attention"]
SEQ_THRESHOLD, SEQ_RECBOLE_SECONDS = 0.0667, 988.0


def span(values: list[float], fmt: str = "{:.1f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def seconds_to_threshold(result: dict) -> float | None:
    with open(RunFolder(Path(result["run_dir"])).history, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows, start=1):
        if float(row.get("val_ndcg@10") or 0) >= SEQ_THRESHOLD:
            return n * result["seconds"]["fit"] / len(rows)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequence-runs", type=int, default=1)
    args = parser.parse_args()
    ml = DATASETS / "ml-100k"
    if not (ml / "u.data").is_file():
        raise SystemExit(f"MovieLens 100K not found at {ml} (set RECCTL_DATASETS)")
    work = Path(tempfile.mkdtemp(prefix="recctl-targets-"))
    base = ["dataset=ml_100k", f"dataset.root={ml}", "logger=none"]
    print(
        f"# issue #8 targets on ml-100k ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; RecBole figures: issue #8's reference)\n"
    )
    print(
        "| recctl config | RecBole | recctl fit s | RecBole fit s | speed-up | recctl test | RecBole test | ratio | met |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for config, peer, peer_s, peer_metric, metric in PAIRS:
        fits, values = [], []
        for _ in range(args.runs):
            result, why = train_result([*base, config], work)
            if result is None:
                raise SystemExit(f"{config}: {why}")
            fits.append(result["seconds"]["fit"])
            values.append(result["metrics"]["test"][metric])
        fit, value = statistics.median(fits), statistics.median(values)
        met = fit * 5 <= peer_s and value >= 0.95 * peer_metric
        print(
            f"| `{config}` | {peer} | {span(fits)} | {peer_s:.1f} | {peer_s / fit:.1f}x | "
            f"{metric} {span(values, '{:.4f}')} | {peer_metric:.4f} | {value / peer_metric:.2f} | "
            f"{'yes' if met else '**no**'} |"
        )
    print(
        f"\nSequence families: seconds of training until validation NDCG@10 first reaches {SEQ_THRESHOLD} "
        f"(RecBole GRU4Rec: {SEQ_RECBOLE_SECONDS:.0f} s; target within {SEQ_RECBOLE_SECONDS / 5:.0f} s)\n"
    )
    print(
        "| recctl config | seconds to threshold | speed-up vs GRU4Rec | best valid NDCG@10 | test NDCG@10 | met |"
    )
    print("|---|---|---|---|---|---|")
    for config in SEQUENCE:
        times, bests, tests = [], [], []
        for _ in range(args.sequence_runs):
            result, why = train_result([*base, config], work)
            if result is None:
                raise SystemExit(f"{config}: {why}")
            times.append(seconds_to_threshold(result) or float("inf"))
            bests.append(result["metrics"]["valid"]["ndcg@10"])
            tests.append(result["metrics"]["test"]["ndcg@10"])
        t = statistics.median(times)
        print(
            f"| `{config}` | {span(times)} | {SEQ_RECBOLE_SECONDS / t:.1f}x | {span(bests, '{:.4f}')} | "
            f"{span(tests, '{:.4f}')} | {'yes' if t * 5 <= SEQ_RECBOLE_SECONDS else '**no**'} |"
        )
    print(f"\n(work folder: {work})")


if __name__ == "__main__":
    main()
