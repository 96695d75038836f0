"""Quality gates for CI: fail (exit code 3) when a metric is below a floor or below a lift over pop."""

from __future__ import annotations

from omegaconf import OmegaConf

from recctl.config import GateConfig
from recctl.errors import ConfigError, GateFailed


def gate_settings(gate_cfg) -> GateConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(GateConfig), gate_cfg or {})
    except Exception as exc:
        raise ConfigError(f"gate: {str(exc).splitlines()[0]}") from None
    if merged.split not in ("valid", "test"):
        raise ConfigError(f"gate.split must be valid or test. Received: {merged.split!r}")
    if merged.metric is None and (merged.min is not None or merged.min_lift is not None):
        raise ConfigError("gate.min / gate.min_lift need gate.metric (e.g. gate.metric=ndcg@10)")
    if merged.metric is not None and merged.min is None and merged.min_lift is None:
        raise ConfigError(f"gate.metric={merged.metric} needs gate.min and/or gate.min_lift")
    if merged.min_lift is not None and merged.min_lift <= 0:
        raise ConfigError(f"gate.min_lift must be positive. Received: {merged.min_lift}")
    return merged


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
