"""tf.data input pipelines, one per input kind: whole batches, negatives sampled in-graph, no Python per example."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def id_training_dataset(
    users: np.ndarray, items: np.ndarray, n_items: int, batch_size: int, num_negatives: int, seed: int
) -> tf.data.Dataset:
    """Batches of ({"user": [B], "items": [B, 1 + num_negatives]}, labels [B, 1 + num_negatives]).

    The positive item comes first; negatives are uniform over the catalogue, drawn per batch (a
    negative may rarely be another positive of the user: the usual, cheap approximation).
    Reshuffled every epoch.
    """
    n = len(users)
    ds = tf.data.Dataset.from_tensor_slices((users.astype(np.int32), items.astype(np.int32)))
    ds = ds.shuffle(min(n, 1 << 20), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE)
    width = 1 + num_negatives

    def add_negatives(u, i):
        negatives = tf.random.uniform((tf.shape(u)[0], num_negatives), 0, n_items, dtype=tf.int32)
        candidates = tf.concat([i[:, None], negatives], axis=1)
        labels = tf.concat(
            [tf.ones_like(u[:, None], tf.float32), tf.zeros_like(negatives, tf.float32)], axis=1
        )
        return {"user": u, "items": candidates}, tf.reshape(labels, (-1, width))

    ds = ds.map(add_negatives, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
