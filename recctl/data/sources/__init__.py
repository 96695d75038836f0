"""Data sources: where a dataset's rows come from, looked up by the `dataset.source` name.

Validation and preparation are the same for every source but for what a :class:`Source` says here,
so a new source is one module defining ``SOURCE``, one line in ``_MODULES`` and one
conf/dataset/<name>.yaml. Modules are imported on first use, so importing the registry (config.py
does, for ``recctl --help``) costs no pandas or pyarrow.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recctl.errors import ConfigError

if TYPE_CHECKING:
    from recctl.data.raw import RawData

# dataset.source -> the module whose SOURCE reads it. The keys are what users' configs say: keep them.
_MODULES = {
    "synthetic": "recctl.data.sources.synthetic",
    "movielens_100k": "recctl.data.sources.movielens",
    "table": "recctl.data.sources.table",
}
NAMES = tuple(_MODULES)


class Source:
    """What validation and preparation need from a source; the defaults suit one that reads files."""

    # The rows themselves are drawn from the seed, so the seed always enters the fingerprint
    # (otherwise only under split=random, which shuffles with it).
    seeded: bool = False
    # Subsections of the dataset settings this source never reads: left out of its fingerprint, so
    # changing them does not make a new snapshot.
    unread_sections: tuple[str, ...] = ("synthetic",)

    def check(self, d: Any) -> None:
        """Refuse bad settings with the rest of the dataset section, before any file is read."""

    def in_time_order(self, d: Any) -> bool:
        """Whether each user's rows come in an order that means time (timestamps, or a promise that
        the file's row order is time): a model that learns from order needs it."""
        return True

    def check_before_read(self, d: Any) -> None:
        """Refuse settings that only matter when preparing, just before the raw files are read."""

    def files(self, d: Any) -> list[Path]:
        """The raw files whose content the fingerprint hashes (fetched first where that is allowed)."""
        return []

    def load(self, d: Any, seed: int) -> RawData:
        """Read the raw rows; every bad input is a one-line DataError naming file, line and column."""
        raise NotImplementedError

    def user_features_from_raw(self, values: dict[str, str]) -> dict[str, str]:
        """A new user's feature values as `load` derives its feature columns from the raw file's
        (serving cold start: ml-100k's `age` -> `age_group`); by default the columns are the raw ones."""
        return values


def get(name: str) -> Source:
    """The source that `dataset.source=name` selects."""
    if name not in _MODULES:
        raise ConfigError(f"dataset.source must be one of {', '.join(NAMES)}. Received: {name!r}")
    return importlib.import_module(_MODULES[name]).SOURCE


def require(ok: bool, message: str) -> None:
    """A settings check of a source's `check`: a ConfigError (exit 2) when it fails."""
    if not ok:
        raise ConfigError(message)
