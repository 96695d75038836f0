"""Early stopping on full-ranking validation (recctl.training.callbacks.RankingValidation)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

from recctl.training.callbacks import RankingValidation  # noqa: E402


class _Model:
    """Just what the callback touches: an optimizer with an update count, weights, stop_training."""

    def __init__(self):
        self.optimizer = keras.optimizers.SGD()
        self.stop_training = False
        self.weights_now = [0]

    def get_weights(self):
        return list(self.weights_now)

    def set_weights(self, weights):
        self.weights_now = list(weights)


def _run(values, updates_per_epoch, min_updates, patience=2):
    scores = iter(values)
    callback = RankingValidation(
        lambda: {"ndcg@10": next(scores)}, "ndcg@10", patience, 0.0, True, True, 1, min_updates
    )
    model = _Model()
    callback.set_model(model)
    epochs = 0
    for epoch, _ in enumerate(values):
        model.optimizer.iterations.assign_add(updates_per_epoch)
        model.weights_now = [epoch]
        callback.on_epoch_end(epoch, {})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs, callback, model


def test_stops_after_patience_epochs_without_improvement():
    epochs, callback, model = _run([0.1, 0.3, 0.2, 0.2, 0.25, 0.5], updates_per_epoch=500, min_updates=1000)
    assert epochs == 4 and callback.stopped_early
    assert callback.best_epoch == 1 and model.weights_now == [1]  # best weights restored


def test_waits_for_min_updates_on_a_plateau():
    # 10 updates an epoch (a small dataset): the plateau of epochs 2-4 must not end training
    epochs, callback, _ = _run([0.1, 0.1, 0.1, 0.1, 0.1, 0.3], updates_per_epoch=10, min_updates=1000)
    assert epochs == 6 and not callback.stopped_early and callback.best_epoch == 5
