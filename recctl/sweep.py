"""Sweep leaderboards: one table (CSV + Markdown) and one plot per sweep folder.

Everything is read from what each job wrote to its own folder (manifest, metrics, Hydra overrides),
never from memory, so it works with any launcher (jobs in other processes or machines), for a
sweep still running, and for one with failed jobs. `SweepSummary` writes it at the end of every
multirun; `recctl report sweep=PATH|latest` rewrites it on demand. This module is the one reader of
job folders: the runner's sweep outcome (`job_outcomes`) comes from here too.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from hydra.experimental.callback import Callback

from recctl import console
from recctl.artifacts import atomic_write_text, read_json
from recctl.errors import EXIT_GATE, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, RunNotFoundError
from recctl.runs import RunFolder

_METRICS = ("ndcg@10", "hr@10", "recall@10", "mrr@10", "auc")
_LAST_SWEEP: dict[str, Path] = {}
_JOBS: dict = {}  # this sweep: "total" jobs (None: unknown), "common" overrides


def set_job_total(total: int | None) -> None:
    """The number of jobs this sweep will launch, for the `[job k/N]` lines (a sweeper that knows
    it sets it; the basic sweeper's grid is counted at the start)."""
    _JOBS["total"] = total


def _grid_size(config) -> int | None:
    """How many jobs the basic sweeper's grid holds (None for another sweeper, or when unknown)."""
    try:
        if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
            return None
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        batches = BasicSweeper.split_arguments(overrides, None)
        return sum(len(batch) for batch in batches)
    except Exception:  # the count is a nicety: never fail a sweep over it
        return None


class SweepSummary(Callback):
    """Hydra callback: remembers the sweep folder (for the exit code), prints one line per finished
    job, and writes the leaderboard."""

    def on_multirun_start(self, config, **kwargs) -> None:
        _LAST_SWEEP["dir"] = Path(config.hydra.sweep.dir)
        _JOBS["total"] = _grid_size(config)
        _JOBS["common"] = list(config.hydra.overrides.task)  # the job lines show what varies

    def on_job_end(self, config, job_return, **kwargs) -> None:
        """`[job 3/20] model=mf optimizer.learning_rate=0.003 -> ndcg@10 0.0712` (stderr)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        try:
            hydra_cfg = HydraConfig.get()
            if hydra_cfg.mode != RunMode.MULTIRUN:
                return
            number = int(hydra_cfg.job.num) + 1
            common = set(_JOBS.get("common") or ())
            overrides = " ".join(
                o
                for o in job_return.overrides
                if o not in common and not o.startswith(("++hydra.", "hydra."))
            )
            try:
                value = job_return.return_value
            except Exception:  # the job raised
                value = None
            manifest = _read(RunFolder(Path(hydra_cfg.runtime.output_dir)).manifest) or {}
        except Exception:  # a progress line must never fail a job
            return
        total = _JOBS.get("total")
        status = manifest.get("status") or "failed"
        if manifest.get("pruned_at_epoch"):
            status = f"pruned after epoch {manifest['pruned_at_epoch']}"
        figure = f"{value:.4f}" if isinstance(value, int | float) and math.isfinite(value) else "-"
        console.info(f"[job {number}{f'/{total}' if total else ''}] {overrides} -> {figure} ({status})")

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _LAST_SWEEP["dir"] = sweep_dir
        if sweep_dir.is_dir():
            paths = write_leaderboard(sweep_dir)
            console.info(f"leaderboard: {paths['md']} (and leaderboard.csv, leaderboard.png)")


def last_sweep_dir() -> Path | None:
    """The sweep folder of the multirun this process just ran (None when it ran no multirun)."""
    return _LAST_SWEEP.get("dir")


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def resolve_sweep(spec, output_dir: Path) -> Path:
    """`sweep=PATH` or `sweep=latest` -> a sweep folder holding job folders (clear error otherwise)."""
    if spec in (None, "", "latest"):
        root = output_dir / "sweeps"
        sweeps = (
            sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name) if root.is_dir() else []
        )
        sweeps = [p for p in sweeps if job_dirs(p)]
        if not sweeps:
            raise RunNotFoundError(f"sweep=latest: no sweep folder with jobs under {root}")
        return sweeps[-1]
    path = Path(str(spec))
    if not path.is_dir():
        raise RunNotFoundError(f"sweep={spec}: no such folder")
    if not job_dirs(path):
        raise RunNotFoundError(f"sweep={spec}: not a sweep folder (no numbered job folders in it)")
    return path


def job_rows(sweep_dir: Path) -> list[dict]:
    """One row per job folder: its overrides, status, metrics, epochs, time and parameter count."""
    rows = []
    for job in job_dirs(sweep_dir):
        folder = RunFolder(job)
        manifest = _read(folder.manifest) or {}
        metrics = _read(folder.metrics) or {}
        status = manifest.get("status") or ("running" if folder.hydra.is_dir() else "unknown")
        if status == "completed" and manifest.get("pruned_at_epoch"):
            status = "pruned"  # completed and evaluated, stopped early by Optuna's pruner
        row = {
            "job": int(job.name),
            "overrides": " ".join(_overrides(folder.hydra / "overrides.yaml")),
            "status": status,
            "model": manifest.get("model"),
            "epochs": manifest.get("epochs"),
            "best_epoch": manifest.get("best_epoch"),
            "fit_s": (manifest.get("seconds") or {}).get("fit"),
            "params": manifest.get("params"),
        }
        for split in ("valid", "test"):
            values = (metrics.get("metrics") or {}).get(split) or {}
            for name in _METRICS:
                row[f"{split}_{name}"] = values.get(name)
        pop = (metrics.get("baseline") or {}).get("pop") or {}
        row["pop_valid_ndcg@10"] = (pop.get("valid") or {}).get("ndcg@10")
        row["pop_test_ndcg@10"] = (pop.get("test") or {}).get("ndcg@10")
        row["error"] = manifest.get("error")
        rows.append(row)
    return rows


def job_outcomes(command: str, sweep_dir: Path) -> list[tuple[int, dict]]:
    """Each job's exit code and `--json` result, rebuilt from what it wrote (manifest, metrics): the
    outcome of a sweep whose launcher ran the jobs in other processes."""
    from recctl.results import new_result, status_of

    jobs = []
    for job in job_dirs(sweep_dir) if sweep_dir.is_dir() else []:
        folder = RunFolder(job)
        result = new_result(command)
        result["run_dir"] = str(job)
        manifest = _read(folder.manifest)
        if manifest is None:
            manifest = {"status": "failed", "error": "the job wrote no manifest (it died before starting?)"}
        metrics = _read(folder.metrics) or {}
        result.update(
            model=manifest.get("model"),
            dataset=metrics.get("dataset"),
            protocol=metrics.get("protocol"),
            error=manifest.get("error"),
        )
        if metrics.get("metrics"):
            result["metrics"] = metrics["metrics"]
            result["baseline"] = metrics.get("baseline") or result["baseline"]
            result["seconds"].update(metrics.get("seconds") or {})
        gate = manifest.get("gate") or {}
        if manifest.get("status") == "completed" and gate.get("passed") is False:
            code, result["error"] = EXIT_GATE, gate.get("verdict")
        elif manifest.get("status") == "completed":
            code = EXIT_OK
        else:
            code = EXIT_INTERRUPTED if manifest.get("status") == "interrupted" else EXIT_RUNTIME
        result["status"] = status_of(code)
        jobs.append((code, result))
    return jobs


def objective(sweep_dir: Path, rows: list[dict]) -> str:
    """The column the sweep optimises: the validation value of trainer.monitor (CTR models: auc,
    rating models: rmse, lower is better: `_order`)."""
    for row in rows:
        if row.get("valid_ndcg@10") is None:
            for task_monitor in ("valid_auc", "valid_rmse"):
                if row.get(task_monitor) is not None:
                    return task_monitor
    config = sweep_dir / "multirun.yaml"
    monitor = "ndcg@10"
    if config.is_file():
        from omegaconf import OmegaConf

        try:
            monitor = str(OmegaConf.select(OmegaConf.load(config), "trainer.monitor") or monitor)
        except Exception:  # an unreadable multirun.yaml: the default objective
            pass
    return f"valid_{monitor}" if f"valid_{monitor}" in (rows[0] if rows else {}) else "valid_ndcg@10"


def _order(target: str) -> float:
    """Sort key sign: best first (ascending for a lower-is-better column such as valid_rmse)."""
    from recctl.evaluation.metrics import lower_is_better

    return 1.0 if lower_is_better(target.removeprefix("valid_").removeprefix("test_")) else -1.0


def write_leaderboard(sweep_dir: Path) -> dict[str, Path]:
    """leaderboard.csv, leaderboard.md and leaderboard.png in `sweep_dir`; returns their paths."""
    rows = _only_varying_overrides(job_rows(sweep_dir))
    target = objective(sweep_dir, rows)
    columns = list(rows[0].keys()) if rows else ["job", "overrides", "status"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    paths = {
        "csv": sweep_dir / "leaderboard.csv",
        "md": sweep_dir / "leaderboard.md",
        "png": sweep_dir / "leaderboard.png",
    }
    atomic_write_text(paths["csv"], buffer.getvalue())
    atomic_write_text(paths["md"], _markdown(sweep_dir, rows, target))
    _plot(rows, target, paths["png"], sweep_dir.name)
    return paths


def _markdown(sweep_dir: Path, rows: list[dict], target: str) -> str:
    done = [r for r in rows if r.get(target) is not None]
    ranked = sorted(done, key=lambda r: _order(target) * r[target]) + [
        r for r in rows if r.get(target) is None
    ]
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines = [
        f"# Sweep {sweep_dir.name}",
        "",
        f"{len(rows)} jobs ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), ranked by {target} "
        "(full ranking, history masked; test metrics beside the popularity baseline).",
        "",
    ]
    if rows and rows[0].get("common_overrides"):
        lines += [f"Common overrides: `{rows[0]['common_overrides']}`", ""]
    if done:
        best = ranked[0]
        lines += [
            f"Best: job {best['job']} ({target} {best[target]:.4f}): `{best['overrides'] or '(no overrides)'}`",
            "",
        ]
    optuna = sweep_dir / "optimization_results.yaml"
    if optuna.is_file():
        lines += [
            "Optuna's best trial over the whole study: `optimization_results.yaml` (`best_params`, "
            "`best_value`); its plots: "
            + ", ".join(f"`{p.name}`" for p in sorted(sweep_dir.glob("optuna_*.png")))
            + ". A `pruned` job was stopped early by the pruner and evaluated at its best epoch.",
            "",
        ]
    show = ["job", "overrides", "status", target]
    show += [
        c for c in ("test_ndcg@10", "test_hr@10", "test_auc", "test_rmse", "pop_test_ndcg@10") if c != target
    ]
    show += ["epochs", "fit_s", "params", "error"]
    show = [c for c in show if any(r.get(c) is not None for r in rows) or c in ("job", "overrides", "status")]
    lines.append("| " + " | ".join(show) + " |")
    lines.append("|" + "---|" * len(show))
    for row in ranked:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in show) + " |")
    lines += _seed_groups(done, target)
    return "\n".join(lines) + "\n"


def _seed_groups(done: list[dict], target: str) -> list[str]:
    """When the sweep varies `seed`, one row per configuration (its other overrides): mean and
    standard deviation over its seeds, so a seed's luck is not read as a configuration's merit."""
    import numpy as np

    groups: dict[str, list[dict]] = {}
    for row in done:
        words = row["overrides"].split()
        if not any(w.startswith("seed=") for w in words):
            return []
        key = " ".join(w for w in words if not w.startswith("seed=")) or "(no other overrides)"
        groups.setdefault(key, []).append(row)
    if not groups or all(len(rows) == 1 for rows in groups.values()):
        return []
    columns = [
        c
        for c in (target, "test_ndcg@10", "test_auc", "test_rmse")
        if any(r.get(c) is not None for r in done)
    ]
    columns = list(dict.fromkeys(columns))

    def spread(rows: list[dict], column: str) -> str:
        values = np.array([r[column] for r in rows if r.get(column) is not None], dtype=float)
        if not len(values):
            return "-"
        return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"

    ranked = sorted(
        groups.items(), key=lambda kv: _order(target) * float(np.mean([r[target] for r in kv[1]]))
    )
    lines = ["", "## Seeds grouped (mean ± standard deviation over seeds)", ""]
    lines.append("| configuration | seeds | " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 2))
    for key, rows in ranked:
        cells = [f"`{key}`", str(len(rows)), *(spread(rows, c) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _plot(rows: list[dict], target: str, path: Path, title: str) -> None:
    """The objective per job, then against each swept hyperparameter (failed jobs as red crosses at 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = _swept_params(rows)
    panels = 1 + len(params)
    ncols = min(panels, 3)
    nrows = (panels + ncols - 1) // ncols
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.4 * nrows), squeeze=False)
    axes = [ax for line in grid for ax in line]
    for ax in axes[panels:]:
        ax.set_visible(False)
    ax = axes[0]
    ok = [r for r in rows if r.get(target) is not None]
    bad = [r for r in rows if r.get(target) is None]
    ax.scatter([r["job"] for r in ok], [r[target] for r in ok], color="tab:blue", label=target)
    if bad:
        ax.scatter(
            [r["job"] for r in bad], [0.0] * len(bad), color="tab:red", marker="x", label="failed / running"
        )
    pop = [r["pop_valid_ndcg@10"] for r in ok if r.get("pop_valid_ndcg@10") is not None]
    if pop and target == "valid_ndcg@10":
        ax.axhline(pop[0], color="gray", linestyle="--", linewidth=1, label="pop (valid)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("job")
    ax.set_ylabel(target)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    for ax, name in zip(axes[1:panels], params, strict=True):
        values = [_param(r, name) for r in ok]
        numeric = all(isinstance(v, (int, float)) for v in values) and values
        if numeric:
            ax.scatter(values, [r[target] for r in ok], color="tab:blue")
            positive = [v for v in values if v > 0]
            if positive and len(positive) == len(values) and max(positive) / min(positive) >= 10:
                ax.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            ax.scatter([labels.index(str(v)) for v in values], [r[target] for r in ok], color="tab:blue")
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel(target)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _swept_params(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for item in row["overrides"].split():
            key = item.split("=", 1)[0]
            if "=" in item and key not in names:
                names.append(key)
    return names


def _param(row: dict, name: str):
    for item in row["overrides"].split():
        key, _, value = item.partition("=")
        if key == name:
            try:
                number = float(value)
                return (
                    int(number) if number.is_integer() and "." not in value and "e" not in value else number
                )
            except ValueError:
                return value
    return None


def _only_varying_overrides(rows: list[dict]) -> list[dict]:
    """Keep in `overrides` what differs between jobs; what every job shares goes to `common_overrides`."""
    if not rows:
        return rows
    lists = [row["overrides"].split() for row in rows]
    common = set(lists[0]).intersection(*map(set, lists[1:])) if len(lists) > 1 else set()
    for row, items in zip(rows, lists, strict=True):
        row["overrides"] = " ".join(o for o in items if o not in common)
        row["common_overrides"] = " ".join(o for o in items if o in common)
    return rows


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _read(path: Path) -> dict | None:
    """A job's JSON file, None when it is missing or unreadable."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _overrides(path: Path) -> list[str]:
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]
