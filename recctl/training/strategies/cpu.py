"""strategy=cpu: the CPU only, even where a GPU is visible."""

from __future__ import annotations

import tensorflow as tf

from recctl.training.strategy import Placement


def build(settings) -> Placement:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised: placing on the CPU is still enough
        pass
    return Placement(tf.distribute.OneDeviceStrategy("/cpu:0"), settings.name)
