"""Raw side-feature values of a user the snapshot has never seen, encoded as the snapshot encodes
its own users (recctl/data/transform.py `_encode_features`): a categorical value is its position in
the column's vocabulary + 1 (0 = unknown or missing), a numeric value is standardised with the
column's training mean and std (missing = the mean, 0). Serving cold start (`recommend
features.*`, `users_file=*.csv`) and the SavedModel's `serving_features` signature both use it, so
a new user gets the same codes on either path."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recctl.errors import ConfigError


@dataclass(frozen=True)
class FeatureEncoder:
    """One side's feature columns, in the model's order: categorical (vocabulary) then numeric
    (mean, std)."""

    categorical: dict[str, list[str]]
    numeric: dict[str, tuple[float, float]]

    @classmethod
    def of(cls, snapshot, who: str = "user") -> FeatureEncoder:
        """The encoder of the snapshot's `who` features, columns in the order of its tables (the
        order `Snapshot.side_features` hands the model)."""
        table = snapshot.users if who == "user" else snapshot.items
        spec = snapshot.stats.get("features", {}).get(who, {})
        categorical = {
            c[5:]: [str(v) for v in spec["categorical"][c[5:]]]
            for c in table.columns
            if c.startswith("cat__")
        }
        numeric = {
            c[5:]: (float(spec["numeric"][c[5:]]["mean"]), float(spec["numeric"][c[5:]]["std"]))
            for c in table.columns
            if c.startswith("num__")
        }
        return cls(categorical, numeric)

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    def checked_names(self, names, source: str) -> None:
        """One line naming an unknown feature and the ones the run has."""
        for name in names:
            if name not in self.categorical and name not in self.numeric:
                have = ", ".join(self.columns) or "none"
                raise ConfigError(
                    f"{source}: unknown user feature {name!r}; the run's user features are: {have}"
                )

    def encode(self, rows: list[dict[str, str]], source: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes int32 [B, n_categorical], numeric float32 [B, n_numeric]) for raw values (strings;
        a missing or empty value is unknown). A numeric feature that is not a number is refused."""
        codes = np.zeros((len(rows), len(self.categorical)), np.int32)
        numeric = np.zeros((len(rows), len(self.numeric)), np.float32)
        positions = {
            name: {v: i + 1 for i, v in enumerate(vocab)} for name, vocab in self.categorical.items()
        }
        for r, row in enumerate(rows):
            self.checked_names(row, source)
            for j, name in enumerate(self.categorical):
                codes[r, j] = positions[name].get(_text(row.get(name)), 0)
            for j, (name, (mean, std)) in enumerate(self.numeric.items()):
                text = _text(row.get(name))
                if text == "":
                    continue
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise ConfigError(f"{source}: user feature {name!r} is numeric. Received: {text!r}")
                numeric[r, j] = (value - mean) / std
        return codes, numeric


def _text(value) -> str:
    return "" if value is None else str(value).strip()
