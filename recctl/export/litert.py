"""The litert format: the integer-index top-K function of `portable.py` as a `.tflite` file (TF's
converter, through a SavedModel as Keras's own LiteRT export does), the id maps beside it;
optionally post-training quantised (dynamic range or float16), with its size and score drift
against float32 measured and reported."""

from __future__ import annotations

import tempfile

import numpy as np
import tensorflow as tf

from recctl import console
from recctl.export import portable
from recctl.export.card import index_signature
from recctl.export.registry import ExportJob

DESCRIPTION = "LiteRT `.tflite`, integer indexes in and out, id maps beside it"
SUMMARY_KEYS = ("size_bytes", "float32_size_bytes", "size_ratio", "score_drift", "checked")


def _tflite_bytes(function, model, quantize: str) -> bytes:
    import keras

    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default", function.python_function, input_signature=list(function.input_signature)
        )
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        if quantize in ("dynamic", "float16"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def run_tflite(content: bytes, model, context, exclude) -> dict:
    interpreter = tf.lite.Interpreter(model_content=content)
    runner = interpreter.get_signature_runner("serving_default")
    return runner(**{model.export_input().index_name: context, "exclude_items": exclude})


def write(job: ExportJob) -> dict:
    model, snapshot, quantize = job.model, job.snapshot, job.quantize
    function = portable.top_k_function(model, snapshot.n_items, job.k)
    content = _tflite_bytes(function, model, quantize)
    (job.folder / "model.tflite").write_bytes(content)
    portable.write_id_maps(model, snapshot, job.folder)
    info = {
        "file": "model.tflite",
        "quantize": quantize,
        "size_bytes": len(content),
        **portable.describe(model, min(job.k, snapshot.n_items)),
    }
    context, exclude = portable.sample_inputs(model, snapshot, 256)
    reference = function(tf.constant(context), tf.constant(exclude))
    got = run_tflite(content, model, context, exclude)
    runtime = f"tf.lite.Interpreter (TensorFlow {tf.__version__})"
    info["checked"] = portable.checked(runtime, got["item_indexes"], reference["item_indexes"].numpy())
    if quantize != "none":
        float32 = _tflite_bytes(function, model, "none")
        drift = np.abs(got["scores"] - reference["scores"].numpy())
        info["float32_size_bytes"] = len(float32)
        info["size_ratio"] = round(len(content) / len(float32), 4)
        info["score_drift"] = {"max_abs": float(drift.max()), "mean_abs": float(drift.mean())}
        console.info(
            f"litert {quantize}: {info['size_bytes']} bytes ({info['size_ratio']:.2f}x float32), "
            f"top-{job.k} overlap with float32 {info['checked']['top_k_overlap']:.3f}, "
            f"max score drift {info['score_drift']['max_abs']:.2e}"
        )
    return info


def summary(info: dict) -> dict:
    """`--json` reports the size and the check as `litert`."""
    return {"litert": {key: info.get(key) for key in SUMMARY_KEYS}}


def card(job: ExportJob, info: dict) -> tuple[str, str]:
    signature, sig, k = index_signature(info), info["signatures"], info["k"]
    if info.get("quantize") not in (None, "none"):
        signature += (
            f"\n- quantisation `{info['quantize']}`: {sig['size_bytes']} bytes, {sig['size_ratio']:.2f}x the float32 file; "
            f"top-{k} overlap with float32 {sig['checked']['top_k_overlap']:.3f} over {sig['checked']['users']} users; "
            f"max drift of the sorted top-{k} scores {sig['score_drift']['max_abs']:.2e}"
        )
    export = job.model.export_input()
    first, value = export.index_name, export.index_sample
    usage = f"""```python
import numpy as np, tensorflow as tf   # or: from ai_edge_litert.interpreter import Interpreter
items = open("THIS_FOLDER/item_ids.txt").read().split("\\n")
runner = tf.lite.Interpreter(model_path="THIS_FOLDER/model.tflite").get_signature_runner("serving_default")
{first} = {value}
out = runner({first}={first}, exclude_items=np.full((1, 1), -1, np.int32))
print([items[i] for i in out["item_indexes"][0]], out["scores"][0])
```"""
    return signature, usage
