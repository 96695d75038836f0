"""Why an item is in a user's top-K: each family's explanation, found through one registry keyed by
class (`explainer_for` walks the model's class hierarchy), never by a family's name.

An explainer takes a batch of users (indexes), each user's history (item indexes, most recent last:
the items `recommend` masks) and their recommended items, and returns for every recommended item
its reasons, best first: the history items that contributed most (`Reason.item`) or the fields
(`Reason.field`: the ids and side features) that contributed most. What each weight is:

- `ItemSimilarity` (mf, neumf, lightgcn, and the sequence families cnn and lstm through the kind's
  `item_embedding`): the cosine of the recommended item's and the history item's vectors in the
  model's item space. A similarity, not a share of the score.
- `ItemWeights` (ease, item_knn: `ItemItemRecommender`): the fitted item-item weight W[h, i]; the
  score of i is the sum of W[h, i] over the history, so each weight is exactly what h adds.
- `AttentionRollout` (attention / SASRec): the attention of the last position over the history the
  model read, rolled out over the blocks (Abnar & Zuidema, ACL 2020: each block's head-averaged
  attention mixed half-and-half with the residual's identity, then multiplied through the blocks);
  the same weights for every item of one user. Falls back to `ItemSimilarity` (and says so in the
  method) where the attention layers cannot return their scores.
- `FieldAblation` (wide_deep, deepfm: `FeatureFields`): a field's contribution to a (user, item)
  pair is the pair's score minus its score with that field set to the population's average value
  (its weights' rows replaced by their mean over the users or items, category rows weighted by how
  many have each value; a numeric feature by its mean), in the model's logit units.

Only positive weights are reasons; at most `top` of them per item. docs/explanations.md says what
they do not mean. A family added later registers its own explainer with `register`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from keras import ops

from recctl.models.attention import SASRec
from recctl.models.base import SequenceRecommender
from recctl.models.closed_form import ItemItemRecommender
from recctl.models.content import ContentModel
from recctl.models.lightgcn import LightGCN
from recctl.models.mf import MatrixFactorization
from recctl.models.neumf import NeuMF
from recctl.models.wide_deep import FeatureFields

TOP = 3


@dataclass(frozen=True)
class Reason:
    """One reason for one recommended item: a history item, or a field of the (user, item) pair."""

    weight: float
    item: int | None = None  # a history item's index
    field: tuple[str, str, int] | None = None  # (side "user" | "item", kind "id" | "cat" | "num", column j)
    value: float | None = None  # the field's value in the pair: id index, category code or numeric value


@dataclass(frozen=True)
class Explanation:
    method: str  # how the weights were computed, in words
    reasons: list[list[list[Reason]]]  # [user][rank] -> reasons, best first


class Explainer:
    method = ""

    def explain(
        self, model, users: np.ndarray, histories: list[np.ndarray], items: np.ndarray, top: int = TOP
    ):
        """users int [B]; histories: one int array per user (item indexes, most recent last);
        items int [B, k] (the recommended items) -> Explanation."""
        raise NotImplementedError


def _numpy(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def top_items(weights: np.ndarray, history: np.ndarray, top: int) -> list[list[Reason]]:
    """weights [H, k] (history item x recommended item) -> per recommended item its `top` history
    items with a positive weight, best first (ties: the more recent item first)."""
    out = []
    for column in np.asarray(weights, np.float64).T:
        order = sorted(range(len(history)), key=lambda h: (-column[h], -h))
        out.append([Reason(float(column[h]), item=int(history[h])) for h in order[:top] if column[h] > 0])
    return out


def _distinct(history: np.ndarray) -> np.ndarray:
    """The history's distinct items, in order of their latest occurrence (most recent last)."""
    history = np.asarray(history, np.int64)
    history = history[history >= 0]
    _, last = np.unique(history[::-1], return_index=True)
    return history[::-1][np.sort(last)][::-1]


class ItemSimilarity(Explainer):
    def __init__(self, vectors: Callable, space: str = "item embeddings"):
        self.vectors = vectors
        self.method = f"cosine similarity of the recommended item and each history item ({space})"

    def explain(self, model, users, histories, items, top=TOP):
        table = _numpy(self.vectors(model)).astype(np.float64)
        unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
        reasons = []
        for history, row in zip(histories, np.asarray(items), strict=True):
            history = _distinct(history)
            reasons.append(top_items(unit[history] @ unit[row].T, history, top))
        return Explanation(self.method, reasons)


