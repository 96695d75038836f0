"""The in-memory form every data source produces before preparation.

Sources (MovieLens, CSV/Parquet, the synthetic generator) differ in how they read; preparation
(filtering, indexing, splitting) is the same for all of them, so they meet here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class RawData:
    """Interactions plus optional side-feature tables, all keyed by *original* ids (strings).

    interactions: columns `user_id` (str), `item_id` (str), `rating` (float64, NaN when the
        source has none), `timestamp` (int64, -1 when the source has none); rows in file order.
    users / items: `user_id` / `item_id` (str) plus feature columns. A column of dtype object or
        string is a categorical feature; a numeric column is a numeric feature. `items` may carry
        a `title` column (str), which is shown to people and is never a model feature.
    files: the source files read (hashed into the snapshot fingerprint and manifest).
    has_timestamps / has_ratings: whether the source had those columns at all.
    locate: where a 0-based interactions row is in the source file ("ratings.csv, line 7"), for
        messages about a row found bad after reading (e.g. a duplicate); None = no file lines.
    """

    interactions: pd.DataFrame
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    has_timestamps: bool = True
    has_ratings: bool = True
    stats: dict = field(default_factory=dict)
    locate: Callable[[int], str] | None = None
