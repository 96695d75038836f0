"""recctl's command line: Typer in front, Hydra behind.

Each command is a thin forwarder: its only options are the app's own (`--json`, `--version`,
`-h/--help`, accepted after the command too); every other argument (overrides, Hydra flags) goes
as it was typed to the Hydra entry point of the same name (recctl.runner). Nothing here imports
TensorFlow or Hydra, so `recctl --help`, `recctl <command> --help` and shell completion answer at once.
"""

from __future__ import annotations

import os

import typer

from recctl import __version__
from recctl.confdir import COMMAND_GROUPS, group_defaults, group_options, own_keys

_HELP_NAMES = ["-h", "--help"]
_FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": _HELP_NAMES}

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": _HELP_NAMES},
    help="Train, evaluate and export deep-learning recommender models from Hydra configs.\n\n"
    "Every command takes Hydra overrides (key=value, group=option, -m for sweeps, --cfg job, ...).",
    epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage/config/data error, 3 quality gate failed, "
    "4 sweep with failed jobs, 130 interrupted.",
)

_state = {"json": False}

_SUMMARIES = {
    "prepare": "Prepare a dataset snapshot (content-addressed, under data/processed/).",
    "train": "Train a model: prepares the data if needed, validates each epoch, tests at the end.",
    "evaluate": "Full-ranking metrics of a run beside its baselines, with 95% intervals; optional quality gate.",
    "compare": "Is run= better or worse than base= on the same split? Paired differences, intervals, p-values.",
    "export": "Export a run for serving: outputs/exports/<name>/<N>/ (TensorFlow Serving layout).",
    "recommend": "Top-K items for a user (or users_file=PATH, or users=all output=FILE) from a run or an export.",
    "report": "Rewrite a sweep's leaderboard (CSV, Markdown, PNG) from its job folders.",
}

_EXAMPLES = {
    "prepare": "recctl prepare dataset=ml_100k dataset.root=PATH",
    "train": (
        "recctl train model=wide_deep optimizer=adamw optimizer.learning_rate=3e-3 trainer.epochs=5",
        "recctl train resume=latest                      (continue a killed run from its last epoch)",
        "recctl train init_from=latest dataset.path=...  (start from a run's weights, id by id)",
    ),
    "evaluate": "recctl evaluate run=latest gate.metric=ndcg@10 gate.min_lift=1.5",
    "compare": "recctl compare run=latest base=outputs/runs/RUN gate.metric=ndcg@10",
    "export": "recctl export run=latest export.k=20",
    "recommend": "recctl recommend run=latest user=196 k=10",
    "report": "recctl report sweep=latest",
}


def _key_lines(keys: list[tuple[str, str, str]]) -> list[str]:
    shown = [(f"{key}={default}", comment) for key, default, comment in keys]
    width = min(max(len(k) for k, _ in shown), 26)
    return [f"  {k:<{width}}  {c}".rstrip() if c else f"  {k}" for k, c in shown]


def _help(name: str) -> str:
    lines = [_SUMMARIES[name]]
    keys = own_keys(name)
    if keys:
        lines += ["", "\b", "Keys (key=value; shown with their defaults):", *_key_lines(keys)]
    if COMMAND_GROUPS[name]:
        lines += ["", "\b", "Config groups (group=option; * marks the default):"]
        defaults = group_defaults(name)
        for group in COMMAND_GROUPS[name]:
            options = [f"{o}*" if o == defaults.get(group) else o for o in group_options(group)]
            lines.append(f"  {group:<14} {', '.join(options) if options else '(none yet)'}")
    lines += ["", "\b", "Keys every command takes:", *_key_lines(own_keys("base"))]
    lines += [
        "",
        "\b",
        "Example:",
        *(
            f"  {line}"
            for line in ((_EXAMPLES[name],) if isinstance(_EXAMPLES[name], str) else _EXAMPLES[name])
        ),
        "",
        "\b",
        "Hydra flags work too: --cfg job (print the config), -m (multirun), --config-dir DIR, --info.",
    ]
    return "\n".join(lines)


def _override_candidates(command: str, token: str) -> list[str]:
    """What `token` (a whole word typed so far) may become: `group=option` once it names a group,
    else the `group=` and `key=` names it starts."""
    groups = COMMAND_GROUPS.get(command, ())
    if "=" in token:
        group, _, prefix = token.partition("=")
        return (
            [f"{group}={o}" for o in group_options(group) if o.startswith(prefix)] if group in groups else []
        )
    names = [*groups, *(key for key, _, _ in own_keys(command)), *(key for key, _, _ in own_keys("base"))]
    return [f"{n}=" for n in names if n.startswith(token)]


def _complete_overrides(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of the forwarded arguments (`model=<TAB>` lists conf/model/*.yaml). Zsh and
    fish pass the word whole (`model=l`); bash splits it at `=` into `model`, `=`, `l` and replaces
    only the text after the `=`, so there the word is put back together and the answer cut."""
    command = ctx.command.name or ""
    if "COMP_WORDS" not in os.environ:
        return _override_candidates(command, incomplete)
    words = os.environ["COMP_WORDS"].split()
    cword = int(os.environ.get("COMP_CWORD", len(words)))
    current, before = (words[cword] if cword < len(words) else ""), words[1:cword]
    if current == "=" and before:
        token = before[-1] + "="
    elif len(before) >= 2 and before[-1] == "=":
        token = before[-2] + "=" + current
    else:
        token = current
    cut = token.rfind("=") + 1
    return [candidate[cut:] for candidate in _override_candidates(command, token)]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout (for scripts)."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    _state["json"] = json_output


def _forwarder(name: str):
    def command(
        ctx: typer.Context,
        overrides: list[str] | None = typer.Argument(
            None,
            metavar="KEY=VALUE",
            hidden=True,  # the help text says what they are
            autocompletion=_complete_overrides,
            show_default=False,
        ),
        json_output: bool = typer.Option(
            False, "--json", help="Print one JSON object on stdout (for scripts)."
        ),
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ) -> None:
        from recctl.runner import run_command

        args = [*(overrides or ()), *ctx.args]
        raise typer.Exit(run_command(name, args, json_output=_state["json"] or json_output))

    command.__name__ = name
    command.__doc__ = _help(name)
    return command


for _name in _SUMMARIES:
    app.command(name=_name, context_settings=_FORWARD, help=_help(_name))(_forwarder(_name))


def main() -> None:
    app(prog_name="recctl")  # also under `python -m recctl` (completion scripts name the program)
