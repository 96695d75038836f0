"""Quality gates for CI: fail (exit code 3) when a metric is below a floor or below a lift over pop.

The gate section is checked with the rest of the config (recctl.config.checked_gate)."""

from __future__ import annotations

from recctl.config import GateConfig
from recctl.errors import ConfigError, GateFailed


def check_gate(gate: GateConfig, metrics: dict, baseline: dict) -> str | None:
    """None when no gate is set; a one-line verdict when it passes; GateFailed when it does not."""
    if gate.metric is None:
        return None
    values = metrics.get(gate.split) or {}
    if gate.metric not in values:
        known = ", ".join(sorted(values)) or "none"
        raise ConfigError(f"gate.metric={gate.metric} was not computed on {gate.split} (computed: {known})")
    value = values[gate.metric]
    pop_value = ((baseline.get("pop") or {}).get(gate.split) or {}).get(gate.metric)
    problems = []
    if gate.min is not None and value < gate.min:
        problems.append(f"{gate.metric}={value:.4f} < gate.min={gate.min}")
    lift = value / pop_value if pop_value else float("inf")
    if gate.min_lift is not None:
        if pop_value is None:
            raise ConfigError("gate.min_lift needs the popularity baseline (evaluation.baseline=true)")
        if lift < gate.min_lift:
            problems.append(
                f"{gate.metric}={value:.4f} is {lift:.2f}x pop ({pop_value:.4f}) < gate.min_lift={gate.min_lift}"
            )
    if problems:
        raise GateFailed(f"quality gate failed on {gate.split}: " + "; ".join(problems))
    return f"quality gate passed on {gate.split}: {gate.metric}={value:.4f} ({lift:.2f}x pop)"
