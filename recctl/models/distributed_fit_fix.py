"""Let Keras 3's `model.fit` run recctl's models under tf.distribute strategies.

Keras 3.15's TensorFlow trainer fails there at two spots, both about *reducing* values across
replicas, never about the training step itself (keras-team/keras#20585 for multi-worker):

1. `_maybe_symbolic_build` averages the first batch over the replicas to get a batch to build the
   model on. Under MirroredStrategy that averages integer ids into floats (models with id inputs
   then fail to build); under MultiWorkerMirroredStrategy the collective reduce cannot take a
   nested batch at all (a `PerReplica` conversion error). Any one replica's batch serves the same
   purpose, so we take this process's first local replica.
2. Under MultiWorkerMirroredStrategy, `reduce_per_replica` turns each step's logs into one value
   with `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar losses and metrics. We hand
   it each scalar as a 1-element vector, so the same call becomes the cross-worker mean.

Nothing changes without a strategy or on another backend, and the mixin steps aside if the Keras
trainer no longer has the method it wraps. tests/test_strategies.py trains under mirrored and with
two real worker processes, and fails if a Keras upgrade breaks this.
"""

from __future__ import annotations

import keras


def _multi_worker(strategy) -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class DistributedFitFix:
    """Mixed into recctl's model base class (before keras.Model)."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        parent = getattr(super(), "_maybe_symbolic_build", None)
        if parent is None:
            return None
        if iterator is not None and getattr(self, "_distribute_strategy", None) is not None:
            import tensorflow as tf

            strategy = self.distribute_strategy

            def local(value):
                if isinstance(value, tf.distribute.DistributedValues):
                    return strategy.experimental_local_results(value)[0]
                return value

            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(local, next(it))
                break
            iterator = None
        return parent(iterator=iterator, data_batch=data_batch)

    def _make_function(self, step_function):
        if _multi_worker(self.distribute_strategy):
            inner = step_function

            def step_function(data):
                logs = inner(data)
                return keras.tree.map_structure(
                    lambda v: keras.ops.reshape(v, (1,)) if len(getattr(v, "shape", (0,))) == 0 else v, logs
                )

        return super()._make_function(step_function)
