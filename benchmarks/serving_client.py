"""The client side of `make bench-serving`: times one export in this fresh process, which never
imports recctl (checked at the end), and prints one JSON object.

    python benchmarks/serving_client.py SPEC.json

SPEC: {"runtime": "saved_model" | "onnx" | "litert" | "floor_numpy" | "floor_tf", "path": ...,
"input": "user" | "history", "requests": [...], "batch": [...], "k": 10, "singles": N, "repeats": R,
"embeddings": {"query": .npy, "items": .npy}}. Requests are single users (an id or a history);
`batch` is one request of many users. Latency: wall time of each single request after warm-up.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def index_feed(key: str, requests, names) -> dict:
    """ONNX and LiteRT inputs: integer indexes, and no exclusions (-1 pads `exclude_items`)."""
    array = np.asarray(requests, np.int32)
    feed = {key: array}
    if "exclude_items" in names:
        feed["exclude_items"] = np.full((len(array), 1), -1, np.int32)
    return feed


def saved_model(spec):
    import tensorflow as tf

    serve = tf.saved_model.load(spec["path"]).signatures["serving_default"]
    key = "user_id" if spec["input"] == "user" else "history"

    def call(requests):
        return serve(**{key: tf.constant(requests)})["item_ids"].numpy()

    return call, lambda r: [r]


def onnx(spec):
    import onnxruntime as ort

    options = ort.SessionOptions()
    session = ort.InferenceSession(spec["path"], options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    key = "user_index" if spec["input"] == "user" else "history"

    def call(requests):
        return session.run(["item_indexes"], index_feed(key, requests, names))[0]

    return call, lambda r: [r]


def litert(spec):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=spec["path"])
    runner = interpreter.get_signature_runner()
    names = set(runner.get_input_details())
    key = "user_index" if spec["input"] == "user" else "history"

    def call(requests):
        return runner(**index_feed(key, requests, names))["item_indexes"]

    return call, lambda r: [r]


def floor_numpy(spec):
    """The floor: a bare matmul of the query vectors with the item embeddings, then top-k."""
    queries, items = np.load(spec["embeddings"]["query"]), np.load(spec["embeddings"]["items"])
    k = spec["k"]

    def call(rows):
        scores = queries[np.asarray(rows)] @ items.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)

    return call, lambda r: [r]


def floor_tf(spec):
    import tensorflow as tf

    queries = tf.constant(np.load(spec["embeddings"]["query"]))
    items = tf.constant(np.load(spec["embeddings"]["items"]))
    k = spec["k"]

    @tf.function(reduce_retracing=True)
    def top(rows):
        return tf.math.top_k(tf.matmul(tf.gather(queries, rows), items, transpose_b=True), k).indices

    return lambda rows: top(tf.constant(rows, tf.int32)).numpy(), lambda r: [r]


RUNTIMES = {
    "saved_model": saved_model,
    "onnx": onnx,
    "litert": litert,
    "floor_numpy": floor_numpy,
    "floor_tf": floor_tf,
}


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    call, single = RUNTIMES[spec["runtime"]](spec)
    requests = spec["requests"]
    for request in requests[:20]:  # warm-up: tracing, allocations, the first-call costs
        call(single(request))
    latencies = []
    for request in requests[: spec["singles"]]:
        start = time.perf_counter()
        call(single(request))
        latencies.append((time.perf_counter() - start) * 1000.0)
    batch = spec["batch"]
    call(batch)
    rates = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        out = call(batch)
        rates.append(len(batch) / (time.perf_counter() - start))
    assert np.asarray(out).shape[:2] == (len(batch), spec["k"]), np.asarray(out).shape
    print(
        json.dumps(
            {
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "users_per_s": statistics.median(rates),
                "singles": len(latencies),
                "recctl_imported": "recctl" in sys.modules,
            }
        )
    )


if __name__ == "__main__":
    main()
