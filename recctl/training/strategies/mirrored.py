"""strategy=mirrored: synchronous data parallel over the local GPUs (or N logical CPUs, for checks)."""

from __future__ import annotations

import tensorflow as tf

from recctl import console
from recctl.training.strategy import Placement, check_devices, split_cpu


def build(settings) -> Placement:
    split_cpu(settings.logical_cpus)
    devices = list(settings.devices) if settings.devices else None
    if devices:
        check_devices(devices)
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    console.info(f"strategy: mirrored over {', '.join(strategy.extended.worker_devices)}")
    return Placement(strategy, settings.name)
