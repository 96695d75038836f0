"""The litert format: the integer-index top-K function of `portable.py` as a `.tflite` file (TF's
converter, through a SavedModel as Keras's own LiteRT export does), the id maps beside it;
optionally post-training quantised (dynamic range or float16), with its size and score drift
against float32 measured and reported.

The converter may fall back to Select TF ops (the Flex delegate) for ops LiteRT has no builtin
for; the ones the file uses are read back from it and named in export.json (`select_tf_ops`) and
the model card, since a runtime without the Flex delegate cannot run it. The file is checked with
the `ai_edge_litert` interpreter when that package is installed (and no Select TF op is needed),
else with `tf.lite.Interpreter`."""

from __future__ import annotations

import tempfile
import warnings

import numpy as np
import tensorflow as tf

from recctl import console
from recctl.export import portable
from recctl.export.card import index_signature
from recctl.export.registry import ExportJob

DESCRIPTION = "LiteRT `.tflite`, integer indexes in and out, id maps beside it"
SUMMARY_KEYS = ("size_bytes", "float32_size_bytes", "size_ratio", "score_drift", "checked", "select_tf_ops")


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


def select_tf_ops(content: bytes) -> list[str] | None:
    """The TensorFlow ops the file runs through the Flex delegate (custom op codes `Flex<Op>`),
    sorted; [] when it uses LiteRT builtins only; None when the file cannot be inspected here."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:
        return None
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    codes = [(code.customCode or b"").decode() for code in model.operatorCodes or []]
    return sorted({code[len("Flex") :] for code in codes if code.startswith("Flex")})


def interpreter(content: bytes, flex: bool):
    """(interpreter, runtime name): ai_edge_litert's when installed and the file needs no Select TF
    op (its wheel has no Flex delegate), else tf.lite.Interpreter (TensorFlow's, which links the
    Flex delegate; its deprecation warning is silenced: it is the fallback, not the advice)."""
    if not flex:
        try:
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            pass
        else:
            version = getattr(ai_edge_litert, "__version__", "")
            return Interpreter(model_content=content), f"ai_edge_litert {version}".strip()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        runtime = tf.lite.Interpreter(model_content=content)
    return runtime, f"tf.lite.Interpreter (TensorFlow {tf.__version__})"


def run_tflite(content: bytes, model, context, exclude, flex: bool = True) -> tuple[dict, str]:
    """The file's `serving_default` outputs for the inputs, and the runtime that computed them."""
    runtime, name = interpreter(content, flex)
    runner = runtime.get_signature_runner("serving_default")
    return runner(**{model.export_input().index_name: context, "exclude_items": exclude}), name


def write(job: ExportJob) -> dict:
    model, snapshot, quantize = job.model, job.snapshot, job.quantize
    function = portable.top_k_function(model, snapshot.n_items, job.k)
    content = _tflite_bytes(function, model, quantize)
    (job.folder / "model.tflite").write_bytes(content)
    portable.write_id_maps(model, snapshot, job.folder)
    flex = select_tf_ops(content)
    info = {
        "file": "model.tflite",
        "quantize": quantize,
        "size_bytes": len(content),
        "select_tf_ops": flex,
        **portable.describe(model, min(job.k, snapshot.n_items)),
    }
    if flex:
        console.info(f"litert: the file needs Select TF ops (the Flex delegate): {', '.join(flex)}")
    context, exclude = portable.sample_inputs(model, snapshot, 256)
    reference = function(tf.constant(context), tf.constant(exclude))
    got, runtime = run_tflite(content, model, context, exclude, flex=flex is None or bool(flex))
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
    flex = sig.get("select_tf_ops")
    if flex:
        signature += (
            f"\n- runtime: needs the Select TF ops (Flex delegate) {', '.join(f'`{op}`' for op in flex)}: "
            "a LiteRT runtime without the Flex delegate (ai_edge_litert's wheel, a plain mobile build) cannot run "
            "it; TensorFlow's `tf.lite.Interpreter` or a build linked with the Flex delegate can"
        )
    elif flex is not None:
        signature += "\n- runtime: LiteRT builtin ops only (no Select TF ops): any LiteRT runtime runs it"
    export = job.model.export_input()
    first, value = export.index_name, export.index_sample
    if flex:
        load = """import numpy as np, tensorflow as tf   # TensorFlow's interpreter links the Flex delegate
runner = tf.lite.Interpreter(model_path="THIS_FOLDER/model.tflite").get_signature_runner("serving_default")"""
    else:
        load = """import numpy as np
from ai_edge_litert.interpreter import Interpreter   # pip install ai-edge-litert
runner = Interpreter(model_path="THIS_FOLDER/model.tflite").get_signature_runner("serving_default")"""
    usage = f"""```python
{load}
items = open("THIS_FOLDER/item_ids.txt").read().split("\\n")
{first} = {value}
out = runner({first}={first}, exclude_items=np.full((1, 1), -1, np.int32))
print([items[i] for i in out["item_indexes"][0]], out["scores"][0])
```"""
    return signature, usage
