"""Import TensorFlow quietly: its C++ runtime prints INFO lines (oneDNN, CUDA probing) straight to
file descriptor 2 before any Python logging setting applies, which buries recctl's one-line
messages. Errors still surface as Python exceptions."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _silenced_stderr_fd():
    if os.environ.get("RECCTL_TF_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Import TensorFlow and probe its devices once, with the C++ start-up chatter discarded."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _silenced_stderr_fd():
        import tensorflow as tf

        tf.config.list_physical_devices()
        import keras  # noqa: F401
    return tf
