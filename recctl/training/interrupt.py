"""Ctrl-C and SIGTERM during `model.fit` stop at the next batch boundary, not inside TensorFlow.

A KeyboardInterrupt raised from a signal handler lands wherever Python happens to be: often in
Keras's or TensorFlow's own code between two steps, where unwinding can leave native state half
torn (a run of the resume tests once died with "free(): invalid next size"). Inside `fit` the
handler only records the request; `StopAtBatchEnd` ends the fit after the running batch, skips
the partial epoch's end-of-epoch work (validation, pruning, history row, checkpoint: a checkpoint
of half an epoch would resume wrongly) and `raise_if_requested` turns the request into the usual
KeyboardInterrupt once Keras has closed its callbacks. A second signal stops at once, as before.
Outside `fit` (data loading, evaluation) a signal raises at once, as it always did.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_state = {"deferring": False, "requested": False}


def handle_stop_signal(signum, frame) -> None:
    """The SIGINT/SIGTERM handler: defer the first signal while fitting, raise otherwise."""
    if _state["deferring"] and not _state["requested"]:
        _state["requested"] = True
        return
    raise KeyboardInterrupt


def stop_requested() -> bool:
    return _state["requested"]


@contextmanager
def deferred_interrupts():
    """While the body runs, a first Ctrl-C/SIGTERM only asks to stop (see the module docstring)."""
    main = threading.current_thread() is threading.main_thread()
    saved = {}
    if main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, handle_stop_signal)
    _state.update(deferring=True, requested=False)
    try:
        yield
    finally:
        _state["deferring"] = False
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def raise_if_requested() -> None:
    """After fit returned: a deferred request becomes the KeyboardInterrupt the runner handles."""
    if _state["requested"]:
        _state["requested"] = False
        raise KeyboardInterrupt


def stoppable_callbacks(callbacks, model, epochs: int, steps: int | None, verbose: int):
    """A keras CallbackList that ends the fit at the batch after a stop request (Keras uses a
    CallbackList it is given as-is, so the partial epoch's `on_epoch_end` can be skipped)."""
    import keras

    class StopAtBatchEnd(keras.callbacks.CallbackList):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if stop_requested():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if stop_requested():  # half an epoch: no validation, history row or checkpoint
                return
            super().on_epoch_end(epoch, logs)

    return StopAtBatchEnd(
        list(callbacks),
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )
