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
    "compare": ("evaluation",),
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


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def own_keys(config: str) -> list[tuple[str, str, str]]:
    """A config file's own settings, read as text: (dotted key, default, comment) per leaf, in file
    order. `defaults:` and `hydra:` are skipped; `config` is a primary config's name (`recommend`) or
    `base`. A leaf's comment is the one at the end of its line."""
    entries = []
    for line in (conf_dir() / f"{config}.yaml").read_text().splitlines():
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        value, _, comment = match["rest"].partition(" #")
        entries.append((len(match["indent"]), match["key"], value.strip(), comment.strip()))
    keys: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    for n, (indent, key, value, comment) in enumerate(entries):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        has_children = n + 1 < len(entries) and entries[n + 1][0] > indent
        if path[0] not in ("defaults", "hydra") and not has_children:
            keys.append((".".join(path), value or "null", comment))
        stack.append((indent, key))
    return keys
