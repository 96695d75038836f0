"""Typed views of the config sections a command reads, validated before any data is touched."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from recctl.config import EvaluationConfig, ExportConfig, Paths, StrategyConfig, TrainerConfig
from recctl.errors import ConfigError, RecctlError
from recctl.evaluation.metrics import NAMES


def _merge(schema, section: Any, name: str):
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), section if section is not None else {})
    except Exception as exc:
        raise ConfigError(f"{name}: {str(exc).splitlines()[0]}") from None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def paths(cfg) -> Paths:
    return _merge(Paths, cfg.get("paths"), "paths")


def seed(cfg) -> int:
    value = cfg.get("seed", 42)
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"seed must be a non-negative integer. Received: {value!r}",
    )
    return value


def trainer(cfg) -> TrainerConfig:
    t = _merge(TrainerConfig, cfg.get("trainer"), "trainer")
    _check(t.epochs >= 1, f"trainer.epochs must be >= 1. Received: {t.epochs}")
    _check(t.batch_size >= 1, f"trainer.batch_size must be >= 1. Received: {t.batch_size}")
    _check(t.patience >= 1, f"trainer.patience must be >= 1. Received: {t.patience}")
    _check(t.min_updates >= 0, f"trainer.min_updates must be >= 0. Received: {t.min_updates}")
    spe = t.steps_per_execution
    _check(
        spe == "auto" or (isinstance(spe, int) and not isinstance(spe, bool) and spe >= 1),
        f"trainer.steps_per_execution must be a positive integer or auto. Received: {spe!r}",
    )
    _check(t.validate_every >= 1, f"trainer.validate_every must be >= 1. Received: {t.validate_every}")
    _check(
        t.jit_compile in (True, False, "auto"),
        f"trainer.jit_compile must be true, false or auto. Received: {t.jit_compile!r}",
    )
    _check(
        t.verbose in ("auto", "progress", "lines", "quiet"),
        f"trainer.verbose must be auto, progress, lines or quiet. Received: {t.verbose!r}",
    )
    name, _, k = str(t.monitor).partition("@")
    _check(
        name in ("ndcg", "hr", "recall", "mrr", "precision", "map") and k.isdigit() and int(k) > 0,
        f"trainer.monitor must look like ndcg@10 (a ranking metric at a cut-off). Received: {t.monitor!r}",
    )
    _check(t.lr_schedule is None, "trainer.lr_schedule is not supported yet: leave it null")
    return t


def evaluation(cfg) -> EvaluationConfig:
    e = _merge(EvaluationConfig, cfg.get("evaluation"), "evaluation")
    _check(
        len(e.ks) > 0 and all(k >= 1 for k in e.ks),
        f"evaluation.ks must be positive cut-offs. Received: {list(e.ks)}",
    )
    unknown = [m for m in e.metrics if m not in NAMES]
    _check(not unknown, f"evaluation.metrics: unknown {unknown}; known: {', '.join(NAMES)}")
    _check(e.batch_size >= 1, f"evaluation.batch_size must be >= 1. Received: {e.batch_size}")
    _check(
        e.logloss_negatives is None or e.logloss_negatives >= 1,
        f"evaluation.logloss_negatives must be >= 1 (or null). Received: {e.logloss_negatives}",
    )
    return e


STRATEGIES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")


def strategy(cfg) -> StrategyConfig:
    s = _merge(StrategyConfig, cfg.get("strategy"), "strategy")
    _check(
        s.name != "parameter_server",
        "strategy=parameter_server is not available: Keras 3 fit does not support ParameterServerStrategy "
        "(keras-team/keras#18624); use mirrored or multi_worker (docs/distributed.md)",
    )
    _check(
        s.name in STRATEGIES, f"strategy.name must be one of {', '.join(STRATEGIES)}. Received: {s.name!r}"
    )
    _check(
        s.mixed_precision in (None, "mixed_float16", "mixed_bfloat16"),
        f"strategy.mixed_precision must be null, mixed_float16 or mixed_bfloat16. Received: {s.mixed_precision!r}",
    )
    _check(s.logical_cpus >= 0, f"strategy.logical_cpus must be >= 0. Received: {s.logical_cpus}")
    _check(
        s.cluster_resolver in ("tf_config", "slurm"),
        f"strategy.cluster_resolver must be tf_config or slurm. Received: {s.cluster_resolver!r}",
    )
    _check(
        s.communication in ("auto", "ring", "nccl"),
        f"strategy.communication must be auto, ring or nccl. Received: {s.communication!r}",
    )
    _check(s.timeout_seconds > 0, f"strategy.timeout_seconds must be > 0. Received: {s.timeout_seconds}")
    return s


def placement(trainer_cfg: TrainerConfig, strategy_cfg: StrategyConfig) -> None:
    """Refuse combinations that cannot run, before any data is read."""
    spe = trainer_cfg.steps_per_execution
    if strategy_cfg.name in ("mirrored", "multi_worker") and spe != "auto" and spe > 1:
        raise ConfigError(
            f"strategy={strategy_cfg.name} cannot run trainer.steps_per_execution={spe} with Keras 3.15 "
            "(keras-team/keras#19246): use trainer.steps_per_execution=1 or auto"
        )
    if strategy_cfg.name in ("mirrored", "multi_worker") and trainer_cfg.jit_compile is True:
        raise ConfigError(
            f"strategy={strategy_cfg.name} cannot run trainer.jit_compile=true: XLA cannot compile a step that "
            "reads variables placed on other replicas' devices; use trainer.jit_compile=auto or false"
        )


def export(cfg) -> ExportConfig:
    e = _merge(ExportConfig, cfg.get("export"), "export")
    _check(
        e.format in ("saved_model", "keras", "onnx", "litert"),
        f"export.format must be saved_model, keras, onnx or litert. Received: {e.format!r}",
    )
    _check(
        e.quantize in ("none", "dynamic", "float16"),
        f"export.quantize must be none, dynamic or float16. Received: {e.quantize!r}",
    )
    _check(
        e.quantize == "none" or e.format == "litert",
        f"export.quantize={e.quantize} applies to export.format=litert only. Received format: {e.format}",
    )
    _check(e.k >= 1, f"export.k must be >= 1. Received: {e.k}")
    if e.name is not None:
        _check(
            e.name.replace("-", "").replace("_", "").replace(".", "").isalnum()
            and not e.name.startswith("."),
            f"export.name must be letters, digits, '-', '_' or '.'. Received: {e.name!r}",
        )
    return e


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


def output_error(exc: OSError, target: str, setting: str, value: Any) -> RecctlError | None:
    """An OSError met while writing `target` under a configured folder, as a one-line error (None:
    another kind of failure, left as it is).

    A full disk (or quota) is a runtime failure (exit 1). A folder that cannot be created or written
    (read-only, no permission, a file in the way) is a config error naming the setting (exit 2).
    """
    if exc.errno in _DISK_FULL:
        return RecctlError(
            f"no space left on device while writing {target}; nothing was kept (free some space, or set {setting} "
            "to a folder on another disk)"
        )
    if exc.errno in _NOT_WRITABLE:
        blocker = _file_in_the_way(Path(exc.filename)) if exc.filename else None
        reason = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or str(exc))
        return ConfigError(f"{setting}={value}: cannot write {target} ({reason})")
    return None


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` (itself included) when it is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
