"""Where training runs: a tf.distribute strategy chosen by the `strategy` config group.

recctl never distributes anything itself; it picks a TensorFlow strategy and builds the model and
optimizer inside its scope. Batch sizes in the config are global.
"""

from __future__ import annotations

import tensorflow as tf

from recctl import console
from recctl.errors import ConfigError


def make_strategy(settings) -> tf.distribute.Strategy:
    name = settings.name
    if name == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            console.info(f"strategy: auto -> one GPU ({gpus[0].name})")
            return tf.distribute.OneDeviceStrategy("/gpu:0")
        return tf.distribute.get_strategy()  # the default strategy: plain single-device execution
    if name == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices already initialised: placing on the CPU is still enough
            pass
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    raise ConfigError(f"strategy.name must be auto or cpu. Received: {name!r}")
