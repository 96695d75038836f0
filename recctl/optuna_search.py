"""Optuna search over Hydra overrides: what `hydra/sweeper=optuna` (the hparams_search presets) runs.

recctl's own sweeper, on current Optuna, because the released Hydra plugin pins Optuna < 3. It keeps
that plugin's keys and search-space grammar (`choice(...)`, `range(...)`, `interval(...)`,
`tag(log, interval(...))`) and adds three things:

- a persistent study: by default SQLite at `<paths.output_dir>/optuna/<study_name>.db`, so the
  same command run again continues a killed sweep (its unfinished trial is tried again) and only
  the trials the study still lacks run;
- pruning: each job reports its per-epoch validation figure to its trial (training/pruning.py)
  and stops early when the pruner says so; the job is still evaluated and kept, and its trial is
  recorded as pruned (the leaderboard's status says `pruned`);
- Optuna's history, importance and per-epoch plots beside the leaderboard.

A job learns its trial from environment variables set through `hydra.job.env_set`, which every
launcher applies where the job runs (this process, joblib's workers, a cluster's nodes).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from recctl import console
from recctl.errors import ConfigError

# What a job reads to find its trial (training/pruning.py): set per job via hydra.job.env_set.
ENV_STORAGE = "RECCTL_OPTUNA_STORAGE"
ENV_STUDY = "RECCTL_OPTUNA_STUDY"
ENV_TRIAL = "RECCTL_OPTUNA_TRIAL"
ENV_PRUNER = "RECCTL_OPTUNA_PRUNER"  # "median:<startup trials>:<warm-up epochs>" or "none"

PRUNERS = ("median", "none")
DIRECTIONS = ("maximize", "minimize")
_SIGNATURE = "recctl_search_space"  # study user attribute: what the study searches over


class OptunaSearch:
    """The sweep: ask Optuna for trials, launch them as Hydra jobs, tell Optuna how they ended."""

    def __init__(
        self,
        sampler: Any,
        direction: str = "maximize",
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        params: dict | None = None,
        pruner: str = "median",
        pruner_startup_trials: int = 5,
        pruner_warmup_epochs: int = 1,
    ) -> None:
        _check(str(direction) in DIRECTIONS, f"hydra.sweeper.direction={direction}: use maximize or minimize")
        _check(str(pruner) in PRUNERS, f"hydra.sweeper.pruner={pruner}: use one of {', '.join(PRUNERS)}")
        _check(int(n_trials) >= 1, f"hydra.sweeper.n_trials={n_trials}: must be >= 1")
        _check(int(n_jobs) >= 1, f"hydra.sweeper.n_jobs={n_jobs}: must be >= 1")
        _check(
            0.0 <= float(max_failure_rate) <= 1.0,
            f"hydra.sweeper.max_failure_rate={max_failure_rate}: must be between 0 and 1",
        )
        _check(int(pruner_startup_trials) >= 0, "hydra.sweeper.pruner_startup_trials must be >= 0")
        _check(int(pruner_warmup_epochs) >= 0, "hydra.sweeper.pruner_warmup_epochs must be >= 0")
        self.sampler = sampler
        self.direction = str(direction)
        self.storage = storage
        self.study_name = study_name
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.max_failure_rate = float(max_failure_rate)
        self.params = dict(params or {})
        self.pruner = str(pruner)
        self.pruner_startup_trials = int(pruner_startup_trials)
        self.pruner_warmup_epochs = int(pruner_warmup_epochs)
        self.config = None
        self.launcher = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # ------------------------------------------------------------------------------------ sweep

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from filelock import FileLock, Timeout

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        _check(
            bool(space), "hydra.sweeper.params: nothing to search (give choice(...) or interval(...) values)"
        )
        signature = _signature(space, fixed)
        name = self.study_name or f"search-{signature[:10]}"
        storage, db = self._storage(name)
        sampler = self._sampler(space)
        n_trials = self.n_trials
        if _is_grid(self.sampler):  # the grid's size caps the trials
            n_trials = min(n_trials, math.prod(len(d.choices) for d in space.values()))
        lock = FileLock(str(db) + ".lock") if db is not None else None
        try:
            if lock is not None:
                lock.acquire(timeout=0)
        except Timeout:
            raise ConfigError(
                f"study {name} is in use by another sweep ({db}.lock); wait for it, or set "
                "hydra.sweeper.study_name to start another"
            ) from None
        try:
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=sampler,
                direction=self.direction,
                load_if_exists=True,
            )
            self._adopt(study, signature, db)
            self._search(study, space, fixed, storage, n_trials)
        finally:
            if lock is not None:
                lock.release()

    def _storage(self, name: str) -> tuple[str | None, Path | None]:
        """The storage URL and, for the default SQLite file, its path (for the lock and messages)."""
        if self.storage not in (None, ""):
            url = str(self.storage)
            path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
            return url, path
        _check(
            name.replace("-", "").replace("_", "").replace(".", "").isalnum(),
            f"hydra.sweeper.study_name={name}: letters, digits, '-', '_' and '.' only (it names a file)",
        )
        folder = Path(str(self.config.paths.output_dir)) / "optuna"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"paths.output_dir: cannot create {folder} for the Optuna study ({exc})"
            ) from None
        db = (folder / f"{name}.db").resolve()
        return f"sqlite:///{db}", db

    def _sampler(self, space: dict):
        sampler = self.sampler
        if _is_grid(sampler):
            grid = {}
            for key, dist in space.items():
                choices = getattr(dist, "choices", None)
                _check(
                    choices is not None,
                    f"hydra/sweeper/sampler=grid: {key} needs choice(...) or range(...) values, not an interval",
                )
                grid[key] = list(choices)
            return sampler(grid)
        return sampler

    def _adopt(self, study, signature: str, db: Path | None) -> None:
        """A study keeps one search: a study_name reused for another search space or other fixed
        overrides is refused (mixing them would compare trials that are not comparable)."""
        held = study.user_attrs.get(_SIGNATURE)
        finished = [t for t in study.trials if t.state.is_finished()]
        if held is None:
            if finished:
                raise ConfigError(
                    f"study {study.study_name} holds trials of another tool; set hydra.sweeper.study_name"
                )
            study.set_user_attr(_SIGNATURE, signature)
        elif held != signature:
            where = f" (or remove {db})" if db is not None else ""
            raise ConfigError(
                f"study {study.study_name} searched other parameters or other fixed overrides: set "
                f"hydra.sweeper.study_name=<new name> to start another{where}"
            )

    def _search(self, study, space: dict, fixed: dict, storage: str | None, n_trials: int) -> None:
        from optuna.trial import TrialState

        from recctl.sweep import set_job_total

        unfinished = [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        for trial in unfinished:  # a killed sweep's trials: failed, and their settings tried again
            if trial.state == TrialState.RUNNING:
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                study.enqueue_trial(trial.params, skip_if_exists=False)
        done = _count(study, TrialState.COMPLETE, TrialState.PRUNED)
        to_go = max(0, n_trials - done)
        if done or unfinished:
            console.info(
                f"optuna: continuing study {study.study_name}: {done} of {n_trials} trials done, "
                f"{to_go} to go"
                + (f" ({len(unfinished)} unfinished trial(s) tried again)" if unfinished else "")
            )
        else:
            console.info(
                f"optuna: study {study.study_name}, {n_trials} trials, {self.direction} ({storage or 'in memory'})"
            )
        set_job_total(to_go)
        job_idx, failures, launched = 0, 0, 0
        while to_go > 0:
            batch = min(self.n_jobs, to_go)
            trials = [study.ask(space) for _ in range(batch)]
            overrides = [self._overrides(trial, fixed, storage, study.study_name) for trial in trials]
            returns = self.launcher.launch(overrides, initial_job_idx=job_idx)
            job_idx += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                state, value = _outcome(ret)
                _tell(study, trial, state, value)
                failures += state == TrialState.FAIL
            launched += len(returns)
            to_go -= len(returns)
            if failures / launched > self.max_failure_rate:
                raise RuntimeError(
                    f"{failures} of {launched} trials failed (hydra.sweeper.max_failure_rate="
                    f"{self.max_failure_rate}); the leaderboard lists why"
                )
        self._results(study)

    def _overrides(self, trial, fixed: dict, storage: str | None, study_name: str) -> list[str]:
        from optuna.trial import TrialState  # noqa: F401  (Optuna imported before the job starts)

        chosen = [f"{key}={_value(value)}" for key, value in trial.params.items()]
        env = {ENV_STUDY: study_name, ENV_TRIAL: str(trial._trial_id), ENV_PRUNER: self._pruner_spec()}
        if storage is not None:  # an in-memory study cannot be reached from a job: no reporting
            env[ENV_STORAGE] = storage
        else:
            env.pop(ENV_TRIAL)
        return [*fixed.values(), *chosen, *(f"++hydra.job.env_set.{k}={_quoted(v)}" for k, v in env.items())]

    def _pruner_spec(self) -> str:
        if self.pruner == "none":
            return "none"
        return f"median:{self.pruner_startup_trials}:{self.pruner_warmup_epochs}"

    def _results(self, study) -> None:
        """optimization_results.yaml (the plugin's file and keys) and Optuna's plots, in the sweep folder."""
        from omegaconf import OmegaConf
        from optuna.trial import TrialState

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "direction": self.direction,
            "trials": {
                "complete": len(complete),
                "pruned": _count(study, TrialState.PRUNED),
                "failed": _count(study, TrialState.FAIL),
            },
        }
        if complete:
            best = study.best_trial
            results.update(
                best_params=dict(best.params), best_value=float(best.value), best_trial=best.number
            )
            console.info(f"optuna: best trial {best.number}: {best.value:.4f} with {dict(best.params)}")
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        write_plots(study, sweep_dir)


def search_space(arguments: list[str]) -> tuple[dict, dict[str, str]]:
    """Overrides -> (Optuna distributions by key, fixed overrides by key). Later ones win, so a
    command-line value replaces the preset's. Grammar: `choice(a, b)` or `a,b` (categorical),
    `range(lo, hi[, step])` (ints or floats on a step; hi excluded, as in Hydra),
    `interval(lo, hi)` (uniform floats: Hydra reads its bounds as floats; `range` gives ints), `tag(log, interval(lo, hi))` (log-uniform)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Transformer
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    parser = OverridesParser.create()
    space: dict = {}
    fixed: dict[str, str] = {}
    for text in arguments:
        try:
            override = parser.parse_override(text)
        except HydraException as exc:
            raise ConfigError(f"hydra.sweeper: cannot read `{text}`: {str(exc).splitlines()[0]}") from None
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if not override.is_sweep_override():
            fixed[key] = text
            continue
        _check(
            not key.startswith(("+", "~")) and override.package is None,
            f"hydra.sweeper: cannot search `{text}` (search plain keys, e.g. model.l2=choice(0, 1e-4))",
        )
        if override.is_choice_sweep() or (override.is_range_sweep() and override.value().shuffle):
            values = list(override.sweep_iterator(transformer=Transformer.encode))
            for value in values:
                _check(
                    isinstance(value, str | int | float | bool | type(None)),
                    f"hydra.sweeper: {key}: a choice takes plain values, not {value!r}",
                )
            space[key] = CategoricalDistribution(values)
        elif override.is_range_sweep():
            values = list(override.sweep_iterator())
            _check(bool(values), f"hydra.sweeper: {text} is an empty range")
            step = override.value().step
            if all(isinstance(v, int) for v in values):
                space[key] = IntDistribution(values[0], values[-1], step=int(step))
            else:
                space[key] = FloatDistribution(float(values[0]), float(values[-1]), step=float(step))
        elif override.is_interval_sweep():
            interval = override.value()
            log = "log" in interval.tags
            _check(interval.start < interval.end, f"hydra.sweeper: {text}: the interval is empty")
            _check(not log or interval.start > 0, f"hydra.sweeper: {text}: a log interval must start above 0")
            if isinstance(interval.start, int) and isinstance(interval.end, int):
                space[key] = IntDistribution(interval.start, interval.end, log=log)
            else:
                space[key] = FloatDistribution(float(interval.start), float(interval.end), log=log)
        else:
            raise ConfigError(f"hydra.sweeper: cannot search `{text}`")
    return space, fixed


def write_plots(study, sweep_dir: Path) -> list[Path]:
    """Optuna's optimization history, parameter importances and per-epoch values, as PNGs; a plot
    the study cannot support yet (one trial, one value) is left out with a line saying so."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    wanted = [("optuna_history.png", plots.plot_optimization_history, 1)]
    wanted.append(("optuna_importances.png", plots.plot_param_importances, 2))
    if any(t.intermediate_values for t in study.trials):
        wanted.append(("optuna_epochs.png", plots.plot_intermediate_values, 0))
    written = []
    for filename, plot, needs in wanted:
        if len(complete) < needs:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(sweep_dir / filename, dpi=100)
            plt.close(figure)
            written.append(sweep_dir / filename)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. no parameter varied
            console.info(
                f"optuna: {filename} left out ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            )
    return written


def _outcome(ret) -> tuple[Any, float | None]:
    """How a job ended, for Optuna: complete with its value, pruned (its manifest says so), or failed."""
    from optuna.trial import TrialState

    from recctl.artifacts import read_json
    from recctl.runs import RunFolder

    try:
        value = ret.return_value
    except Exception:  # the job raised (Hydra keeps the exception in the JobReturn)
        return TrialState.FAIL, None
    manifest = {}
    try:
        manifest = read_json(RunFolder(Path(str(ret.hydra_cfg.hydra.runtime.output_dir))).manifest) or {}
    except Exception:  # no readable manifest: judged by the value alone
        pass
    if manifest.get("status") == "completed" and manifest.get("pruned_at_epoch"):
        return TrialState.PRUNED, None
    if value is None or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return TrialState.FAIL, None
    return TrialState.COMPLETE, float(value)


def _tell(study, trial, state, value: float | None) -> None:
    from optuna.trial import TrialState

    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, value, skip_if_finished=True)
        else:
            study.tell(trial, state=state, skip_if_finished=True)
    except RuntimeError as exc:  # the grid sampler stops the study once its grid is done
        if "Study.stop" not in str(exc):
            raise


def _signature(space: dict, fixed: dict[str, str]) -> str:
    from optuna.distributions import distribution_to_json

    text = json.dumps(
        {
            "space": {k: distribution_to_json(d) for k, d in sorted(space.items())},
            "fixed": sorted(fixed.values()),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _count(study, *states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _is_grid(sampler) -> bool:
    import functools

    import optuna

    return isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler


def _value(value) -> str:
    """A trial's value as an override value Hydra reads back as the same thing."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quoted(value) if any(c in value for c in " ,'\"()[]{}=") else value
    return str(value)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
