"""The integer-index top-K function behind the ONNX and LiteRT exports, and what both formats share.

ONNX and LiteRT have no string hash tables, so these formats take and return integer indexes and
the id maps are written beside the model (docs/interface.md): row i of `item_ids.txt` is item
index i (and of `user_ids.txt`, user index i).

Inputs (the model's `export_input()`; -1 pads every integer list; lists may be any length):
  by user (id models):  user_index int32[B], exclude_items int32[B, E]
  by history:           history int32[B, H] (item indexes, most recent last, left-padded with -1;
                        H = max_length for sequence models), exclude_items int32[B, E]
Outputs: item_indexes int32[B, k] (best first) and scores float32[B, k]; the history and the
exclusions are left out (their scores drop by 1e30, so they never come before another item).
The history becomes the scoring context through the model's own `context_from_history`, as in
evaluation and the SavedModel. Only ops that ONNX and TFLite both have: gather, matmul, one_hot,
reduce_max, top_k, plus what `context_from_history` uses (concat and slice; scatter_nd for
user-vector models).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

EXCLUDED = 1.0e30  # subtracted from the score of every excluded item
EXCLUDE_SPEC = "exclude_items: int32[batch, m] (item indexes, -1 pads)"


def input_signature(model) -> list[tf.TensorSpec]:
    export = model.export_input()
    return [
        tf.TensorSpec(list(export.index_shape), tf.int32, name=export.index_name),
        tf.TensorSpec([None, None], tf.int32, name="exclude_items"),
    ]


def multi_hot(indexes, n_items: int):
    """[B, E] indexes (-1 pads) -> [B, n_items] float32 with 1.0 at every listed item."""
    # ONNX's OneHot counts negative indexes from the end: never hand it a -1
    hot = tf.one_hot(tf.maximum(indexes, 0), n_items, dtype=tf.float32)
    hot = hot * tf.expand_dims(tf.cast(indexes >= 0, tf.float32), -1)
    return tf.reduce_max(hot, axis=1)


def top_k_function(model, n_items: int, k: int):
    """A tf.function (input_signature fixed) returning {"item_indexes", "scores"} for the model."""
    k = int(min(k, n_items))
    by_user = model.export_input().by_user
    _unroll_recurrent_layers(model)

    @tf.function(input_signature=input_signature(model))
    def top_k(context, exclude_items):
        excluded = multi_hot(exclude_items, n_items)
        batch = tf.shape(context)[:1]
        if by_user:  # the context is the user index; the model needs no history
            users, history = context, tf.zeros(tf.concat([batch, [0]], 0), tf.int32)
        else:  # the context is the history; the user is unknown to the export
            users, history = tf.fill(batch, tf.constant(-1, tf.int32)), context
            excluded = tf.maximum(excluded, multi_hot(history, n_items))
        scores = tf.cast(model.score_all(model.context_from_history(history, users)), tf.float32)
        # a large finite penalty, not -inf: converters lower `where` to arithmetic, and 0 * inf is NaN
        best = tf.math.top_k(scores - EXCLUDED * excluded, k=k, sorted=True)
        return {"item_indexes": tf.cast(best.indices, tf.int32), "scores": best.values}

    return top_k


def describe(model, k: int) -> dict:
    """The integer signature as export.json records it (k already capped at the catalogue)."""
    export = model.export_input()
    return {
        "inputs": [export.index_spec, EXCLUDE_SPEC],
        "outputs": [f"item_indexes: int32[batch, {k}]", f"scores: float32[batch, {k}]"],
        "id_maps": ["item_ids.txt"] + (["user_ids.txt"] if export.by_user else []),
    }


def write_id_maps(model, snapshot, folder: Path) -> None:
    """Row i of item_ids.txt is item index i (user_ids.txt likewise, for models served by user)."""
    (folder / "item_ids.txt").write_text("\n".join(snapshot.item_ids) + "\n", encoding="utf-8")
    if model.export_input().by_user:
        (folder / "user_ids.txt").write_text("\n".join(snapshot.user_ids) + "\n", encoding="utf-8")


def sample_inputs(model, snapshot, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Integer inputs for the first `n` users, as a client would send them: for models served by
    user, the user's seen items as exclusions; for the others the user's history (its latest
    `history_length()` items: max_length for sequence models, all for user-vector models) and no
    extra exclusion."""
    users = np.arange(min(n, snapshot.n_users), dtype=np.int32)
    seen = snapshot.csr("train", "valid", "test")  # the CSR keeps each user's items in time order
    none = np.full((len(users), 1), -1, np.int32)
    if model.export_input().by_user:
        return users, _at_least_one_column(seen.latest(users, None), none)
    return _at_least_one_column(seen.latest(users, model.history_length()), none), none


def _at_least_one_column(matrix: np.ndarray, empty: np.ndarray) -> np.ndarray:
    return matrix if matrix.shape[1] else empty


def checked(runtime: str, got: np.ndarray, want: np.ndarray) -> dict:
    """export.json's "checked": the runtime's top-K against the TF function it was converted from."""
    return {"runtime": runtime, "users": len(got), "top_k_overlap": overlap(got, want)}


def overlap(got: np.ndarray, want: np.ndarray) -> float:
    """Mean share of the reference top-K found in the exported top-K (1.0 = the same items)."""
    shares = [len(set(a.tolist()) & set(b.tolist())) / max(1, len(b)) for a, b in zip(got, want, strict=True)]
    return round(float(np.mean(shares)), 4) if shares else 1.0


def _unroll_recurrent_layers(model) -> None:
    """Recurrent layers over a fixed `max_length` run unrolled in exports: a while loop would need
    TensorFlow's list ops, which LiteRT only runs with the Flex delegate; unrolled it is plain
    matmuls (same numbers)."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.RNN):
            layer.unroll = True