class ItemWeights(Explainer):
    method = (
        "the fitted item-item weight W[h, i]: what history item h adds to item i's score "
        "(the score is the sum of W[h, i] over the history)"
    )

    def explain(self, model, users, histories, items, top=TOP):
        weights = _numpy(model.item_weights)
        reasons = []
        for history, row in zip(histories, np.asarray(items), strict=True):
            history = _distinct(history)
            reasons.append(top_items(weights[np.ix_(history, row)], history, top))
        return Explanation(self.method, reasons)


def rollout(scores: list[np.ndarray]) -> np.ndarray:
    """Attention rollout: each block's scores [B, heads, L, L] averaged over heads, mixed with the
    identity (the residual) and row-normalised, multiplied from the first block to the last: [B, L, L]."""
    result = None
    for block in scores:
        attention = np.asarray(block, np.float64).mean(axis=1)
        attention = 0.5 * attention + 0.5 * np.eye(attention.shape[-1])[None]
        attention = attention / attention.sum(axis=-1, keepdims=True)
        result = attention if result is None else attention @ result
    return result


class AttentionRollout(Explainer):
    method = (
        "self-attention of the last position over the history the model read (its last max_length "
        "items), rolled out over the blocks, heads averaged; the same for every item of the user"
    )
    fallback = ItemSimilarity(lambda m: m.item_embedding.embeddings[1:])

    def explain(self, model, users, histories, items, top=TOP):
        length = model.history_length()
        window = np.full((len(users), length), -1, np.int32)
        for b, history in enumerate(histories):
            tail = np.asarray(history, np.int32)[-length:]
            window[b, length - len(tail) :] = tail
        context = model.context_from_history(
            ops.convert_to_tensor(window), ops.convert_to_tensor(np.asarray(users, np.int32))
        )
        scores: list = []
        try:
            model.encode(context["history"], context.get("user"), training=False, attention_scores=scores)
        except TypeError:
            scores = []
        if not scores:
            found = self.fallback.explain(model, users, histories, items, top)
            return Explanation(f"attention scores unavailable, so {found.method}", found.reasons)
        last = rollout([_numpy(s) for s in scores])[:, -1, :]  # [B, L]: the last position's weights
        reasons = []
        for b in range(len(users)):
            weights: dict[int, float] = {}
            for position, item in enumerate(window[b]):
                if item >= 0:
                    weights[int(item)] = weights.get(int(item), 0.0) + float(last[b, position])
            history = np.array(list(weights), np.int64)
            column = np.array([weights[int(i)] for i in history])[:, None]
            (per_user,) = top_items(column, history, top)
            reasons.append([per_user for _ in range(np.shape(items)[1])])
        return Explanation(self.method, reasons)


class FieldAblation(Explainer):
    method = (
        "per-field contribution: the pair's score minus its score with that field set to the "
        "average user's or item's value (mean embedding and first-order weight; mean numeric value)"
    )

    def explain(self, model, users, histories, items, top=TOP):
        fields = feature_fields(model)
        tables = {
            (side, kind): _numpy(getattr(model, f"{side}_{kind}_table"))
            for side in ("user", "item")
            for kind in ("cat", "num")
        }
        reasons = []
        for user, row in zip(np.asarray(users), np.asarray(items), strict=True):
            user_in, items_in = np.array([user], np.int32), np.asarray(row, np.int32)[None]
            base = _pair_scores(model, user_in, items_in)
            contributions = []
            for field in fields:
                with ablated(model, field, np.array([user]) if field[0] == "user" else np.asarray(row)):
                    contributions.append(base - _pair_scores(model, user_in, items_in))
            per_item = []
            for r, item in enumerate(row):
                found = []
                for field, contribution in zip(fields, contributions, strict=True):
                    side, kind, j = field
                    index = user if side == "user" else item
                    value = float(index) if kind == "id" else float(tables[(side, kind)][index, j])
                    if kind == "num" and value == 0.0:  # an absent flag (or a value at the mean) is no reason
                        continue
                    if contribution[r] > 0:
                        found.append(Reason(float(contribution[r]), field=field, value=value))
                per_item.append(sorted(found, key=lambda reason: -reason.weight)[:top])
            reasons.append(per_item)
        return Explanation(self.method, reasons)


