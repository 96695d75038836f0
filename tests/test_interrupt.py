"""A stop signal during fit ends it at a batch boundary (training/interrupt.py)."""

import os
import signal

import numpy as np
import pytest


def test_a_signal_outside_fit_raises_at_once():
    from recctl.training.interrupt import handle_stop_signal

    with pytest.raises(KeyboardInterrupt):
        handle_stop_signal(signal.SIGTERM, None)


def test_sigterm_in_fit_stops_after_the_batch_and_skips_the_partial_epoch():
    import keras

    from recctl.training.interrupt import deferred_interrupts, raise_if_requested, stoppable_callbacks

    seen = {"batches": [], "epoch_ends": [], "train_end": 0}

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["batches"].append((self.epoch, batch))
            if self.epoch == 1 and batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # deferred: the fit goes on to the batch end

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            seen["epoch_ends"].append(epoch)

        def on_train_end(self, logs=None):
            seen["train_end"] += 1

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((40, 3), "float32"), np.zeros((40, 1), "float32")
    before = signal.getsignal(signal.SIGTERM)
    callbacks = stoppable_callbacks([Record()], model, epochs=5, steps=10, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            model.fit(x, y, batch_size=4, epochs=5, callbacks=callbacks, verbose=0)
        raise_if_requested()
    assert seen["batches"][-1] == (1, 2)  # stopped right after the batch it was asked in
    assert seen["epoch_ends"] == [0]  # epoch 1 was half done: no end-of-epoch work for it
    assert seen["train_end"] == 1  # writers and loggers still closed
    assert signal.getsignal(signal.SIGTERM) is before
    raise_if_requested()  # the request was consumed
