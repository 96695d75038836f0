"""strategy=auto: the first GPU if there is one, else TensorFlow's default strategy (one device)."""

from __future__ import annotations

import tensorflow as tf

from recctl import console
from recctl.training.strategy import Placement


def build(settings) -> Placement:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        console.info(f"strategy: auto -> one GPU ({gpus[0].name})")
        return Placement(tf.distribute.OneDeviceStrategy("/gpu:0"), settings.name)
    return Placement(tf.distribute.get_strategy(), settings.name)
