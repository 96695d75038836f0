"""The Sweeper class Hydra instantiates for `hydra/sweeper=optuna`; the work is in recctl.optuna_search."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from recctl.optuna_search import OptunaSearch

        self._search = OptunaSearch(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self._search.sweep(arguments)
