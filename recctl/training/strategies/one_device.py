"""strategy=one_device: one named device (`strategy.device`; default the first GPU, else the CPU)."""

from __future__ import annotations

import tensorflow as tf

from recctl import console
from recctl.training.strategy import Placement, check_devices


def build(settings) -> Placement:
    device = settings.device or ("/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0")
    check_devices([device])
    console.info(f"strategy: one_device on {device}")
    return Placement(tf.distribute.OneDeviceStrategy(device), settings.name)
