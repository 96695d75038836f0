"""The baselines that stand beside every result (`evaluation.baselines`, issue #15).

`pop` is the task's own popularity figure (tasks.py); `feature_pop` ranks items by the training
popularity of their side-feature values (what `pop` means on dataset.split=cold_items). The others are the families fitted without
epochs (EASE, item-kNN, user-kNN), built at their `conf/model/<name>.yaml` defaults from the
snapshot being evaluated and scored through the very path the model is: a deep model that does not
beat them is not worth its training time. A task lists which of them make sense for it (a CTR
result has only pop: the closed-form models rank, they do not predict labels; a rating result has
the regularised bias model, the rating counterpart of pop, which the default `[pop]` then means).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recctl.errors import ConfigError

# Baselines by task (model.task); the first is the default of gate.baseline.
FOR_TASK: dict[str, tuple[str, ...]] = {
    "ranking": ("pop", "ease", "item_knn", "user_knn", "feature_pop"),
    "ctr": ("pop",),
    "rating": ("bias",),
}
NAMES = tuple(dict.fromkeys(name for names in FOR_TASK.values() for name in names))


def for_task(names, task: str) -> list[str]:
    """The baselines as the task reads them: `pop` (the default of evaluation.baselines and
    gate.baseline) stands for the task's own first baseline where pop does not apply (rating: bias)."""
    allowed = FOR_TASK.get(task, ("pop",))
    return [allowed[0] if n == "pop" and "pop" not in allowed else str(n) for n in names]


def check_baselines(names, task: str) -> None:
    """Refuse a baseline the task cannot have, before any work (train) or before scoring (evaluate)."""
    allowed = FOR_TASK.get(task, ("pop",))
    refused = [n for n in for_task(names, task) if n not in allowed]
    if refused:
        raise ConfigError(
            f"evaluation.baselines: {refused[0]} does not apply to model.task={task}; "
            f"choose from {', '.join(allowed)} (or [] for none)"
        )


def baseline_scorers(task, snapshot, settings, seed: int) -> dict[str, Callable[[str], dict[str, Any]]]:
    """{name: split -> metrics} for each configured baseline; a fitted baseline is built once."""
    check_baselines(settings.baselines, task.name)
    names = list(dict.fromkeys(cold_names(for_task(settings.baselines, task.name), snapshot)))
    return {name: _scorer(name, task, snapshot, settings, seed) for name in names}


def cold_names(names, snapshot) -> list[str]:
    """On dataset.split=cold_items `pop` stands for `feature_pop`: cold items have no training
    interactions, so pop's counts are all 0 there (docs/evaluation.md)."""
    if snapshot.cold_side != "items":
        return list(names)
    return ["feature_pop" if n == "pop" else n for n in names]


def _scorer(name: str, task, snapshot, settings, seed: int):
    if name == "pop":
        return lambda split: task.baseline(snapshot, settings, split, seed)
    if name == "feature_pop":
        return lambda split: task.feature_baseline(snapshot, settings, split, seed)
    model = _fitted_model(name, snapshot)
    return lambda split: task.evaluate(model, snapshot, settings, seed, split)


def _fitted_model(name: str, snapshot):
    from omegaconf import OmegaConf

    from recctl.confdir import conf_dir
    from recctl.training.factory import build_model

    return build_model(OmegaConf.load(conf_dir() / "model" / f"{name}.yaml"), snapshot)
