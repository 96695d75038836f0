"""Quality gates for CI: fail (exit code 3) when a metric is below a floor (gate.min), above a
ceiling (gate.max) or below a lift over a baseline (gate.baseline, pop by default). For a
lower-is-better metric (rmse, mae, logloss) the lift is the baseline's value divided by the model's,
so a lift above 1 is always better than the baseline.

The gate section is checked with the rest of the config (recctl.config.checked_gate)."""

from __future__ import annotations

from recctl.config import GateConfig
from recctl.errors import ConfigError, GateFailed


def check_gate(gate: GateConfig, metrics: dict, baseline: dict, task: str = "ranking") -> str | None:
    """None when no gate is set; a one-line verdict when it passes; GateFailed when it does not."""
    from recctl.evaluation.baselines import for_task
    from recctl.evaluation.metrics import lower_is_better

    if gate.metric is None:
        return None
    values = metrics.get(gate.split) or {}
    if gate.metric not in values:
        known = ", ".join(sorted(values)) or "none"
        raise ConfigError(f"gate.metric={gate.metric} was not computed on {gate.split} (computed: {known})")
    value = values[gate.metric]
    name = for_task([gate.baseline], task)[0]
    if name == "pop" and not any((baseline.get("pop") or {}).values()) and baseline.get("feature_pop"):
        name = "feature_pop"  # dataset.split=cold_items: pop stands for feature_pop (baselines.cold_names)
    base_value = ((baseline.get(name) or {}).get(gate.split) or {}).get(gate.metric)
    problems = []
    if gate.min is not None and value < gate.min:
        problems.append(f"{gate.metric}={value:.4f} < gate.min={gate.min}")
    if gate.max is not None and value > gate.max:
        problems.append(f"{gate.metric}={value:.4f} > gate.max={gate.max}")
    if lower_is_better(gate.metric):
        lift = base_value / value if base_value and value else float("inf")
    else:
        lift = value / base_value if base_value else float("inf")
    if gate.min_lift is not None:
        if base_value is None:
            raise ConfigError(
                f"gate.min_lift needs the {name} baseline on {gate.split} (evaluation.baselines=[{name}])"
            )
        if lift < gate.min_lift:
            problems.append(
                f"{gate.metric}={value:.4f} is {lift:.2f}x {name} ({base_value:.4f}) < gate.min_lift={gate.min_lift}"
            )
    if problems:
        raise GateFailed(f"quality gate failed on {gate.split}: " + "; ".join(problems))
    against = f" ({lift:.2f}x {name})" if base_value else ""
    return f"quality gate passed on {gate.split}: {gate.metric}={value:.4f}{against}"
