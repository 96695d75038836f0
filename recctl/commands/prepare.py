"""recctl prepare: make (or find) the dataset snapshot for the configured dataset."""

from __future__ import annotations

from recctl import console, settings
from recctl.data.prepare import ensure_snapshot


def run(cfg, result: dict) -> dict:
    snapshot, created = ensure_snapshot(cfg.dataset, settings.paths(cfg).data_dir, settings.seed(cfg))
    if not created:
        console.info(f"snapshot up to date: {snapshot.path} (same inputs and settings; nothing to do)")
    stats = snapshot.stats
    console.info(
        f"{snapshot.name}: {stats['n_users']} users, {stats['n_items']} items, {stats['n_interactions']} interactions "
        f"(train {stats['train']}, valid {stats['valid']}, test {stats['test']}); split {stats['split']}"
    )
    result["dataset"] = {
        "name": snapshot.name,
        "fingerprint": snapshot.fingerprint,
        "path": str(snapshot.path),
        "created": created,
        "stats": {k: stats[k] for k in ("n_users", "n_items", "n_interactions", "train", "valid", "test")},
    }
    result["protocol"] = snapshot.protocol()
    return result
