"""Distribution strategies, by `strategy.name`: which module builds each, and what the rest of recctl
must know about it before TensorFlow is imported.

A new strategy is one module here defining ``build(settings) -> Placement`` (training/strategy.py),
one line in ``STRATEGIES`` and one conf/strategy/<name>.yaml. No TensorFlow here: config.py reads
the names and flags to check a config before any work.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from recctl.errors import ConfigError


@dataclass(frozen=True)
class StrategyKind:
    module: str  # the module whose build(settings) returns a Placement
    # One synchronous step over several replicas through Keras's distributed trainer: Keras 3.15
    # cannot run those with steps_per_execution > 1 (keras-team/keras#19246), nor XLA across devices.
    replicated: bool = False

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


# strategy.name -> how it is built. The keys are what users' configs say: keep them.
STRATEGIES: dict[str, StrategyKind] = {
    "auto": StrategyKind("recctl.training.strategies.auto"),
    "cpu": StrategyKind("recctl.training.strategies.cpu"),
    "one_device": StrategyKind("recctl.training.strategies.one_device"),
    "mirrored": StrategyKind("recctl.training.strategies.mirrored", replicated=True),
    "multi_worker": StrategyKind("recctl.training.strategies.multi_worker", replicated=True),
    "tpu": StrategyKind("recctl.training.strategies.tpu"),
}
NAMES: tuple[str, ...] = tuple(STRATEGIES)


def get(name: str) -> StrategyKind:
    if name not in STRATEGIES:
        raise ConfigError(f"strategy.name must be one of {', '.join(NAMES)}. Received: {name!r}")
    return STRATEGIES[name]
