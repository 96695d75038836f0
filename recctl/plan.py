"""A command's plan: every config section it reads, checked once, before any data is read or any
folder is filled.

The sections come from recctl.config (schemas and range checks), the dataset section from
recctl.config.checked_dataset, the model and optimizer targets from training/factory.py. They
are checked in the order the command has always checked them, so the first problem reported stays
the same. A command and everything it calls then read the plan, never the raw config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recctl import config
from recctl.config import EvaluationConfig, ExportConfig, GateConfig, Paths, StrategyConfig, TrainerConfig

if TYPE_CHECKING:
    from recctl.training.resume import Resumed


@dataclass(frozen=True)
class PreparePlan:
    paths: Paths
    seed: int
    dataset: Any  # the dataset section merged onto DatasetConfig and checked


@dataclass(frozen=True)
class EvaluatePlan:
    evaluation: EvaluationConfig
    gate: GateConfig
    paths: Paths


@dataclass(frozen=True)
class ComparePlan:
    run: str
    base: str
    resamples: int  # evaluation.bootstrap
    gate: config.CompareGateConfig
    paths: Paths
    seed: int


@dataclass(frozen=True)
class ExportPlan:
    export: ExportConfig
    paths: Paths


@dataclass(frozen=True)
class TrainPlan:
    config: Any  # the composed config as given (resume: the run's own): the run's config.yaml, MLflow params
    trainer: TrainerConfig
    evaluation: EvaluationConfig
    strategy: StrategyConfig
    seed: int
    paths: Paths
    gate: GateConfig
    init_from: Path | None  # init_from=: the completed run whose weights start this one
    dataset: Any  # merged onto DatasetConfig and checked
    model: Any  # the model section (`_target_` + hyperparameters), its target checked
    model_cls: type
    optimizer: Any  # the optimizer section, its target and learning rate checked
    logger: Any  # the logger section (`name`, and the logger's own settings)
    resume: Resumed | None  # resume=: the killed run this invocation continues
    run_dir: Path  # where the run lives: Hydra's job folder, or the resumed run's folder
    model_name: str  # the model group's option (or the resumed run's)
    overrides: tuple[str, ...]  # Hydra's task overrides, for the manifest

    @property
    def resume_from(self) -> Path | None:
        """The checkpoint a resumed run continues from."""
        return self.resume.checkpoint if self.resume is not None else None


def prepare_plan(cfg) -> PreparePlan:

    paths = config.checked_paths(cfg)
    seed = config.checked_seed(cfg)
    return PreparePlan(paths, seed, config.checked_dataset(cfg.dataset))


def evaluate_plan(cfg) -> EvaluatePlan:
    evaluation = config.checked_evaluation(cfg)
    gate = config.checked_gate(cfg)
    config.check_gate_baseline(gate, evaluation)
    return EvaluatePlan(evaluation, gate, config.checked_paths(cfg))


def compare_plan(cfg) -> ComparePlan:
    evaluation = config.checked_evaluation(cfg)
    return ComparePlan(
        run=str(cfg.get("run") or "latest"),
        base=config.checked_base_run(cfg),
        resamples=max(int(evaluation.bootstrap), 1),
        gate=config.checked_compare_gate(cfg),
        paths=config.checked_paths(cfg),
        seed=config.checked_seed(cfg),
    )


def export_plan(cfg) -> ExportPlan:
    export = config.checked_export(cfg)
    return ExportPlan(export, config.checked_paths(cfg))


def train_plan(cfg, hydra_cfg) -> TrainPlan:
    """`resume=` is resolved first (the run's own config is then the one checked); the model is not
    built here (check_model needs the strategy's devices: commands/train.py builds it after)."""
    resume = None
    if cfg.get("resume") is not None:
        from recctl.training.resume import resumable_run

        resume = resumable_run(cfg, hydra_cfg)
        cfg = resume.cfg
    trainer = config.checked_trainer(cfg)
    evaluation = config.checked_evaluation(cfg)
    strategy = config.checked_strategy(cfg)
    config.check_placement(trainer, strategy)
    seed = config.checked_seed(cfg)
    paths = config.checked_paths(cfg)
    gate = config.checked_gate(cfg)
    config.check_gate_baseline(gate, evaluation)
    from recctl.evaluation.baselines import check_baselines
    from recctl.training.factory import check_optimizer, model_class

    check_baselines(evaluation.baselines, cfg.model.get("task") or "ranking")
    from recctl.training.warm_start import warm_start_run

    model_cls = model_class(cfg.model)
    config.check_fitted_without_epochs(model_cls, resume is not None, cfg.get("init_from"))
    init_from = warm_start_run(
        cfg.get("init_from"), Path(paths.output_dir), cfg.model, cfg.optimizer, trainer.carry_optimizer
    )
    dataset = config.checked_dataset(cfg.dataset)
    config.check_sequence_order(model_cls, dataset)
    family = resume.model if resume else (hydra_cfg.runtime.choices.get("model") or model_cls.__name__)
    config.check_cold_split(model_cls, cfg.model, dataset, family, evaluation.candidates)
    check_optimizer(cfg.optimizer)
    if cfg.logger.get("name") == "mlflow":
        from recctl.training.mlflow_logger import check_available

        check_available()
    config.check_task_data(cfg.model, dataset)
    return TrainPlan(
        config=cfg,
        trainer=trainer,
        evaluation=evaluation,
        strategy=strategy,
        seed=seed,
        paths=paths,
        gate=gate,
        init_from=init_from,
        dataset=dataset,
        model=cfg.model,
        model_cls=model_cls,
        optimizer=cfg.optimizer,
        logger=cfg.logger,
        resume=resume,
        run_dir=resume.run_dir if resume else Path(hydra_cfg.runtime.output_dir),
        model_name=resume.model if resume else (hydra_cfg.runtime.choices.get("model") or "model"),
        overrides=tuple(hydra_cfg.overrides.task),
    )
