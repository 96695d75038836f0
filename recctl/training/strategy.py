"""Where training runs: a tf.distribute strategy chosen by the `strategy` config group.

recctl never distributes anything itself: it picks a TensorFlow strategy, builds the model and
optimizer inside its scope and lets `model.fit` feed it. Batch sizes in the config are global; the
per-replica share is derived and logged. docs/distributed.md has the commands and what each
option was verified on.

`make_strategy` runs before any data is read, so a request this machine cannot honour (a TPU that
is not there, a GPU that does not exist, a worker without a cluster spec) fails at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf

from recctl import console
from recctl.errors import ConfigError

# Strategies that run one synchronous step over several replicas through Keras's distributed
# trainer; Keras 3.15 cannot run them with steps_per_execution > 1 (keras-team/keras#19246).
SYNC_REPLICATED = ("mirrored", "multi_worker")


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


def make_strategy(settings) -> Placement:
    name = settings.name
    if name == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            console.info(f"strategy: auto -> one GPU ({gpus[0].name})")
            return Placement(tf.distribute.OneDeviceStrategy("/gpu:0"), name)
        return Placement(tf.distribute.get_strategy(), name)  # the default strategy: one device
    if name == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices already initialised: placing on the CPU is still enough
            pass
        return Placement(tf.distribute.OneDeviceStrategy("/cpu:0"), name)
    if name == "one_device":
        device = settings.device or ("/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0")
        _check_devices([device])
        console.info(f"strategy: one_device on {device}")
        return Placement(tf.distribute.OneDeviceStrategy(device), name)
    if name == "mirrored":
        _split_cpu(settings.logical_cpus)
        devices = list(settings.devices) if settings.devices else None
        if devices:
            _check_devices(devices)
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        console.info(f"strategy: mirrored over {', '.join(strategy.extended.worker_devices)}")
        return Placement(strategy, name)
    if name == "multi_worker":
        return _multi_worker(settings)
    if name == "tpu":
        return _tpu(settings)
    raise ConfigError(f"strategy.name {name!r} is not available (see docs/distributed.md)")


def _check_devices(devices: list[str]) -> None:
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


def _split_cpu(logical_cpus: int) -> None:
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


def _multi_worker(settings) -> Placement:
    resolver = settings.cluster_resolver
    if resolver == "tf_config":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise ConfigError(
                "strategy=multi_worker needs TF_CONFIG (cluster and task) in the environment of every "
                "worker, or strategy.cluster_resolver=slurm (see docs/distributed.md)"
            )
        try:
            spec = json.loads(raw)
            cluster, task = spec["cluster"], spec["task"]
            task_type, task_index = task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"TF_CONFIG is not a valid cluster spec ({exc!s}): {raw[:200]}") from None
        if task_type not in cluster or task_index >= len(cluster[task_type]):
            raise ConfigError(f"TF_CONFIG: task {task_type}:{task_index} is not in its cluster {cluster}")
        cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    elif resolver == "slurm":
        if "SLURM_JOB_ID" not in os.environ:
            raise ConfigError(
                "strategy.cluster_resolver=slurm: not inside a SLURM job (SLURM_JOB_ID is unset)"
            )
        cluster_resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    else:
        raise ConfigError(f"strategy.cluster_resolver must be tf_config or slurm. Received: {resolver!r}")
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[settings.communication]
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=implementation, timeout_seconds=float(settings.timeout_seconds)
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=cluster_resolver, communication_options=options
    )
    task_type = strategy.cluster_resolver.task_type
    task_id = strategy.cluster_resolver.task_id
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    # The chief: the "chief" task if the cluster has one, else worker 0 (TensorFlow's convention).
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in spec)
    role = "chief" if is_chief else f"{task_type} {task_id} (writes no artifacts)"
    console.info(
        f"strategy: multi_worker, {strategy.num_replicas_in_sync} replicas; this process is the {role}"
    )
    return Placement(strategy, "multi_worker", is_chief=is_chief, multi_worker=True)


def _tpu(settings) -> Placement:
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


def set_precision(policy: str | None) -> None:
    """Mixed precision for everything built afterwards (scores still come out as float32)."""
    import keras

    keras.mixed_precision.set_global_policy(policy or "float32")
    if policy:
        console.info(f"mixed precision: {policy} (variables float32, compute {policy.split('_')[1]})")


def steps_per_execution(trainer, placement: Placement) -> int:
    """trainer.steps_per_execution: auto = 32 on one device, 1 under mirrored/multi_worker (Keras 3.15
    fails with more there, keras-team/keras#19246; settings.placement refuses an explicit value > 1)."""
    value = trainer.steps_per_execution
    if value == "auto":
        return 1 if placement.name in SYNC_REPLICATED else 32
    return int(value)
