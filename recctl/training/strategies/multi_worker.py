"""strategy=multi_worker: MultiWorkerMirroredStrategy over a cluster described by TF_CONFIG or SLURM;
the chief writes the run, the other workers train into a scratch folder (docs/distributed.md)."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from recctl import console
from recctl.errors import ConfigError
from recctl.training.strategy import Placement


def build(settings) -> Placement:
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
