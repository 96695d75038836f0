"""The SavedModel export: a TensorFlow Serving version folder that speaks original ids.

Signatures (docs/interface.md):
  serving_default(user_id: string[B]) -> item_ids: string[B, k], scores: float32[B, k]
      top-k items for each user, the user's seen items (train, valid and test) left out;
      an unknown user gets the most popular items.
  serving_exclude(user_id: string[B], exclude_item_ids: string[B, E]) -> the same, with the listed
      items left out too ('' pads; unknown ids are ignored). A signature of its own because a
      SavedModel signature has no optional inputs: TF Serving requires every input it declares.
  score(user_id: string[B], item_ids: string[B, C]) -> scores: float32[B, C]
      the model's scores of the given items (unknown items score -inf).
The Keras model, the id maps and the seen-items lists are all inside the SavedModel, so it loads
with plain `tf.saved_model.load` (or TF Serving) in a process that never imports recctl.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import CSR


class ServingModule(tf.Module):
    def __init__(
        self, model, user_ids: np.ndarray, item_ids: np.ndarray, seen: CSR, popularity: np.ndarray, k: int
    ):
        super().__init__()
        self.model = model
        self.k = int(min(k, len(item_ids)))
        self.n_items = len(item_ids)
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(user_ids.astype(str)), tf.range(len(user_ids), dtype=tf.int64)
            ),
            default_value=-1,
        )
        self.item_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(item_ids.astype(str)), tf.range(len(item_ids), dtype=tf.int64)
            ),
            default_value=-1,
        )
        self.item_ids = tf.Variable(item_ids.astype(str), trainable=False, dtype=tf.string)
        self.seen_indptr = tf.Variable(seen.indptr.astype(np.int64), trainable=False)
        self.seen_items = tf.Variable(seen.indices.astype(np.int64), trainable=False)
        self.popularity = tf.Variable(popularity.astype(np.float32), trainable=False)

    def _user_index(self, user_id):
        index = self.user_table.lookup(user_id)
        return index, index >= 0, tf.cast(tf.maximum(index, 0), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
    def serve(self, user_id):
        return self._top_k(user_id, tf.fill([tf.shape(user_id)[0], 0], ""))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="exclude_item_ids"),
        ]
    )
    def serve_excluding(self, user_id, exclude_item_ids):
        return self._top_k(user_id, exclude_item_ids)

    def _top_k(self, user_id, exclude_item_ids):
        index, known, safe = self._user_index(user_id)
        scores = tf.cast(self.model.score_all(safe), tf.float32)
        scores = tf.where(known[:, None], scores, self.popularity[None, :])
        starts = tf.gather(self.seen_indptr, tf.cast(safe, tf.int64))
        ends = tf.gather(self.seen_indptr, tf.cast(safe, tf.int64) + 1)
        lengths = tf.where(known, ends - starts, tf.zeros_like(starts))
        rows = tf.repeat(tf.range(tf.shape(user_id)[0], dtype=tf.int64), lengths)
        positions = tf.ragged.range(starts, starts + lengths).flat_values
        items = tf.gather(self.seen_items, positions)
        scores = tf.tensor_scatter_nd_update(
            scores, tf.stack([rows, items], axis=1), tf.fill(tf.shape(rows), tf.constant(-np.inf, tf.float32))
        )
        scores = _exclude(scores, self.item_table.lookup(exclude_item_ids))
        top = tf.math.top_k(scores, k=self.k, sorted=True)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="item_ids"),
        ]
    )
    def score(self, user_id, item_ids):
        _, known, safe = self._user_index(user_id)
        item_index = self.item_table.lookup(item_ids)
        all_scores = tf.cast(self.model.score_all(safe), tf.float32)
        all_scores = tf.where(known[:, None], all_scores, self.popularity[None, :])
        picked = tf.gather(all_scores, tf.cast(tf.maximum(item_index, 0), tf.int32), batch_dims=1)
        return {"scores": tf.where(item_index >= 0, picked, tf.constant(-np.inf, tf.float32))}


class HistoryServingModule(tf.Module):
    """Serving for sequence and user-vector models: the context is the user's history itself.

    serving_default(history: string[B, H]) -> item_ids, scores: the history holds original item ids,
    most recent last; "" pads and unknown ids are ignored. The history's items are left out of the
    top-k. score(history, item_ids) -> scores.
    """

    def __init__(self, model, item_ids: np.ndarray, k: int):
        super().__init__()
        self.model = model
        self.kind = model.input_kind
        self.max_length = int(getattr(model, "max_length", 0))
        self.k = int(min(k, len(item_ids)))
        self.n_items = len(item_ids)
        self.item_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(item_ids.astype(str)), tf.range(len(item_ids), dtype=tf.int64)
            ),
            default_value=-1,
        )
        self.item_ids = tf.Variable(item_ids.astype(str), trainable=False, dtype=tf.string)

    def _scores(self, history):
        index = self.item_table.lookup(history)
        known = tf.ragged.boolean_mask(index, index >= 0)  # ragged [B, None], order kept
        batch = tf.shape(history)[0]
        rows = tf.cast(known.value_rowids(), tf.int64)
        pairs = tf.stack([rows, known.flat_values], axis=1)
        if self.kind == "user_vector":
            vector = tf.scatter_nd(
                pairs, tf.ones(tf.shape(rows), tf.float32), tf.cast([batch, self.n_items], tf.int64)
            )
            scores = tf.cast(self.model.score_all({"vector": tf.minimum(vector, 1.0)}), tf.float32)
        else:
            tokens = tf.reverse(known, axis=[1]) + 1  # most recent first, then right-pad and cut
            tokens = tokens.to_tensor(default_value=0, shape=[None, self.max_length])
            tokens = tf.cast(tf.reverse(tokens, axis=[1]), tf.int32)
            unknown_user = tf.fill([batch], tf.constant(-1, tf.int32))  # serving knows the history only
            scores = tf.cast(self.model.score_all({"history": tokens, "user": unknown_user}), tf.float32)
        return tf.cast(scores, tf.float32), pairs

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="history")])
    def serve(self, history):
        return self._top_k(history, tf.fill([tf.shape(history)[0], 0], ""))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.string, name="history"),
            tf.TensorSpec([None, None], tf.string, name="exclude_item_ids"),
        ]
    )
    def serve_excluding(self, history, exclude_item_ids):
        return self._top_k(history, exclude_item_ids)

    def _top_k(self, history, exclude_item_ids):
        scores, pairs = self._scores(history)
        scores = tf.tensor_scatter_nd_update(
            scores, pairs, tf.fill(tf.shape(pairs)[:1], tf.constant(-np.inf, tf.float32))
        )
        scores = _exclude(scores, self.item_table.lookup(exclude_item_ids))
        top = tf.math.top_k(scores, k=self.k, sorted=True)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.string, name="history"),
            tf.TensorSpec([None, None], tf.string, name="item_ids"),
        ]
    )
    def score(self, history, item_ids):
        scores, _ = self._scores(history)
        item_index = self.item_table.lookup(item_ids)
        picked = tf.gather(scores, tf.cast(tf.maximum(item_index, 0), tf.int32), batch_dims=1)
        return {"scores": tf.where(item_index >= 0, picked, tf.constant(-np.inf, tf.float32))}


def _exclude(scores, exclude_index):
    """Set the scores of the listed items (item indexes [B, E]; -1 = unknown or padding) to -inf."""
    rows = tf.repeat(
        tf.range(tf.shape(scores)[0], dtype=tf.int64)[:, None], tf.shape(exclude_index)[1], axis=1
    )
    keep = exclude_index >= 0
    pairs = tf.stack([tf.boolean_mask(rows, keep), tf.boolean_mask(exclude_index, keep)], axis=1)
    return tf.tensor_scatter_nd_update(
        scores, pairs, tf.fill(tf.shape(pairs)[:1], tf.constant(-np.inf, tf.float32))
    )


def write_saved_model(model, snapshot, folder: Path, k: int) -> dict:
    """Write the SavedModel into `folder` (a staging folder); returns the signature description."""
    if model.input_kind == "id":
        seen = snapshot.csr("train", "valid", "test")
        module = ServingModule(
            model, snapshot.user_ids, snapshot.item_ids, seen, snapshot.item_popularity(), k
        )
        context = {"user_id": "string[batch]"}
        described = {"user_id": "string[batch]"}
    else:
        module = HistoryServingModule(model, snapshot.item_ids, k)
        context = {"history": "string[batch, n]"}
        described = {"history": "string[batch, n] (original item ids, most recent last; '' pads)"}
    tf.saved_model.save(
        module,
        str(folder),
        signatures={
            "serving_default": module.serve,
            "serving_exclude": module.serve_excluding,
            "score": module.score,
        },
    )
    top_k = {"item_ids": f"string[batch, {module.k}]", "scores": f"float32[batch, {module.k}]"}
    return {
        "serving_default": {"inputs": described, "outputs": top_k},
        "serving_exclude": {
            "inputs": {**context, "exclude_item_ids": "string[batch, m] ('' pads)"},
            "outputs": top_k,
        },
        "score": {
            "inputs": {**context, "item_ids": "string[batch, m]"},
            "outputs": {"scores": "float32[batch, m]"},
        },
    }
