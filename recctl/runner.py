"""Run one recctl command as a Hydra application and turn its outcome into an exit code.

Hydra composes the config (overrides, -m, --cfg, --config-dir ... all work) and calls `_task` once
per job. `_task` never lets an exception escape: it reports a one-line error, records the job's
outcome and, in a multirun, lets the other jobs go on. Exceptions that do escape `hydra.main` are
Hydra's own composition errors (bad option, unknown key, wrong type): usage errors, exit code 2.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import traceback
from importlib import import_module
from pathlib import Path
from typing import Any

from recctl import console
from recctl.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_SWEEP_FAILED, EXIT_USAGE, RecctlError

_STATUS_BY_CODE = {EXIT_OK: "ok", 3: "gate_failed", EXIT_INTERRUPTED: "interrupted"}


class _Outcomes:
    """What the jobs of one invocation ended with (one entry per job run in this process)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, dict[str, Any]]] = []
        self.multirun = False


def run_command(name: str, args: list[str], json_output: bool = False) -> int:
    console.set_json_mode(json_output)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us, so we print one line
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import hydra

    import recctl.config  # noqa: F401  (registers the structured-config schemas)
    from recctl.confdir import conf_dir

    outcomes = _Outcomes()

    @hydra.main(config_path=str(conf_dir()), config_name=name, version_base="1.3")
    def _entry(cfg):
        return _task(name, cfg, outcomes)

    saved_argv = sys.argv
    sys.argv = [f"recctl-{name}", *args]
    saved_term = _stop_on_sigterm()
    try:
        _entry()
    except SystemExit as exc:  # Hydra's own exits (--help, --info ...)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        if code != 0:
            return EXIT_USAGE
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # composition errors: bad option, unknown key, wrong type, bad override
        if outcomes.jobs:  # jobs ran, then the sweeper failed (e.g. Optuna with every trial failed)
            console.error(f"sweep ended with an error: {_compact_hydra_error(exc)}")
            return _finish_sweep(name, outcomes, None, failed_anyway=True)
        message, code = _compact_hydra_error(exc), EXIT_USAGE
        mapped = _output_folder_error(exc, args)
        if mapped is not None:  # Hydra could not make the job's folder: name the setting
            message, code = str(mapped), mapped.exit_code
        console.error(message)
        if json_output:
            from recctl.results import new_result

            result = {**new_result(name), "status": "failed", "error": message}
            console.emit_json(result)
        return code
    finally:
        sys.argv = saved_argv
        if saved_term is not None:
            signal.signal(signal.SIGTERM, saved_term)

    from recctl.sweep import last_sweep_dir

    sweep_dir = last_sweep_dir()
    if sweep_dir is not None and not outcomes.jobs:
        # The launcher ran the jobs in other processes (joblib, submitit ...): read their folders.
        outcomes.multirun = True
        outcomes.jobs = _outcomes_from_folders(name, sweep_dir)
    if not outcomes.jobs:
        return EXIT_OK  # --cfg job, --info, hydra --help: nothing ran
    if outcomes.multirun:
        return _finish_sweep(name, outcomes, sweep_dir)
    return outcomes.jobs[-1][0]


def _output_folder_error(exc: BaseException, args: list[str]) -> RecctlError | None:
    """An OSError under Hydra's folder creation (read-only, a file in the way, a full disk)."""
    from recctl.settings import output_error

    seen = exc
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    value = next((a.split("=", 1)[1] for a in args if a.startswith("paths.output_dir=")), "outputs")
    return output_error(seen, "the run folder", "paths.output_dir", value)


