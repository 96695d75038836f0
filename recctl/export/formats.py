"""Export formats besides the SavedModel: keras, onnx, litert. Each writes into a staging folder.

- keras:  the trained `.keras` file (safe-mode loadable: every recctl layer is registered), plus
          the id maps. Load with `keras.saving.load_model` after `import recctl.models.registry`.
- onnx:   the integer-index top-K function of `portable.py`, converted with tf2onnx (opset 17);
          checked with onnxruntime when it is installed.
- litert: the same function as a `.tflite` file (TF's converter, through a SavedModel as Keras's
          own LiteRT export does), optionally post-training quantised (dynamic range or float16);
          its size and score drift against float32 are measured and reported.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from recctl.errors import ConfigError
from recctl.export.portable import sample_inputs, top_k_function


def write_id_maps(model, snapshot, folder: Path) -> None:
    """Row i of item_ids.txt is item index i (user_ids.txt likewise, for id models)."""
    (folder / "item_ids.txt").write_text("\n".join(snapshot.item_ids) + "\n", encoding="utf-8")
    if model.input_kind == "id":
        (folder / "user_ids.txt").write_text("\n".join(snapshot.user_ids) + "\n", encoding="utf-8")


def write_keras(run_dir: Path, model, snapshot, folder: Path) -> dict:
    shutil.copyfile(run_dir / "model.keras", folder / "model.keras")
    write_id_maps(model, snapshot, folder)
    return {"file": "model.keras", "load": "import recctl.models.registry; keras.saving.load_model(path)"}


def _signature(model, k: int) -> dict:
    first = (
        "user_index: int32[batch]"
        if model.input_kind == "id"
        else (
            f"history: int32[batch, {model.max_length}] (item indexes, most recent last, left-padded with -1)"
            if model.input_kind == "sequence"
            else "history: int32[batch, n] (item indexes, -1 pads)"
        )
    )
    return {
        "inputs": [first, "exclude_items: int32[batch, m] (item indexes, -1 pads)"],
        "outputs": [f"item_indexes: int32[batch, {k}]", f"scores: float32[batch, {k}]"],
        "id_maps": ["item_ids.txt"] + (["user_ids.txt"] if model.input_kind == "id" else []),
    }


def write_onnx(model, snapshot, folder: Path, k: int) -> dict:
    try:
        import tf2onnx
    except ImportError:
        raise ConfigError("export.format=onnx needs tf2onnx: pip install 'recctl[export]'") from None
    function = top_k_function(model, snapshot.n_items, k)
    tf2onnx.convert.from_function(
        function,
        input_signature=list(function.input_signature),
        opset=17,
        output_path=str(folder / "model.onnx"),
    )
    write_id_maps(model, snapshot, folder)
    info = {"file": "model.onnx", "opset": 17, **_signature(model, min(k, snapshot.n_items))}
    try:
        import onnxruntime
    except ImportError:
        return info
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    context, exclude = sample_inputs(model, snapshot, 64)
    names = [i.name for i in session.get_inputs()]
    got = session.run(["item_indexes"], dict(zip(names, [context, exclude], strict=True)))[0]
    want = function(tf.constant(context), tf.constant(exclude))["item_indexes"].numpy()
    info["checked"] = {
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "users": len(got),
        "top_k_overlap": _overlap(got, want),
    }
    return info


QUANTIZE = ("none", "dynamic", "float16")


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
    first = "user_index" if model.input_kind == "id" else "history"
    return runner(**{first: context, "exclude_items": exclude})


def write_litert(model, snapshot, folder: Path, k: int, quantize: str) -> dict:
    function = top_k_function(model, snapshot.n_items, k)
    content = _tflite_bytes(function, model, quantize)
    (folder / "model.tflite").write_bytes(content)
    write_id_maps(model, snapshot, folder)
    info = {
        "file": "model.tflite",
        "quantize": quantize,
        "size_bytes": len(content),
        **_signature(model, min(k, snapshot.n_items)),
    }
    context, exclude = sample_inputs(model, snapshot, 256)
    reference = function(tf.constant(context), tf.constant(exclude))
    got = run_tflite(content, model, context, exclude)
    info["checked"] = {"runtime": f"tf.lite.Interpreter (TensorFlow {tf.__version__})", "users": len(context)}
    info["checked"]["top_k_overlap"] = _overlap(got["item_indexes"], reference["item_indexes"].numpy())
    if quantize != "none":
        float32 = _tflite_bytes(function, model, "none")
        drift = np.abs(got["scores"] - reference["scores"].numpy())
        info["float32_size_bytes"] = len(float32)
        info["size_ratio"] = round(len(content) / len(float32), 4)
        info["score_drift"] = {"max_abs": float(drift.max()), "mean_abs": float(drift.mean())}
    return info


def _overlap(got: np.ndarray, want: np.ndarray) -> float:
    """Mean share of the reference top-K found in the exported top-K (1.0 = the same items)."""
    shares = [len(set(a.tolist()) & set(b.tolist())) / max(1, len(b)) for a, b in zip(got, want, strict=True)]
    return round(float(np.mean(shares)), 4) if shares else 1.0
