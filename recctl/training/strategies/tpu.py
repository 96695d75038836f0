"""strategy=tpu: TPUStrategy through a cluster resolver."""

from __future__ import annotations

import tensorflow as tf

from recctl.errors import ConfigError
from recctl.training.strategy import Placement


def build(settings) -> Placement:
    """TPUStrategy through a resolver; fails before any data is read when no TPU answers."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=settings.tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        where = f"TPU {settings.tpu!r}" if settings.tpu else "a local TPU"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"strategy=tpu: cannot reach {where} ({first[:160]}); use strategy=auto here"
        ) from None
    return Placement(tf.distribute.TPUStrategy(resolver), "tpu")
