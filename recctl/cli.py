"""recctl's command line: Typer in front, Hydra behind.

Each command is a thin forwarder: it declares no options of its own (they would swallow Hydra's
flags) and hands its raw arguments to the Hydra entry point of the same name (recctl.runner).
Nothing here imports TensorFlow or Hydra, so `recctl --help` answers at once.
"""

from __future__ import annotations

import typer

from recctl import __version__
from recctl.confdir import COMMAND_GROUPS, group_defaults, group_options

_FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["--help"]}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
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
    "recommend": "Top-K items for a user (or users_file=PATH) from a run or an export.",
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


def _help(name: str) -> str:
    lines = [_SUMMARIES[name], "", "\b", "Config groups (group=option; * marks the default):"]
    defaults = group_defaults(name)
    for group in COMMAND_GROUPS[name]:
        options = [f"{o}*" if o == defaults.get(group) else o for o in group_options(group)]
        lines.append(f"  {group:<14} {', '.join(options) if options else '(none yet)'}")
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
    def command(ctx: typer.Context) -> None:
        from recctl.runner import run_command

        raise typer.Exit(run_command(name, list(ctx.args), json_output=_state["json"]))

    command.__name__ = name
    command.__doc__ = _help(name)
    return command


for _name in _SUMMARIES:
    app.command(name=_name, context_settings=_FORWARD, help=_help(_name))(_forwarder(_name))


def main() -> None:
    app()
