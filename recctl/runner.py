"""Run one recctl command as a Hydra application and turn its outcome into an exit code.

Hydra composes the config (overrides, -m, --cfg, --config-dir ... all work) and calls `_task` once
per job. `_task` never lets an exception escape: it reports a one-line error, records the job's
outcome and, in a multirun, lets the other jobs go on. Exceptions that do escape `hydra.main` are
Hydra's own composition errors (bad option, unknown key, wrong type): usage errors, exit code 2.

What differs by command lives in the command module (recctl/commands/<name>.py): besides `run(cfg,
result)`, it may define the hooks `interrupted_message(result)`, `error_log_folder(result, job_dir)`
and `record_failure(result, job_dir, multirun)` (train does); the defaults are below.
"""

from __future__ import annotations

import difflib
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
from recctl.errors import (
    EXIT_GATE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_SWEEP_FAILED,
    EXIT_USAGE,
    RecctlError,
)


class _Outcomes:
    """What the jobs of one invocation ended with (one entry per job run in this process)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, dict[str, Any]]] = []
        self.multirun = False


def _usage_error(name: str, message: str, json_output: bool, code: int = EXIT_USAGE) -> int:
    """A command refused before any job ran: one line, and the failed result under --json."""
    console.error(message)
    if json_output:
        from recctl.results import new_result

        console.emit_json({**new_result(name), "status": "failed", "error": message})
    return code


def run_command(name: str, args: list[str], json_output: bool = False) -> int:
    console.set_json_mode(json_output)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us, so we print one line
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import hydra

    import recctl.config  # noqa: F401  (registers the structured-config schemas)
    from recctl.confdir import conf_dir

    retired = recctl.config.retired_key_error(args)
    if retired is not None:
        return _usage_error(name, retired, json_output)
    _expose_own_plugins()
    outcomes = _Outcomes()

    @hydra.main(config_path=str(conf_dir()), config_name=name, version_base="1.3")
    def _entry(cfg):
        return _task(name, cfg, outcomes)

    saved_argv = sys.argv
    sys.argv = [f"recctl-{name}", *_open_node_overrides(name, args)]
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
        refused = _recctl_cause(exc)  # a sweeper's own check (recctl's Optuna sweeper raises these)
        if outcomes.jobs:  # jobs ran, then the sweeper failed (e.g. Optuna with every trial failed)
            console.error(f"sweep ended with an error: {refused or _compact_hydra_error(exc)}")
            return _finish_sweep(name, outcomes, None, failed_anyway=True)
        if refused is not None:
            return _usage_error(name, str(refused), json_output, refused.exit_code)
        message, code = _compact_hydra_error(exc), EXIT_USAGE
        mapped = _output_folder_error(exc, args)
        if mapped is not None:  # Hydra could not make the job's folder: name the setting
            message, code = str(mapped), mapped.exit_code
        return _usage_error(name, message, json_output, code)
    finally:
        sys.argv = saved_argv
        if saved_term is not None:
            signal.signal(signal.SIGTERM, saved_term)

    from recctl.sweep import job_outcomes, last_sweep_dir

    sweep_dir = last_sweep_dir()
    if sweep_dir is not None and not outcomes.jobs:
        # The launcher ran the jobs in other processes (joblib, submitit ...): read their folders.
        outcomes.multirun = True
        outcomes.jobs = job_outcomes(name, sweep_dir)
    if not outcomes.jobs:
        return EXIT_OK  # --cfg job, --info, hydra --help: nothing ran
    if outcomes.multirun:
        return _finish_sweep(name, outcomes, sweep_dir)
    return outcomes.jobs[-1][0]


# Config nodes whose keys are the user's own (recommend's features.NAME=VALUE): Hydra's struct mode
# would refuse a key the YAML does not list, so `features.age=25` is handed to Hydra as `+features.age=25`.
OPEN_NODES = {"recommend": ("features",)}


def _open_node_overrides(name: str, args: list[str]) -> list[str]:
    nodes = OPEN_NODES.get(name, ())
    return [
        f"+{arg}" if any(arg.startswith(f"{node}.") and "=" in arg for node in nodes) else arg for arg in args
    ]


def _expose_own_plugins() -> None:
    """Let Hydra's plugin scan see recctl's sweeper (hydra_plugins/recctl_optuna_sweeper) in an
    editable install too: setuptools' import hook makes it importable but not listable, and Hydra
    1.3 finds plugins by listing the `hydra_plugins` namespace (hydra#2359). A no-op for a wheel."""
    from importlib.util import find_spec

    try:
        spec = find_spec("hydra_plugins.recctl_optuna_sweeper")
        import hydra_plugins
    except ImportError:
        return
    if spec is None or not spec.submodule_search_locations:
        return
    folder = str(Path(next(iter(spec.submodule_search_locations))).parent)
    if folder not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(folder)


def _recctl_cause(exc: BaseException) -> RecctlError | None:
    """The RecctlError behind `exc` (Hydra wraps what a plugin raises in its own exceptions)."""
    seen, hops = exc, 0
    while seen is not None and hops < 10:
        if isinstance(seen, RecctlError):
            return seen
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    return None


def _output_folder_error(exc: BaseException, args: list[str]) -> RecctlError | None:
    """An OSError under Hydra's folder creation (read-only, a file in the way, a full disk)."""
    from recctl.errors import output_error

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

    from recctl.results import new_result, status_of

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
        console.error(_hook(name, "interrupted_message")(result))
    except Exception as exc:  # a bug or an environment failure: one line, details in a log file
        code = EXIT_RUNTIME
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        result["error"] = message
        where = _write_error_log(_hook(name, "error_log_folder")(result, job_dir))
        console.error(message + (f" (traceback in {where})" if where else ""))
    result["status"] = status_of(code)
    result["seconds"]["total"] = round(time.perf_counter() - start, 3)
    if code not in (EXIT_OK, EXIT_GATE):
        _hook(name, "record_failure")(result, job_dir, outcomes.multirun)
    outcomes.jobs.append((code, result))
    if console.json_mode() and not outcomes.multirun:
        console.emit_json(result)
    return _sweep_value(result)


def _sweep_value(result: dict) -> float | None:
    """What a sweeper optimises: the validation value of the monitored metric (None when failed)."""
    valid = (result.get("metrics") or {}).get("valid") or {}
    return valid.get(result.get("_monitor") or "ndcg@10") if result["status"] == "ok" else None


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


def _interrupted_message(result: dict) -> str:
    return "interrupted"


def _error_log_folder(result: dict, job_dir: Path) -> Path | None:
    """A command that read a run (evaluate, export, recommend) keeps its traceback beside the runs,
    never inside a completed run: `<output_dir>/logs/<time>-<command>-<run>/error.log`."""
    if not result.get("run_dir"):
        return None
    run = Path(result["run_dir"])
    # outputs/runs/<run> or outputs/sweeps/<sweep>/<job>: the output folder is above runs/ or sweeps/
    output = next((p.parent for p in run.parents if p.name in ("runs", "sweeps")), run.parent)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return output / "logs" / f"{stamp}-{result.get('command') or 'command'}-{run.name}"


def _record_failure(result: dict, job_dir: Path, multirun: bool) -> None:
    """Nothing to record: only a training run has a folder whose manifest says how it ended."""


_DEFAULT_HOOKS = {
    "interrupted_message": _interrupted_message,
    "error_log_folder": _error_log_folder,
    "record_failure": _record_failure,
}


def _hook(name: str, hook: str):
    """The command module's own `hook`, or the default (also when the module cannot be imported)."""
    try:
        command = import_module(f"recctl.commands.{name}")
    except Exception:
        return _DEFAULT_HOOKS[hook]
    return getattr(command, hook, None) or _DEFAULT_HOOKS[hook]


def _write_error_log(folder) -> str | None:
    if folder is None:
        return None
    from recctl.runs import RunFolder

    try:
        path = RunFolder(Path(folder)).error_log
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
        return str(path)
    except OSError:
        return None


def _unknown_key_message(exc: BaseException) -> str | None:
    """`trainer.epoch=3`: Hydra advises `+trainer.epoch=3`, which the schema refuses in turn. Name
    the nearest key of the same section instead (difflib over the composed config's keys)."""
    from omegaconf import DictConfig
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = exc.__cause__
    match = re.match(r"Could not override '([^']+)'", str(exc))
    if match is None or not isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        return None
    parent, missing = getattr(cause, "parent_node", None), getattr(cause, "key", None)
    if not isinstance(parent, DictConfig) or not isinstance(missing, str):
        return None
    full_key = getattr(cause, "full_key", None) or missing
    section = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    keys = [str(k) for k in parent.keys() if str(k) != "hydra"]
    message = f"Could not override '{match.group(1)}': no such key"
    close = difflib.get_close_matches(missing, keys, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {section + '.' if section else ''}{close[0]}?"
    return f"{message} ({f'{section} has' if section else 'top-level keys'}: {', '.join(keys)})"


def _shell_quoted(override: str) -> str:
    """How to type `override` in a POSIX shell so that Hydra receives it as it is."""
    if not re.search(r'["$`\\!]', override):
        return f'"{override}"'
    if "'" not in override:
        return f"'{override}'"
    return '"' + re.sub(r'(["$`\\])', r"\\\1", override) + '"'


def _override_syntax_message(exc: BaseException) -> str | None:
    """`dataset.sep=;`: Hydra prints its lexer's exception; name the key and show the quoting."""
    from hydra.errors import OverrideParseException

    if not isinstance(exc, OverrideParseException):
        return None
    override = exc.override
    key, equal, value = override.partition("=")
    if not equal:
        return f"Could not parse '{override}': an override is key=value (or group=option)"
    if not re.fullmatch(r"[+~]{0,2}[A-Za-z_][\w.@/-]*", key):
        return f"Could not parse the override '{override}': '{key}' is not a key"
    if "'" not in value:
        quoted = f"'{value}'"
    elif '"' not in value:
        quoted = f'"{value}"'
    else:
        quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    name = key.lstrip("+~")
    return (
        f"Could not parse the override '{override}': quote the value of {name}, as in "
        f"{_shell_quoted(f'{key}={quoted}')} (the outer quotes are for the shell)"
    )


def _did_you_mean_option(message: str) -> str:
    """`model=lstmm`: add the nearest of the options Hydra lists."""
    match = re.search(r"Could not find '(?:(.+)/)?([^'/]+)'(\.) Available options in '[^']+': (.*)$", message)
    if match is None:
        return message
    close = difflib.get_close_matches(match.group(2), match.group(4).split(", "), n=1, cutoff=0.6)
    if not close:
        return message
    group = match.group(1) or ""
    hint = f"; did you mean {group + '=' if group else ''}{close[0]}?"
    return message[: match.start(3)] + hint + message[match.end(3) :]


def _compact_hydra_error(exc: BaseException) -> str:
    """Hydra's messages span many lines (search paths, hints); keep what names the problem."""
    for explain in (_unknown_key_message, _override_syntax_message):
        try:
            explained = explain(exc)
        except Exception:  # an explanation must never hide the error itself
            explained = None
        if explained:
            return explained
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
    out = _did_you_mean_option(re.sub(r"\s+\.", ".", re.sub(r"\s+", " ", out)).strip())
    if re.search(r"hydra/(sweeper|launcher)", out) and "Could not" in out:
        out += " (sweeper and launcher plugins come with the sweeps extra: pip install 'recctl[sweeps]')"
    return out
