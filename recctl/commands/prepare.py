"""recctl prepare: make (or find) the dataset snapshot for the configured dataset."""

from __future__ import annotations

from recctl import console
from recctl.data.prepare import ensure_snapshot
from recctl.evaluation.tasks import ranking_protocol
from recctl.plan import prepare_plan


def run(cfg, result: dict) -> dict:
    plan = prepare_plan(cfg)
    snapshot, created = ensure_snapshot(plan.dataset, plan.paths.data_dir, plan.seed)
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
    result["protocol"] = ranking_protocol(snapshot)
    return result