def feature_fields(model) -> list[tuple[str, str, int]]:
    """The fields of a FeatureFields model's (user, item) pair: each side's id, categorical and numeric columns."""
    fields = []
    for side in ("user", "item"):
        categorical = model.user_categorical if side == "user" else model.item_categorical
        numeric = model.user_numeric if side == "user" else model.item_numeric
        fields.append((side, "id", 0))
        fields += [(side, "cat", j) for j in range(len(categorical))]
        fields += [(side, "num", j) for j in range(numeric)]
    return fields


def _pair_scores(model, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    scores = model.score_pairs(ops.convert_to_tensor(users), ops.convert_to_tensor(items))
    return _numpy(scores)[0].astype(np.float64)


def _variables_by_key(model) -> dict:
    prefix = f"{model.name}/"
    return {(w.path[len(prefix) :] if w.path.startswith(prefix) else w.path): w for w in model.weights}


@contextlib.contextmanager
def ablated(model, field: tuple[str, str, int], index: np.ndarray):
    """Within the block, users or items `index` have the population's average in `field`: the rows
    of every weight on that field's id axis (`model.id_axes()`) set to their mean, categories
    weighted by how many users or items have each; a numeric column set to its mean. Restored after."""
    side, kind, j = field
    index = np.asarray(index, np.int64)
    saved = []
    try:
        if kind == "num":
            table = getattr(model, f"{side}_num_table")
            values = _numpy(table).copy()
            saved.append((table, values.copy()))
            values[index, j] = values[:, j].mean()
            table.assign(values)
        else:
            space = side if kind == "id" else f"{side}_cat:{j}"
            codes = (
                None if kind == "id" else _numpy(getattr(model, f"{side}_cat_table"))[:, j].astype(np.int64)
            )
            variables = _variables_by_key(model)
            for key, axis in model.id_axes().items():
                variable = variables.get(key)  # (wide_deep lists its crosses even where it has none)
                if axis.space != space or variable is None:
                    continue
                values = _numpy(variable).copy()
                saved.append((variable, values.copy()))
                moved = np.moveaxis(values, axis.axis, 0)  # a view: writes land in `values`
                if codes is None:
                    rows = index + axis.leading
                    mean = moved[axis.leading : moved.shape[0] - axis.trailing].mean(axis=0)
                else:  # category code c is row c - 1 + leading (code 0, unknown, is the leading row)
                    rows = np.unique(codes[index]) - 1 + axis.leading
                    counts = np.bincount(codes - 1 + axis.leading, minlength=moved.shape[0])[: moved.shape[0]]
                    mean = np.tensordot(counts / max(counts.sum(), 1), moved, axes=(0, 0))
                moved[rows] = mean
                variable.assign(values)
        yield
    finally:
        for variable, values in reversed(saved):
            variable.assign(values)


def _neumf_vectors(model):
    """NeuMF's item vectors: each tower's item embedding, each row unit-length, side by side."""
    towers = []
    for used, layer in ((model.use_gmf, "gmf_item"), (model.use_mlp, "mlp_item")):
        if used:
            table = _numpy(getattr(model, layer).embeddings).astype(np.float64)
            towers.append(table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12))
    return np.concatenate(towers, axis=1)


_EXPLAINERS: dict[type, Explainer] = {
    MatrixFactorization: ItemSimilarity(lambda m: m.item_embedding.embeddings),
    NeuMF: ItemSimilarity(_neumf_vectors, "the GMF and MLP towers' item embeddings"),
    LightGCN: ItemSimilarity(lambda m: m.propagate()[1], "the propagated item vectors the model scores with"),
    SequenceRecommender: ItemSimilarity(
        lambda m: m.item_embedding.embeddings[1:], "the output item embeddings"
    ),
    SASRec: AttentionRollout(),
    ItemItemRecommender: ItemWeights(),
    FeatureFields: FieldAblation(),
    ContentModel: ItemSimilarity(lambda m: m.item_embeddings(), "the item content embeddings"),
}


def register(cls: type, explainer: Explainer) -> None:
    """Give a family (and its subclasses) an explanation."""
    _EXPLAINERS[cls] = explainer


def explainer_for(model_or_class) -> Explainer | None:
    """The explainer of a model's family (the nearest registered class in its hierarchy); None: none."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    for klass in cls.__mro__:
        if klass in _EXPLAINERS:
            return _EXPLAINERS[klass]
    return None
