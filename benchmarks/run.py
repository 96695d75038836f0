"""`make bench`: the figures in BENCHMARKS.md, measured on this machine, printed as Markdown.

1. CLI start-up: `recctl --help` and `recctl train --help` beside `python -c "import tensorflow"`
   (median and min-max of 5 / 3 runs).
2. Quality and training time on MovieLens 100K (peer protocol) for every model family, with default
   configs, beside the popularity baseline and issue #3's bar; wide_deep's CTR task; and every family
   on the embedded synthetic dataset.
Runs in a temporary folder; the datasets folder comes from $RECCTL_DATASETS or ../shared/datasets.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
MODELS = ("pop", "mf", "wide_deep", "neumf", "cnn", "lstm", "attention", "autoencoder", "deepfm", "lightgcn")
# Issue #3's bars: 0.95 x RecBole 1.2.1's counterpart on the same protocol (sequence families: GRU4Rec);
# every model must also beat pop.
ML100K_BARS = {
    "mf": 0.0639,
    "neumf": 0.0617,
    "autoencoder": 0.0467,
    "cnn": 0.0457,
    "lstm": 0.0457,
    "attention": 0.0457,
    "wide_deep": 0.0449,
    "lightgcn": 0.0465,  # issue #16: 0.95 x RecBole LightGCN (0.0489)
    "deepfm": 0.0449,
}
# The labelled-row experiments of issue #16 beside wide_deep's CTR: (experiment, metric, bar).
LABELLED = (
    ("ml100k_ctr", "auc", 0.7830),
    ("ml100k_deepfm_ctr", "auc", 0.785),
    ("ml100k_xdeepfm_ctr", "auc", 0.785),
    ("ml100k_dcn_ctr", "auc", 0.785),
    ("ml100k_rating", "rmse", 0.945),
)


def timed(cmd: list[str], runs: int, cwd: Path) -> tuple[float, float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples), max(samples)


def train(args: list[str], cwd: Path) -> dict:
    proc = subprocess.run(
        [str(BIN / "recctl"), "--json", "train", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"recctl train {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="recctl-bench-"))
    load = os.getloadavg()[0]
    print(
        f"# recctl benchmarks ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.2f} at start)\n"
    )
    print("## CLI start-up (seconds: median [min-max])\n")
    print("| command | runs | median | min | max |\n|---|---|---|---|---|")
    for label, cmd, runs in (
        ("recctl --help", [str(BIN / "recctl"), "--help"], 5),
        ("recctl train --help", [str(BIN / "recctl"), "train", "--help"], 5),
        ('python -c "import tensorflow"', [sys.executable, "-c", "import tensorflow"], 3),
    ):
        med, lo, hi = timed(cmd, runs, work)
        print(f"| `{label}` | {runs} | {med:.3f} | {lo:.3f} | {hi:.3f} |")

    ml = DATASETS / "ml-100k"
    rows = []
    ctr = None
    if (ml / "u.data").is_file():
        for model in MODELS:
            r = train(["dataset=ml_100k", f"dataset.root={ml}", f"model={model}"], work)
            rows.append(("ml_100k", model, r))
        ctr = [
            (name, metric, bar, train([f"experiment={name}", f"dataset.root={ml}"], work))
            for name, metric, bar in LABELLED
        ]
    else:
        print(f"\n(ml-100k not found at {ml}: skipped)")
    for model in MODELS:
        rows.append(("synthetic (default)", model, train([f"model={model}"], work)))
    print("\n## Quality (test, full ranking, history masked) and training time, default configs\n")
    print("| dataset | model | NDCG@10 | HR@10 | pop NDCG@10 | lift | bar | epochs | fit s | s/epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dataset, model, r in rows:
        t, p, s = r["metrics"]["test"], r["baseline"]["pop"]["test"], r["seconds"]
        per_epoch = f"{s['per_epoch']:.2f}" if s["per_epoch"] else "-"
        bar = f"{ML100K_BARS[model]:.4f}" if dataset == "ml_100k" and model in ML100K_BARS else "-"
        print(
            f"| {dataset} | {model} | {t['ndcg@10']:.4f} | {t['hr@10']:.4f} | {p['ndcg@10']:.4f} | "
            f"{t['ndcg@10'] / p['ndcg@10']:.2f}x | {bar} | {s['epochs'] or 0} | {s['fit'] or 0:.1f} | {per_epoch} |"
        )
    print(f"\nprotocol: {rows[0][2]['protocol']}")
    if ctr is not None:
        print(
            "\n| experiment | test metric | value | bar | epochs | fit s | s/epoch |\n|---|---|---|---|---|---|---|"
        )
        for name, metric, bar, r in ctr:
            t, s = r["metrics"]["test"], r["seconds"]
            print(
                f"| {name} | {metric} | {t[metric]:.4f} | {bar} | {s['epochs']} | {s['fit']:.1f} | {s['per_epoch']:.2f} |"
            )
    strategies(work)
    print(f"(work folder: {work})")


def strategies(work: Path) -> None:
    """What extra replicas cost on this CPU: mf on the synthetic default, 3 epochs, 3 runs each."""
    print("\n## Strategies on this CPU (mf, synthetic default, 3 epochs, fit seconds: median [min-max])\n")
    print("| strategy | runs | median fit s | min | max |\n|---|---|---|---|---|")
    common = [
        "trainer.epochs=3",
        "trainer.early_stopping=false",
        "logger=none",
        "trainer.evaluate_test=false",
    ]
    for label, args in (
        ("cpu (one device, XLA, 32 steps/call)", ["strategy=cpu"]),
        ("mirrored over 2 logical CPUs", ["strategy=mirrored", "strategy.logical_cpus=2"]),
    ):
        fits = [train([*common, *args], work)["seconds"]["fit"] for _ in range(3)]
        print(f"| {label} | 3 | {statistics.median(fits):.1f} | {min(fits):.1f} | {max(fits):.1f} |")


if __name__ == "__main__":
    main()
