"""recctl export: a finished run -> outputs/exports/<name>/<N>/ (TensorFlow Serving layout + model card)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recctl import __version__, console, settings
from recctl.artifacts import (
    atomic_write_json,
    atomic_write_text,
    environment,
    now_iso,
    publish_version,
    read_json,
    resolve_run,
    staging_dir,
)


def run(cfg, result: dict) -> dict:
    export = settings.export(cfg)
    output_dir = Path(settings.paths(cfg).output_dir)
    run_dir = resolve_run(cfg.get("run"), output_dir)
    result["run_dir"] = str(run_dir.resolve())

    from recctl.runs import load_run

    loaded = load_run(run_dir)
    name = export.name or loaded.model_name
    result["model"] = loaded.model_name
    result["dataset"] = {"name": loaded.snapshot.name, "fingerprint": loaded.snapshot.fingerprint}
    result["protocol"] = loaded.snapshot.protocol(getattr(loaded.model, "task", "ranking"))
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    result["metrics"] = metrics.get("metrics") or result["metrics"]
    result["baseline"] = metrics.get("baseline") or result["baseline"]

    from recctl.export.saved_model import write_saved_model

    parent = output_dir / "exports" / name
    staged = staging_dir(parent)
    try:
        signatures = write_saved_model(loaded.model, loaded.snapshot, staged, export.k)
        items = loaded.snapshot.items[
            [c for c in ("item", "item_id", "title") if c in loaded.snapshot.items.columns]
        ]
        items.to_parquet(staged / "items.parquet", index=False)
        info = {
            "kind": "export",
            "format": export.format,
            "k": min(export.k, loaded.snapshot.n_items),
            "run": str(run_dir.resolve()),
            "model": loaded.model_name,
            "dataset": result["dataset"],
            "created_at": now_iso(),
            "signatures": signatures,
            "environment": environment(),
        }
        atomic_write_json(staged / "export.json", info)
        atomic_write_text(staged / "README.md", _model_card(info, loaded, metrics))
        final = publish_version(staged, parent)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    result["export_dir"] = str(final.resolve())
    console.info(f"exported {loaded.model_name} ({export.format}, top-{info['k']}) to {final}")
    return result


def _model_card(info: dict, loaded, metrics: dict) -> str:
    sample_user = str(loaded.snapshot.user_ids[0])
    test = (metrics.get("metrics") or {}).get("test") or {}
    pop = ((metrics.get("baseline") or {}).get("pop") or {}).get("test") or {}
    rows = "\n".join(
        f"| {k} | {test[k]:.4f} | {pop.get(k, float('nan')):.4f} |"
        for k in ("ndcg@10", "hr@10", "recall@10", "mrr@10", "auc")
        if k in test
    )
    request = json.dumps({"signature_name": "serving_default", "instances": [{"user_id": sample_user}]})
    return f"""# {info["model"]} on {info["dataset"]["name"]}

Exported by recctl {__version__} on {info["created_at"]} from run `{info["run"]}`.

- Dataset: `{info["dataset"]["name"]}`, snapshot fingerprint `{info["dataset"]["fingerprint"]}`
- Model config: see `{info["run"]}/config.yaml`
- Format: TensorFlow SavedModel (TF Serving version folder); top-{info["k"]} baked in.

## Metrics (test, full ranking)

Protocol: {metrics.get("protocol", loaded.snapshot.protocol())}

| metric | model | pop |
|---|---|---|
{rows}

## Signatures

- `serving_default`: `user_id` (string[batch]) -> `item_ids` (string[batch, {info["k"]}]), `scores`
  (float32[batch, {info["k"]}]). Items the user has already seen are left out; an unknown user gets the most
  popular items.
- `score`: `user_id` (string[batch]) + `item_ids` (string[batch, n]) -> `scores` (float32[batch, n]).

## Sample request (TensorFlow Serving REST)

```
curl -d '{request}' http://localhost:8501/v1/models/{info["model"]}:predict
```

## In Python, without recctl

```python
import tensorflow as tf
m = tf.saved_model.load("THIS_FOLDER")
out = m.signatures["serving_default"](user_id=tf.constant(["{sample_user}"]))
print(out["item_ids"].numpy(), out["scores"].numpy())
```

Versions: {json.dumps({k: v for k, v in info["environment"].items() if k in ("recctl", "tensorflow", "keras", "python")})}
"""
