"""What the optimizer costs per epoch: mf on ml-100k, the same batches (cached), several optimizers.

Issue #8 notes that Adam's slot updates once cost ~40% of an MF step here. This measures the
steady-state seconds per training epoch (median of 5 epochs after a compiling one) for each
optimizer, with mf's default per-example negatives and with shared negatives. Keras 3 has no
sparse-aware ("lazy") Adam: every optimizer updates the whole embedding tables each step.

    python benchmarks/optimizers.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))


def main() -> None:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore")
    import keras
    from omegaconf import OmegaConf

    from recctl.data.pipelines import EpochClock, id_training_dataset
    from recctl.data.prepare import ensure_snapshot
    from recctl.training.factory import build_model

    dataset = OmegaConf.load(REPO / "conf" / "dataset" / "ml_100k.yaml")
    dataset.root = str(DATASETS / "ml-100k")
    dataset.pop("defaults", None)
    snapshot, _ = ensure_snapshot(dataset, Path(tempfile.mkdtemp(prefix="recctl-opt-")), 42)
    users, items = snapshot.pairs("train")
    optimizers = {
        "Adam": lambda: keras.optimizers.Adam(1e-3),
        "AdamW": lambda: keras.optimizers.AdamW(1e-3),
        "Adagrad": lambda: keras.optimizers.Adagrad(0.05),
        "SGD": lambda: keras.optimizers.SGD(0.05),
        "SGD + momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    }
    print("| optimizer | per-example negatives (64): s/epoch | shared negatives (256): s/epoch |")
    print("|---|---|---|")
    for name, make in optimizers.items():
        cells = []
        for shared, negatives in ((False, 64), (True, 256)):
            cfg = OmegaConf.load(REPO / "conf" / "model" / "mf.yaml")
            cfg.shared_negatives, cfg.num_negatives = shared, negatives
            model = build_model(cfg, snapshot)
            model.compile(
                optimizer=make(), loss=model.training_loss(), jit_compile=True, steps_per_execution=32
            )
            clock = EpochClock()
            data = id_training_dataset(
                users, items, snapshot.n_items, 1024, negatives, 0, clock, shared
            ).cache()
            times = []
            for _ in range(6):
                start = time.perf_counter()
                model.fit(data, epochs=1, verbose=0)
                times.append(time.perf_counter() - start)
            cells.append(f"{statistics.median(times[1:]):.3f} [{min(times[1:]):.3f}-{max(times[1:]):.3f}]")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
