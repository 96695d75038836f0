"""Where training runs: a tf.distribute strategy chosen by the `strategy` config group.

recctl never distributes anything itself: it picks a TensorFlow strategy, builds the model and
optimizer inside its scope and lets `model.fit` feed it. Batch sizes in the config are global; the
per-replica share is derived and logged. docs/distributed.md has the commands and what each
option was verified on.

`make_strategy` runs before any data is read, so a request this machine cannot honour (a TPU that
is not there, a GPU that does not exist, a worker without a cluster spec) fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from recctl import console
from recctl.errors import ConfigError
from recctl.training import strategies


@dataclass
class Placement:
    """The strategy, plus what the rest of training needs to know about it."""

    strategy: tf.distribute.Strategy
    name: str
    is_chief: bool = True  # only the chief writes artifacts (multi_worker)
    multi_worker: bool = False

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def replicated(self) -> bool:  # synchronous replicas through Keras's distributed trainer
        return strategies.get(self.name).replicated


def make_strategy(settings) -> Placement:
    """The placement `strategy.name` asks for (training/strategies/ builds it)."""
    return strategies.get(settings.name).load().build(settings)


def check_devices(devices: list[str]) -> None:
    """Refuse a device this machine does not have, naming what it does have."""
    local = {d.name.replace("/physical_device:", "/").lower() for d in tf.config.list_physical_devices()}
    known = local | {
        f"/{d.device_type.lower()}:{i}" for i, d in enumerate(tf.config.list_logical_devices("CPU"))
    }
    for device in devices:
        spec = tf.DeviceSpec.from_string(device)
        kind = (spec.device_type or "").lower()
        wanted = f"/{kind}:{spec.device_index or 0}"
        if kind not in ("cpu", "gpu") or wanted not in known:
            have = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"strategy: device {device!r} is not on this machine (it has: {have})")


def split_cpu(logical_cpus: int) -> None:
    """Split the CPU into N logical devices: lets `mirrored` run several replicas on a CPU-only machine
    (for correctness checks: on a few cores it is slower than one device, not faster)."""
    if logical_cpus <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)]
        )
    except RuntimeError as exc:  # TensorFlow initialised its devices already
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != logical_cpus:
            raise ConfigError(f"strategy.logical_cpus={logical_cpus}: {exc}") from None


def set_precision(policy: str | None) -> None:
    """Mixed precision for everything built afterwards (scores still come out as float32)."""
    import keras

    keras.mixed_precision.set_global_policy(policy or "float32")
    if policy:
        console.info(f"mixed precision: {policy} (variables float32, compute {policy.split('_')[1]})")


def steps_per_execution(trainer, placement: Placement) -> int:
    """trainer.steps_per_execution: auto = 32 on one device, 1 under mirrored/multi_worker (Keras 3.15
    fails with more there, keras-team/keras#19246; config.check_placement refuses an explicit value > 1)."""
    value = trainer.steps_per_execution
    if value == "auto":
        return 1 if placement.replicated else 32
    return int(value)
