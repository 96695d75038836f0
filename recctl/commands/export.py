"""recctl export: a finished run -> outputs/exports/<name>/<N>/ (TensorFlow Serving layout + model card)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

from recctl import __version__, console, settings
from recctl.artifacts import (
    atomic_write_json,
    atomic_write_text,
    environment,
    file_digests,
    now_iso,
    publish_version,
    read_json,
    read_manifest,
    resolve_run,
    staging_dir,
)
from recctl.data.prepare import check_run_dataset
from recctl.errors import ConfigError


def run(cfg, result: dict) -> dict:
    export = settings.export(cfg)
    output_dir = Path(settings.paths(cfg).output_dir)
    run_dir = resolve_run(cfg.get("run"), output_dir)
    result["run_dir"] = str(run_dir.resolve())
    manifest = read_manifest(run_dir)
    check_run_dataset(cfg.get("dataset"), manifest, str(run_dir), "export")

    # The export folder is made before the model is loaded: an unwritable output folder fails at once.
    parent = _export_parent(output_dir, export.name or manifest.get("model", "model"))
    target = f"the export under {parent}"
    try:
        staged = staging_dir(parent)
    except OSError as exc:
        raise settings.output_error(exc, target, "paths.output_dir", output_dir) or exc from None
    writing = False
    try:
        from recctl.runs import load_run

        loaded = load_run(run_dir)
        result["model"] = loaded.model_name
        result["dataset"] = {"name": loaded.snapshot.name, "fingerprint": loaded.snapshot.fingerprint}
        result["protocol"] = loaded.snapshot.protocol(getattr(loaded.model, "task", "ranking"))
        metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
        result["metrics"] = metrics.get("metrics") or result["metrics"]
        result["baseline"] = metrics.get("baseline") or result["baseline"]

        writing = True
        signatures = _write_format(export, loaded, run_dir, staged)
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
            "quantize": export.quantize if export.format == "litert" else None,
            "environment": environment(),
        }
        atomic_write_text(staged / "README.md", _model_card(info, loaded, metrics))
        # Written last, with the digest of every other file: export.json present = export complete,
        # and a copied or served version can be checked against it.
        info["files"] = file_digests(staged, exclude=("export.json",))
        atomic_write_json(staged / "export.json", info)
        final = publish_version(staged, parent)
    except BaseException as exc:
        shutil.rmtree(staged, ignore_errors=True)
        if writing and isinstance(exc, OSError):
            raise settings.output_error(exc, target, "paths.output_dir", output_dir) or exc from None
        raise
    result["export_dir"] = str(final.resolve())
    result["format"] = export.format
    if export.format == "litert":
        result["litert"] = {
            key: signatures.get(key)
            for key in ("size_bytes", "float32_size_bytes", "size_ratio", "score_drift", "checked")
        }
    console.info(f"exported {loaded.model_name} ({export.format}, top-{info['k']}) to {final}")
    return result


def _export_parent(output_dir: Path, name: str) -> Path:
    """outputs/exports/<name>/, refusing a name (export.name, or the run's model) that would leave it."""
    exports = output_dir / "exports"
    parent = exports / name
    if name in ("", ".", "..") or not parent.resolve().is_relative_to(exports.resolve()):
        raise ConfigError(f"export.name must be a folder name inside {exports}/. Received: {name!r}")
    return parent


def _write_format(export, loaded, run_dir: Path, staged: Path) -> dict:
    """Write the export itself into the staging folder; returns its signature/format description."""
    if export.format == "saved_model":
        from recctl.export.saved_model import write_saved_model

        return write_saved_model(loaded.model, loaded.snapshot, staged, export.k)
    from recctl.export import formats

    if export.format == "keras":
        return formats.write_keras(run_dir, loaded.model, loaded.snapshot, staged)
    if export.format == "onnx":
        return formats.write_onnx(loaded.model, loaded.snapshot, staged, export.k)
    info = formats.write_litert(loaded.model, loaded.snapshot, staged, export.k, export.quantize)
    if export.quantize != "none":
        console.info(
            f"litert {export.quantize}: {info['size_bytes']} bytes ({info['size_ratio']:.2f}x float32), "
            f"top-{export.k} overlap with float32 {info['checked']['top_k_overlap']:.3f}, "
            f"max score drift {info['score_drift']['max_abs']:.2e}"
        )
    return info


def _model_card(info: dict, loaded, metrics: dict) -> str:
    test = (metrics.get("metrics") or {}).get("test") or {}
    pop = ((metrics.get("baseline") or {}).get("pop") or {}).get("test") or {}
    rows = "\n".join(
        f"| {k} | {test[k]:.4f} | {pop.get(k, float('nan')):.4f} |"
        for k in ("ndcg@10", "hr@10", "recall@10", "mrr@10", "auc")
        if k in test
    )
    signature, usage = _card_usage(info, loaded)
    command = "recctl export " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    versions = {
        k: v for k, v in info["environment"].items() if k in ("recctl", "tensorflow", "keras", "python")
    }
    return f"""# {info["model"]} on {info["dataset"]["name"]} ({info["format"]})

Exported by recctl {__version__} on {info["created_at"]} from run `{info["run"]}` with `{command}`.

- Dataset: `{info["dataset"]["name"]}`, snapshot fingerprint `{info["dataset"]["fingerprint"]}`
- Model config: see `{info["run"]}/config.yaml`
- Format: {_FORMATS[info["format"]]}; top-{info["k"]} baked in.

## Metrics (test, full ranking)

Protocol: {metrics.get("protocol", loaded.snapshot.protocol())}

| metric | model | pop |
|---|---|---|
{rows}

## Input signature

{signature}

## Use it

{usage}

Versions: {json.dumps(versions)}
"""


_FORMATS = {
    "saved_model": "TensorFlow SavedModel (TF Serving version folder)",
    "keras": "native Keras `.keras` file (safe-mode loadable)",
    "onnx": "ONNX (opset 17), integer indexes in and out, id maps beside it",
    "litert": "LiteRT `.tflite`, integer indexes in and out, id maps beside it",
}


def _card_usage(info: dict, loaded) -> tuple[str, str]:
    """(signature section, sample request) for the export's format."""
    model, snapshot = loaded.model, loaded.snapshot
    k = info["k"]
    sample_user = str(snapshot.user_ids[0])
    seen = snapshot.csr("train", "valid", "test")
    sample_items = [str(snapshot.item_ids[i]) for i in seen.indices[seen.indptr[0] : seen.indptr[1]][-3:]]
    if info["format"] == "saved_model":
        if model.input_kind == "id":
            instance = {"user_id": sample_user}
            call = f'user_id=tf.constant(["{sample_user}"])'
            inputs = "`user_id` (string[batch])"
            note = (
                "Items the user has already seen are left out; an unknown user gets the most popular items."
            )
        else:
            instance = {"history": sample_items}
            call = f"history=tf.constant([{sample_items!r}])"
            inputs = "`history` (string[batch, n]: original item ids, most recent last; '' pads)"
            note = "The history's items are left out; unknown ids in it are ignored."
        request = json.dumps({"signature_name": "serving_default", "instances": [instance]})
        signature = (
            f"- `serving_default`: {inputs} -> `item_ids` (string[batch, {k}]), `scores` (float32[batch, {k}]). "
            f"{note}\n- `serving_exclude`: the same input plus `exclude_item_ids` (string[batch, m], '' pads): "
            "those items are left out too.\n- `score`: the same input plus `item_ids` (string[batch, n]) -> `scores` (float32[batch, n]); "
            "unknown items score -inf."
        )
        usage = f"""TensorFlow Serving REST (`tensorflow_model_server --rest_api_port=8501 --model_name={info["model"]} --model_base_path=PARENT_OF_THIS_FOLDER`):

```
curl -d '{request}' http://localhost:8501/v1/models/{info["model"]}:predict
```

In Python, without recctl:

```python
import tensorflow as tf
m = tf.saved_model.load("THIS_FOLDER")
out = m.signatures["serving_default"]({call})
print(out["item_ids"].numpy(), out["scores"].numpy())
```"""
        return signature, usage
    if info["format"] == "keras":
        return (
            "The Keras model itself: `score_all(context)` -> scores over all items (see recctl's model contract).",
            """```python
import keras, recctl.models.registry  # registers recctl's layers for safe-mode loading
model = keras.saving.load_model("THIS_FOLDER/model.keras")
```""",
        )
    sig = info["signatures"]
    signature = "\n".join(
        [f"- input `{x}`" for x in sig["inputs"]]
        + [f"- output `{x}`" for x in sig["outputs"]]
        + [f"- id maps: {', '.join(f'`{m}`' for m in sig['id_maps'])} (line i = index i)"]
    )
    if info["format"] == "litert" and info.get("quantize") not in (None, "none"):
        signature += (
            f"\n- quantisation `{info['quantize']}`: {sig['size_bytes']} bytes, {sig['size_ratio']:.2f}x the float32 file; "
            f"top-{k} overlap with float32 {sig['checked']['top_k_overlap']:.3f} over {sig['checked']['users']} users; "
            f"max drift of the sorted top-{k} scores {sig['score_drift']['max_abs']:.2e}"
        )
    first = "user_index" if model.input_kind == "id" else "history"
    if model.input_kind == "id":
        value = "np.array([0], np.int32)"
    elif model.input_kind == "sequence":
        value = f"np.full((1, {model.max_length}), -1, np.int32)  # then put item indexes at the end"
    else:
        value = "np.array([[3, 17, -1]], np.int32)"
    if info["format"] == "onnx":
        usage = f"""```python
import numpy as np, onnxruntime as ort
items = open("THIS_FOLDER/item_ids.txt").read().split("\\n")
session = ort.InferenceSession("THIS_FOLDER/model.onnx")
{first} = {value}
exclude = np.full((1, 1), -1, np.int32)
top, scores = session.run(["item_indexes", "scores"], {{"{first}": {first}, "exclude_items": exclude}})
print([items[i] for i in top[0]], scores[0])
```"""
    else:
        usage = f"""```python
import numpy as np, tensorflow as tf   # or: from ai_edge_litert.interpreter import Interpreter
items = open("THIS_FOLDER/item_ids.txt").read().split("\\n")
runner = tf.lite.Interpreter(model_path="THIS_FOLDER/model.tflite").get_signature_runner("serving_default")
{first} = {value}
out = runner({first}={first}, exclude_items=np.full((1, 1), -1, np.int32))
print([items[i] for i in out["item_indexes"][0]], out["scores"][0])
```"""
    return signature, usage
