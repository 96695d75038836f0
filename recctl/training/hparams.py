"""A run's hyperparameters as flat keys, and TensorBoard's HParams view of them.

The same flat keys (`model.dim`, `optimizer.learning_rate`, ...) are MLflow's params
(training/mlflow_logger.py) and TensorBoard's hparams, so a sweep compares alike in both tools.
A run that writes TensorBoard files (logger=tensorboard, or logger=mlflow with `tensorboard: true`)
gets `<run>/tensorboard/hparams/`: the hparams plus the final valid/test metrics and the pop
baseline's, so `tensorboard --logdir outputs/sweeps/<time>` lists every job in its HParams tab.
"""

from __future__ import annotations

from pathlib import Path

SECTIONS = ("dataset", "model", "optimizer", "strategy", "trainer")


def writes_tensorboard(logger) -> bool:
    return logger.get("name") == "tensorboard" or bool(logger.get("tensorboard", False))


def flat_params(cfg) -> dict:
    """The config sections that define a run, flattened to dotted keys."""
    from omegaconf import OmegaConf

    out = {"seed": cfg.get("seed")}
    for section in SECTIONS:
        node = cfg.get(section)
        if node is None:
            continue
        out.update(_flatten(OmegaConf.to_container(node, resolve=True), section))
    return out


def final_metrics(evaluated: dict) -> dict[str, float]:
    """`valid/ndcg@10`, `test/recall@20`, ..., and the pop baseline's as `pop/test/ndcg@10`."""
    out = {}
    for split, values in (evaluated.get("metrics") or {}).items():
        out.update({f"{split}/{name}": float(v) for name, v in (values or {}).items() if is_number(v)})
    for baseline, splits in (evaluated.get("baseline") or {}).items():
        for split, values in (splits or {}).items():
            out.update(
                {f"{baseline}/{split}/{k}": float(v) for k, v in (values or {}).items() if is_number(v)}
            )
    return out


def write_hparams(folder: Path, config, evaluated: dict, trial_id: str, step: int) -> None:
    """One HParams session in `folder`: the run's hyperparameters and its final metrics at `step`."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    params = {key: _hparam(value) for key, value in flat_params(config).items() if value is not None}
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams(params, trial_id=trial_id)
        for tag, value in final_metrics(evaluated).items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()


def _hparam(value):
    """HParams holds bool, int, float or str: anything else (a list, a dict) as its text."""
    return value if isinstance(value, bool | int | float | str) else str(value)


def _flatten(value, prefix: str) -> dict:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
