"""Where the packaged configs are, and what each config group offers (no Hydra import: --help stays fast)."""

from __future__ import annotations

import re
from pathlib import Path

# Groups each command composes, in the order its primary config lists them.
COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "prepare": ("dataset",),
    "train": (
        "dataset",
        "model",
        "optimizer",
        "strategy",
        "trainer",
        "evaluation",
        "logger",
        "experiment",
        "hparams_search",
    ),
    "evaluate": ("evaluation",),
    "compare": (),
    "export": ("export",),
    "recommend": (),
    "report": (),
}


def conf_dir() -> Path:
    """The config folder: inside the installed package (wheel), or the repo's conf/ (editable)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"recctl's configs are missing (looked in {here / 'conf'} and {here.parent / 'conf'})"
    )


def group_defaults(command: str) -> dict[str, str]:
    """Default option per group, read from the command's primary config (`- group: option` lines)."""
    text = (conf_dir() / f"{command}.yaml").read_text()
    return dict(re.findall(r"^\s*-\s*([a-z_]+):\s*([A-Za-z0-9_]+)", text, flags=re.M))


def group_options(group: str) -> list[str]:
    folder = conf_dir() / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))