def _stop_on_sigterm():
    """SIGTERM (a CI timeout, `kill`, a scheduler) stops like Ctrl-C: the job is marked interrupted,
    its checkpoint kept, the exit code 130. Returns the previous handler (None off the main thread)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return None


def _task(name: str, cfg, outcomes: _Outcomes) -> Any:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from recctl.results import new_result

    hydra_cfg = HydraConfig.get()
    outcomes.multirun = hydra_cfg.mode == RunMode.MULTIRUN
    job_dir = Path(hydra_cfg.runtime.output_dir)
    start = time.perf_counter()
    result = new_result(name)
    try:
        if name in ("train", "evaluate", "export", "recommend"):
            from recctl.tfenv import import_tensorflow

            import_tensorflow()
        command = import_module(f"recctl.commands.{name}")
        result = command.run(cfg, result)
        code = EXIT_OK
    except RecctlError as exc:
        code = exc.exit_code
        result["error"] = str(exc)
        console.error(str(exc))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        result["error"] = "interrupted"
        run_dir = result.get("run_dir") if name == "train" and not result.get("role") else None
        console.error(
            f"interrupted: the last epoch's checkpoint is kept; continue with `recctl train resume={run_dir}`"
            if run_dir
            else "interrupted"
        )
    except Exception as exc:  # a bug or an environment failure: one line, details in a log file
        code = EXIT_RUNTIME
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        result["error"] = message
        log_dir = result.get("run_dir") or (job_dir if name == "train" and not result.get("role") else None)
        where = _write_error_log(log_dir)
        console.error(message + (f" (traceback in {where})" if where else ""))
    result["status"] = _STATUS_BY_CODE.get(code, "failed")
    result["seconds"]["total"] = round(time.perf_counter() - start, 3)
    if name == "train" and code not in (EXIT_OK, 3) and not result.get("role"):
        _record_failed_run(result, job_dir, outcomes.multirun)
    outcomes.jobs.append((code, result))
    if console.json_mode() and not outcomes.multirun:
        console.emit_json(result)
    return _sweep_value(result)


def _sweep_value(result: dict) -> float | None:
    """What a sweeper optimises: the validation value of the monitored metric (None when failed)."""
    valid = (result.get("metrics") or {}).get("valid") or {}
    return valid.get(result.get("_monitor") or "ndcg@10") if result["status"] == "ok" else None


def _outcomes_from_folders(name: str, sweep_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """Each job's result rebuilt from what it wrote (manifest.json, metrics.json)."""
    from recctl.artifacts import read_json
    from recctl.results import new_result
    from recctl.sweep import job_dirs

    jobs = []
    for job in job_dirs(sweep_dir) if sweep_dir.is_dir() else []:
        result = new_result(name)
        result["run_dir"] = str(job)
        try:
            manifest = read_json(job / "manifest.json")
        except (OSError, ValueError):
            manifest = {"status": "failed", "error": "the job wrote no manifest (it died before starting?)"}
        try:
            metrics = read_json(job / "metrics.json")
        except (OSError, ValueError):
            metrics = {}
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
            code, result["error"] = 3, gate.get("verdict")
        elif manifest.get("status") == "completed":
            code = EXIT_OK
        else:
            code = EXIT_INTERRUPTED if manifest.get("status") == "interrupted" else EXIT_RUNTIME
        result["status"] = _STATUS_BY_CODE.get(code, "failed")
        jobs.append((code, result))
    return jobs


def _finish_sweep(name: str, outcomes: _Outcomes, sweep_dir: Path | None, failed_anyway: bool = False) -> int:
    failed = [r for code, r in outcomes.jobs if code != EXIT_OK]
    if sweep_dir is None:
        sweep_dir = Path(outcomes.jobs[0][1].get("run_dir") or ".").parent
    if console.json_mode():
        console.emit_json(
            {
                "command": name,
                "status": "failed" if failed or failed_anyway else "ok",
                "sweep_dir": str(sweep_dir.resolve()),
                "jobs": [{k: v for k, v in r.items() if not k.startswith("_")} for _, r in outcomes.jobs],
            }
        )
    if failed:
        console.error(f"{len(failed)} of {len(outcomes.jobs)} sweep jobs failed")
        return EXIT_SWEEP_FAILED
    return EXIT_SWEEP_FAILED if failed_anyway else EXIT_OK


def _record_failed_run(result: dict, job_dir: Path, multirun: bool) -> None:
    """A run that failed says so in its manifest; a single run rejected before it started (bad
    config or data) leaves no folder behind, while a sweep job keeps one so the sweep lists it."""

    from recctl.artifacts import discard_job_folder, update_manifest

    status = "interrupted" if result.get("status") == "interrupted" else "failed"
    try:
        if result.get("run_dir"):
            update_manifest(Path(result["run_dir"]), status=status, error=result.get("error"))
        elif multirun:
            update_manifest(job_dir, kind="run", status=status, error=result.get("error"))
        else:
            discard_job_folder(job_dir)
    except OSError:
        pass


def _write_error_log(folder) -> str | None:
    if folder is None:
        return None
    try:
        path = Path(folder) / "error.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
        return str(path)
    except OSError:
        return None


def _compact_hydra_error(exc: BaseException) -> str:
    """Hydra's messages span many lines (search paths, hints); keep what names the problem."""
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    text = text.split("Config search path")[0]
    text = re.sub(r"\n\s*full_key:.*", "", text)
    text = re.sub(r"\n\s*(object_type|reference_type)=.*", "", text)
    text = re.sub(r"Available options in '([^']+)':\s*", r". Available options in '\1': ", text)
    parts = [p.strip() for p in re.split(r"[\n\t]+", text) if p.strip()]
    out = " ".join(parts)
    out = re.sub(
        r"(Available options in '[^']+': )(.*)$", lambda m: m.group(1) + ", ".join(m.group(2).split()), out
    )
    out = re.sub(r"\s+\.", ".", re.sub(r"\s+", " ", out)).strip()
    if re.search(r"hydra/(sweeper|launcher)", out) and "Could not" in out:
        out += " (sweeper and launcher plugins come with the sweeps extra: pip install 'recctl[sweeps]')"
    return out
