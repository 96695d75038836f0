"""The onnx format: the integer-index top-K function of `portable.py`, converted with tf2onnx
(opset 17), the id maps beside it; checked with onnxruntime when it is installed."""

from __future__ import annotations

import tensorflow as tf

from recctl.errors import ConfigError
from recctl.export import portable
from recctl.export.card import index_signature
from recctl.export.registry import ExportJob

DESCRIPTION = "ONNX (opset 17), integer indexes in and out, id maps beside it"
OPSET = 17


def write(job: ExportJob) -> dict:
    try:
        import tf2onnx
    except ImportError:
        raise ConfigError("export.format=onnx needs tf2onnx: pip install 'recctl[export]'") from None
    model, snapshot, path = job.model, job.snapshot, job.folder / "model.onnx"
    function = portable.top_k_function(model, snapshot.n_items, job.k)
    tf2onnx.convert.from_function(
        function, input_signature=list(function.input_signature), opset=OPSET, output_path=str(path)
    )
    portable.write_id_maps(model, snapshot, job.folder)
    info = {"file": "model.onnx", "opset": OPSET, **portable.describe(model, min(job.k, snapshot.n_items))}
    try:
        import onnxruntime
    except ImportError:
        return info
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    context, exclude = portable.sample_inputs(model, snapshot, 64)
    names = [i.name for i in session.get_inputs()]
    got = session.run(["item_indexes"], dict(zip(names, [context, exclude], strict=True)))[0]
    want = function(tf.constant(context), tf.constant(exclude))["item_indexes"].numpy()
    info["checked"] = portable.checked(f"onnxruntime {onnxruntime.__version__}", got, want)
    return info


def card(job: ExportJob, info: dict) -> tuple[str, str]:
    export = job.model.export_input()
    first, value = export.index_name, export.index_sample
    usage = f"""```python
import numpy as np, onnxruntime as ort
items = open("THIS_FOLDER/item_ids.txt").read().split("\\n")
session = ort.InferenceSession("THIS_FOLDER/model.onnx")
{first} = {value}
exclude = np.full((1, 1), -1, np.int32)
top, scores = session.run(["item_indexes", "scores"], {{"{first}": {first}, "exclude_items": exclude}})
print([items[i] for i in top[0]], scores[0])
```"""
    return index_signature(info), usage
