"""The integer-index top-K function behind the ONNX and LiteRT exports.

ONNX and LiteRT have no string hash tables, so these formats take and return integer indexes and
the id maps are written beside the model (docs/interface.md): row i of `item_ids.txt` is item
index i (and of `user_ids.txt`, user index i).

Inputs by input kind (-1 pads every integer list; lists may be any length):
  id:           user_index int32[B], exclude_items int32[B, E]
  sequence:     history int32[B, max_length] (item indexes, most recent last, left-padded with -1),
                exclude_items int32[B, E]
  user_vector:  history int32[B, H] (item indexes in any order), exclude_items int32[B, E]
Outputs: item_indexes int32[B, k] (best first) and scores float32[B, k]; the history and the
exclusions are left out (their scores drop by 1e30, so they never come before another item).
Only ops that ONNX and TFLite both have: gather, matmul, one_hot, reduce_max, top_k.
"""

from __future__ import annotations

import tensorflow as tf

EXCLUDED = 1.0e30  # subtracted from the score of every excluded item


def input_signature(model, n_items: int) -> list[tf.TensorSpec]:
    exclude = tf.TensorSpec([None, None], tf.int32, name="exclude_items")
    if model.input_kind == "id":
        return [tf.TensorSpec([None], tf.int32, name="user_index"), exclude]
    if model.input_kind == "sequence":
        return [tf.TensorSpec([None, model.max_length], tf.int32, name="history"), exclude]
    return [tf.TensorSpec([None, None], tf.int32, name="history"), exclude]


def _multi_hot(indexes, n_items: int):
    """[B, E] indexes (-1 pads) -> [B, n_items] float32 with 1.0 at every listed item."""
    # ONNX's OneHot counts negative indexes from the end: never hand it a -1
    hot = tf.one_hot(tf.maximum(indexes, 0), n_items, dtype=tf.float32)
    hot = hot * tf.expand_dims(tf.cast(indexes >= 0, tf.float32), -1)
    return tf.reduce_max(hot, axis=1)


def top_k_function(model, n_items: int, k: int):
    """A tf.function (input_signature fixed) returning {"item_indexes", "scores"} for the model."""
    k = int(min(k, n_items))
    kind = model.input_kind
    _unroll_recurrent_layers(model)

    def scores_and_mask(context, exclude):
        excluded = _multi_hot(exclude, n_items)
        if kind == "id":
            scores = model.score_all(context)
        elif kind == "sequence":
            tokens = tf.where(context >= 0, context + 1, tf.zeros_like(context))
            unknown_user = tf.fill(tf.shape(context)[:1], tf.constant(-1, tf.int32))
            scores = model.score_all({"history": tokens, "user": unknown_user})
            excluded = tf.maximum(excluded, _multi_hot(context, n_items))
        else:
            vector = _multi_hot(context, n_items)
            scores = model.score_all({"vector": vector})
            excluded = tf.maximum(excluded, vector)
        return tf.cast(scores, tf.float32), excluded

    @tf.function(input_signature=input_signature(model, n_items))
    def top_k(context, exclude_items):
        scores, excluded = scores_and_mask(context, exclude_items)
        # a large finite penalty, not -inf: converters lower `where` to arithmetic, and 0 * inf is NaN
        scores = scores - EXCLUDED * excluded
        best = tf.math.top_k(scores, k=k, sorted=True)
        return {"item_indexes": tf.cast(best.indices, tf.int32), "scores": best.values}

    return top_k


def sample_inputs(model, snapshot, n: int = 256):
    """Integer inputs for the first `n` users, as a client would send them: for id models the user's
    seen items as exclusions; for the others the user's history (latest `max_length` items for
    sequence models) and no extra exclusion."""
    import numpy as np

    users = np.arange(min(n, snapshot.n_users), dtype=np.int32)
    seen = snapshot.csr("train", "valid", "test")
    lists = [seen.indices[seen.indptr[u] : seen.indptr[u + 1]] for u in users]
    if model.input_kind == "sequence":  # the CSR keeps each user's items in time order
        lists = [items[-model.max_length :] for items in lists]
        width = model.max_length
    else:
        width = max(1, max((len(x) for x in lists), default=1))
    padded = np.full((len(users), width), -1, np.int32)
    for row, items in enumerate(lists):
        if len(items):
            padded[row, width - len(items) :] = items  # left-padded: most recent last
    none = np.full((len(users), 1), -1, np.int32)
    if model.input_kind == "id":
        return users, padded
    return padded, none


def _unroll_recurrent_layers(model) -> None:
    """Recurrent layers over a fixed `max_length` run unrolled in exports: a while loop would need
    TensorFlow's list ops, which LiteRT only runs with the Flex delegate; unrolled it is plain
    matmuls (same numbers)."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.RNN):
            layer.unroll = True
