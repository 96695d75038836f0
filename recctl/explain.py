"""`recommend explain=true`: each recommended item's `because`, from the run's own model and
snapshot. The model's family computes the weights (`recctl.models.explain`, one registry keyed by
class); this room gives it each user's history (the snapshot's train + valid + test items, the
items recommend masks) and turns its reasons into original ids, titles and feature names.

A `because` entry is `{item_id, title?, weight}` (a history item) or `{feature, value, weight}` (a
field of the pair: `user_id`, `item_id`, `user.<column>`, `item.<column>`), best first.
docs/explanations.md says how each weight is computed and what it does not mean.
"""

from __future__ import annotations

import dataclasses
import importlib
import re

import numpy as np

from recctl.errors import ConfigError


def families_with_explanations() -> list[str]:
    """The `model=` options (conf/model/*.yaml) whose class has an explainer."""
    from recctl.confdir import conf_dir
    from recctl.models.explain import explainer_for

    names = []
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        found = re.search(r"^_target_:\s*([\w.]+)\s*$", path.read_text(), flags=re.M)
        if not found:
            continue
        module, _, name = found.group(1).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if explainer_for(cls) is not None:
            names.append(path.stem)
    return names


class RunExplanations:
    """Adds `because` to the ranked batches of a run's model (refused, exit 2, for a family without
    an explanation)."""

    def __init__(self, model, model_name: str, snapshot, seen, titles: dict | None = None, top: int = 3):
        from recctl.models.explain import explainer_for

        self.explainer = explainer_for(model)
        if self.explainer is None:
            raise ConfigError(
                f"explain=true: model={model_name} has no explanation; the families that have one: "
                f"{', '.join(families_with_explanations())}"
            )
        self.model, self.seen, self.top = model, seen, top
        self.titles = titles or {}
        self.user_index = {u: i for i, u in enumerate(snapshot.user_ids)}
        self.item_index = {item: i for i, item in enumerate(snapshot.item_ids)}
        self.item_ids = np.asarray(snapshot.item_ids).astype(str)
        self.name_feature = FeatureNames(snapshot)

    def __call__(self, batches):
        """The same batches (dataclasses with `users`, `items`), each with `because` [user][rank] and
        `explained_by` (the method in words) set."""
        for batch in batches:
            users = np.array([self.user_index[str(u)] for u in batch.users], np.int64)
            items = np.array([[self.item_index[str(i)] for i in row] for row in batch.items], np.int64)
            histories = [self.seen.latest(np.array([u]), None)[0] for u in users]
            found = self.explainer.explain(self.model, users, histories, items, self.top)
            because = [
                [[self._entry(reason) for reason in per_item] for per_item in per_user]
                for per_user in found.reasons
            ]
            yield dataclasses.replace(batch, because=because, explained_by=found.method)

    def _entry(self, reason) -> dict:
        if reason.item is not None:
            item_id = str(self.item_ids[reason.item])
            title = {"title": self.titles[item_id]} if item_id in self.titles else {}
            return {"item_id": item_id, **title, "weight": round(float(reason.weight), 6)}
        feature, value = self.name_feature(reason.field, reason.value)
        return {"feature": feature, "value": value, "weight": round(float(reason.weight), 6)}


class FeatureNames:
    """A field (side, kind, j) and its value in the model -> (feature name, value as the data had it)."""

    def __init__(self, snapshot):
        self.snapshot = snapshot

    def __call__(self, field: tuple[str, str, int], value: float) -> tuple[str, str | float]:
        side, kind, j = field
        snap = self.snapshot
        if kind == "id":
            ids = snap.user_ids if side == "user" else snap.item_ids
            return f"{side}_id", str(ids[int(value)])
        table = snap.users if side == "user" else snap.items
        prefix = "cat__" if kind == "cat" else "num__"
        column = [c for c in table.columns if c.startswith(prefix)][j][len(prefix) :]
        spec = snap.stats["features"][side]["categorical" if kind == "cat" else "numeric"][column]
        if kind == "cat":
            code = int(value)
            return f"{side}.{column}", str(spec[code - 1]) if 0 < code <= len(spec) else "unknown"
        return f"{side}.{column}", round(float(value) * spec["std"] + spec["mean"], 6)


def because_text(because: list[dict]) -> str:
    """One line for the table: titles (else ids) of history items, `feature=value` for fields."""
    if not because:
        return "because: (no reason with a positive weight)"
    words = [
        (entry.get("title") or entry["item_id"])
        if "item_id" in entry
        else f"{entry['feature']}={entry['value']}"
        for entry in because
    ]
    return "because: " + ", ".join(words)
