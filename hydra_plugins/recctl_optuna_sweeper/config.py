"""The `hydra/sweeper: optuna` schema and its samplers, in Hydra's ConfigStore.

The keys are the ones hydra-optuna-sweeper had (`n_trials`, `direction`, `params`, `sampler`,
`storage`, `study_name`, `n_jobs`, `max_failure_rate`), so existing commands keep working; the
pruner keys are new. A typo under `hydra.sweeper` fails before any trial runs (structured config).
"""

# No `from __future__ import annotations`: Hydra runs this module before it is in sys.modules,
# where dataclasses cannot resolve string annotations.

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConfig:
    _target_: str = MISSING


@dataclass
class TPESamplerConfig(SamplerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html"""

    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    constant_liar: bool = False  # with n_jobs > 1: keeps parallel trials apart


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class GridSamplerConfig(SamplerConfig):
    """Every combination of the `choice(...)`/`range(...)` params (the grid is filled in at sweep time)."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: int | None = None


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.recctl_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: SamplerConfig = MISSING
    direction: str = "maximize"  # maximize | minimize (the presets follow model.task)
    # null: a persistent SQLite study at <paths.output_dir>/optuna/<study_name>.db, so running the
    # same command again continues a killed sweep. Any Optuna storage URL is taken as given.
    storage: str | None = None
    study_name: str | None = None  # null: named after the search space (same command, same study)
    n_trials: int = 20  # the study's total: a continued study runs only the trials it still lacks
    n_jobs: int = 1  # trials launched at once (with a parallel launcher, e.g. hydra/launcher=joblib)
    max_failure_rate: float = 0.0  # stop the search when more than this share of trials failed
    params: dict[str, str] | None = None  # the search space: key -> choice(...) | interval(...) | value
    # Pruning from the per-epoch validation figure: `median` stops a trial whose figure is worse than
    # the median of earlier trials at the same epoch; `none` lets every trial run to its end.
    pruner: str = "median"
    pruner_startup_trials: int = 5  # trials that run to their end before any is pruned
    pruner_warmup_epochs: int = 1  # epochs of each trial never pruned


_cs = ConfigStore.instance()
_cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="recctl")
_cs.store(group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConfig, provider="recctl")
_cs.store(group="hydra/sweeper/sampler", name="random", node=RandomSamplerConfig, provider="recctl")
_cs.store(group="hydra/sweeper/sampler", name="grid", node=GridSamplerConfig, provider="recctl")
