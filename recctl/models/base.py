"""The model contract every recctl model follows, whatever its family.

A model (1) trains on the examples its *input kind* needs and (2) scores every item for a batch
of user contexts: ``score_all(context) -> [batch, n_items]``. Evaluation, recommend and export use
only (2), so all families are compared on the same split, candidates and metrics, and exported
the same way. The input kind is part of the class (``IdRecommender``, ``SequenceRecommender``,
``UserVectorRecommender``), never a string switch elsewhere: each kind's base class says how much
history its context needs (``history_length``), builds that context from a history in keras.ops
(``context_from_history``, the one function evaluation, recommend and every export use) and
describes its export input (``export_input``). The training data of a kind is picked by one table,
``recctl.data.pipelines.TRAINING_DATA``.

Data-derived arguments (catalogue sizes, side-feature vocabularies) arrive as constructor
arguments; data-derived tables (side features, popularity counts) as non-trainable weights set by
``load_tables``, so a saved ``.keras`` file is self-contained and reloads in safe mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from recctl.models.distributed_fit_fix import DistributedFitFix


def check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    """Reject a bad hyperparameter at once, naming the argument and the value received."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not (value >= 0 if allow_zero else value > 0):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} should be {bound}. Received: {name}={value!r}")


def check_rate(name: str, value: Any) -> None:
    """A dropout-like rate: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} should be in [0, 1). Received: {name}={value!r}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} should be one of {', '.join(choices)}. Received: {name}={value!r}")


@dataclass(frozen=True)
class IdAxis:
    """A weight indexed by ids along `axis`: what `train init_from=` remaps row by row.

    `space` is "user", "item", or "user_cat:J" / "item_cat:J" (the values of the J-th categorical
    side feature). `leading` / `trailing` count special rows around the ids (padding, the unknown
    user); they are carried over as they are.
    """

    space: str
    axis: int = 0
    leading: int = 0
    trailing: int = 0


@dataclass(frozen=True)
class ExportInput:
    """What an export takes as one user's context, and the words that describe it in signatures
    and model cards (docs/interface.md). Integer formats (ONNX, LiteRT) take indexes; the SavedModel
    takes original ids."""

    by_user: bool  # True: the user's id (seen items come from the export); False: the user's history
    index_shape: tuple[int | None, ...]  # the integer input's shape (None = any size)
    index_spec: str  # e.g. "user_index: int32[batch]"
    index_sample: str  # a Python expression for one user's integer input, for model cards
    id_description: str  # the SavedModel input, e.g. "string[batch]"
    card_input: str  # the SavedModel input as a model card names it
    card_note: str  # what the top-K leaves out

    @property
    def index_name(self) -> str:
        return "user_index" if self.by_user else "history"

    @property
    def id_name(self) -> str:
        return "user_id" if self.by_user else "history"

    @property
    def id_type(self) -> str:
        return self.id_description.split(" (")[0]


_HISTORY_OF_IDS = ExportInput(
    by_user=False,
    index_shape=(None, None),
    index_spec="history: int32[batch, n] (item indexes, -1 pads)",
    index_sample="np.array([[3, 17, -1]], np.int32)",
    id_description="string[batch, n] (original item ids, most recent last; '' pads)",
    card_input="`history` (string[batch, n]: original item ids, most recent last; '' pads)",
    card_note="The history's items are left out; unknown ids in it are ignored.",
)


class Recommender(DistributedFitFix, keras.Model):
    """Base of every model: catalogue sizes and the scoring contract."""

    input_kind: ClassVar[str] = ""
    # True when the order of a user's interactions is what the model learns from (train refuses
    # data whose order means nothing: no timestamps and no dataset.row_order_is_time).
    learns_from_order: ClassVar[bool] = False
    needs_training: ClassVar[bool] = True
    # Weights that load_tables fills from the data: rebuilt from the new snapshot on warm start.
    data_tables: ClassVar[tuple[str, ...]] = ()
    # Data tables that hold the training interactions themselves (each user's items: user_knn's
    # matrix, lightgcn's graph): every export of the model carries them, so `export.include_history
    # =false` refuses the family (docs/security.md).
    interaction_tables: ClassVar[tuple[str, ...]] = ()
    # What `trainer.jit_compile=auto` means for this family: XLA where it was measured to help on CPU.
    jit_compile_default: ClassVar[bool] = True
    # How exact ties in the scores are ordered in an evaluation's top-K (evaluation/ranking.py):
    # "random" (a fixed pseudo-random item order per user) or "index" (lowest item index first).
    score_ties: ClassVar[str] = "random"
    # Which side a family scores without any history (dataset.split=cold_users / cold_items refuse
    # the others before any work), each with the model key that trains its unknown-id row (None:
    # nothing to train, e.g. pop for users).
    cold_start: ClassVar[dict[str, str | None]] = {}

    def __init__(self, n_users: int, n_items: int, **kwargs):
        super().__init__(**kwargs)
        check_positive("n_users", n_users)
        check_positive("n_items", n_items)
        self.n_users = int(n_users)
        self.n_items = int(n_items)

    @property
    def emits_probabilities(self) -> bool:
        """True when sigmoid(scores) are calibrated click/interaction probabilities."""
        return False

    def score_all(self, context):
        """Scores of every item for a batch of user contexts: [batch, n_items]."""
        raise NotImplementedError

    def history_length(self) -> int | None:
        """How many of a user's latest items `context_from_history` needs: 0 none, None all."""
        raise NotImplementedError

    def context_from_history(self, history, users):
        """The context `score_all` takes, from ``history`` int32 [B, H] (item indexes, most recent
        last, -1 pads; at least the latest `history_length` items) and ``users`` int32 [B] (user
        indexes, -1 unknown). keras.ops only: evaluation, recommend and every export call it."""
        raise NotImplementedError

    def export_input(self) -> ExportInput:
        raise NotImplementedError

    def serves_features(self) -> bool:
        """Whether `score_all_from_features(codes, numeric)` scores a user the model never saw from
        raw side features (serving cold start, recctl/data/features.py). Off unless a family says."""
        return False

    def training_loss(self) -> keras.losses.Loss:
        raise NotImplementedError

    def load_tables(self, tables: dict[str, Any]) -> None:
        """Copy data-derived tables (side features, counts) into non-trainable weights."""

    def id_axes(self) -> dict[str, IdAxis]:
        """Weights indexed by ids, keyed by path (less the model's own name): warm start remaps
        them id by id. Declared per family: shapes alone cannot tell when n_users == n_items."""
        return {}

    def scoring_batch_size(self, requested: int) -> int:
        """How many contexts `score_all` should take at once (models with big per-pair work cap it)."""
        return requested

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_users=self.n_users, n_items=self.n_items)
        return config


class IdRecommender(Recommender):
    """Scores (user index, item index) pairs.

    Training examples: ``{"user": [B], "items": [B, 1 + num_negatives]}`` with the positive item
    first and sampled negatives after it; labels ``[B, 1 + num_negatives]`` (1 then 0s).
    Context for scoring: a batch of user indexes ``[B]``.
    """

    input_kind: ClassVar[str] = "id"
    supported_losses: ClassVar[tuple[str, ...]] = ("bpr", "softmax", "bce")
    # What the family can be trained to predict (model.task; evaluation/tasks.py): "ranking"
    # (implicit feedback), "ctr" (labelled rows), "rating" (regression on the rating value).
    tasks: ClassVar[tuple[str, ...]] = ("ranking",)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        loss: str = "bpr",
        num_negatives: int = 1,
        task: str = "ranking",
        **kwargs,
    ):
        super().__init__(n_users, n_items, **kwargs)
        check_choice("task", task, self.tasks)
        if task in TASK_LOSSES:
            if loss != TASK_LOSSES[task]:
                raise ValueError(
                    f"task={task} trains on labelled rows with loss={TASK_LOSSES[task]}. Received: loss={loss!r}"
                )
        else:
            check_choice("loss", loss, self.supported_losses)
        check_positive("num_negatives", num_negatives)
        self.loss_name = loss
        self.num_negatives = int(num_negatives)
        self.task = task
        if task == "rating":
            # The training split's mean rating (load_tables), learned on from there: every family
            # predicts a deviation from it, so training does not start 3.5 stars away.
            self.global_bias = self.add_weight(shape=(), initializer="zeros", name="global_bias")

    def load_tables(self, tables: dict[str, Any]) -> None:
        if self.task == "rating" and tables.get("train_ratings") is not None and len(tables["train_ratings"]):
            self.global_bias.assign(float(np.mean(tables["train_ratings"])))

    def task_output(self, scores):
        """The family's scores as the task predicts them: the rating task adds the global mean."""
        if self.task != "rating":
            return scores
        return scores + ops.cast(self.global_bias, scores.dtype)

    @property
    def emits_probabilities(self) -> bool:
        return self.loss_name == "bce"

    def training_loss(self) -> keras.losses.Loss:
        return ranking_loss(self.loss_name)

    def history_length(self) -> int | None:
        return 0

    def context_from_history(self, history, users):
        return users

    def export_input(self) -> ExportInput:
        return ExportInput(
            by_user=True,
            index_shape=(None,),
            index_spec="user_index: int32[batch]",
            index_sample="np.array([0], np.int32)",
            id_description="string[batch]",
            card_input="`user_id` (string[batch])",
            card_note="Items the user has already seen are left out; an unknown user gets the most popular items.",
        )

    def score_pairs(self, users, items):
        """Scores of given items [B, C] for users [B] (the same function training uses)."""
        return self({"user": users, "items": items}, training=False)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(loss=self.loss_name, num_negatives=self.num_negatives, task=self.task)
        return config


# Tasks trained on labelled rows, and the one loss each trains with.
TASK_LOSSES = {"ctr": "bce", "rating": "mse"}


def ranking_loss(name: str) -> keras.losses.Loss:
    """bpr: pairwise logistic (BPR, via keras-rs); softmax: sampled softmax over the positive and
    its negatives; bce: pointwise binary cross-entropy (calibrated probabilities); mse: squared
    error on the rating (task=rating)."""
    if name == "bpr":
        import keras_rs

        return keras_rs.losses.PairwiseLogisticLoss()
    if name == "softmax":
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    if name == "bce":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if name == "mse":  # the rating task: regression on the rating value
        return keras.losses.MeanSquaredError()
    raise ValueError(f"loss should be one of bpr, softmax, bce, mse. Received: loss={name!r}")


def gather_rows(table, index):
    return ops.take(table, index, axis=0)


SOFTMAXES = ("auto", "sampled", "full")
# softmax="auto" trains on the full softmax up to this many items. Measured (attention, 2-core CPU,
# batch 1024 x 10 positions): full was ~1.5x faster per epoch at 1,000 and 1,682 items, about level at
# 5,000, 1.3x slower at 20,000; its logits matrix grows with the catalogue, the sampled one does not.
FULL_SOFTMAX_MAX_ITEMS = 5000


class SequenceRecommender(Recommender):
    """Next-item models over the user's item history.

    Item tokens are item index + 1 (0 = padding); histories are left-padded, most recent last, at
    most `max_length` long. Context for scoring: ``{"history": [B, L], "user": [B]}`` (models that
    ignore the user just ignore it; the user is -1 when unknown, e.g. an export serving a history
    only, and models with user embeddings must map -1 to a learned "unknown user" row). Subclasses implement ``encode(history, user, training)``
    returning the user state: ``[B, L, d]`` (one state per position: ``training_mode = "seq2seq"``)
    or ``[B, d]`` (``training_mode = "prefix"``), and provide ``self.item_embedding`` (an Embedding
    of n_items + 1 rows, row 0 = padding) whose rows are the output item vectors.

    Training examples, built by recctl.data.pipelines:
      seq2seq: ``{"history": [B, L], "user": [B], "items": [B, L, 1 + neg]}``, labels
               ``[B, L, 1 + neg]`` (positive first), sample weights ``[B, L]`` (0 on padding);
      prefix:  ``{"history": [B, L], "user": [B], "items": [B, 1 + neg]}``, labels ``[B, 1 + neg]``.
    Loss (`softmax`): "sampled", a softmax over the positive and `num_negatives` uniform negatives,
    so the cost per example does not grow with the catalogue; "full", a softmax over the whole
    catalogue (labels: the target's item index ``[B, (L)]``, no negatives drawn), the exact gradient
    that Klenitskiy & Vasilev (RecSys 2023) found to matter most for SASRec, at the cost of one
    ``[B x L, n_items]`` logits matrix per step; "auto" (default): full up to
    FULL_SOFTMAX_MAX_ITEMS items, where it was measured faster per epoch at equal quality, else sampled.
    """

    input_kind: ClassVar[str] = "sequence"
    learns_from_order: ClassVar[bool] = True
    training_mode: ClassVar[str] = "seq2seq"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        max_length: int = 50,
        num_negatives: int = 128,
        softmax: str = "auto",
        **kwargs,
    ):
        super().__init__(n_users, n_items, **kwargs)
        check_positive("max_length", max_length)
        check_positive("num_negatives", num_negatives)
        check_choice("softmax", softmax, SOFTMAXES)
        self.max_length = int(max_length)
        self.num_negatives = int(num_negatives)
        self.softmax = str(softmax)

    @property
    def full_softmax(self) -> bool:
        if self.softmax == "auto":
            return self.n_items <= FULL_SOFTMAX_MAX_ITEMS
        return self.softmax == "full"

    def encode(self, history, user, training=False):
        raise NotImplementedError

    def output_bias(self):
        """Optional per-item output bias [n_items + 1]; None for none."""
        return None

    # Score candidates through one matmul against the whole (small) catalogue, then pick columns,
    # instead of gathering each candidate's vector. Faster when n_items + 1 <= 16 x candidates; it
    # also changes the embedding gradient from per-lookup rows to one dense table, which changes how
    # Adam steps, so a family opts in only where it was measured (lstm, cnn).
    dense_candidate_scoring: ClassVar[bool] = False

    @property
    def dense_scoring_active(self) -> bool:
        return self.dense_candidate_scoring and self.n_items + 1 <= 16 * (1 + self.num_negatives)

    def call(self, inputs, training=False):
        state = self.encode(inputs["history"], inputs.get("user"), training=training)  # [B, (L,) d]
        if self.full_softmax:
            return self._catalogue_scores(state)  # [B, (L,) n_items]
        items = inputs["items"]  # [B, (L,) C]
        if self.dense_scoring_active:
            # a plain matmul: the equivalent einsum("...d,nd->...n") made cnn/lstm epochs 4-5x slower on CPU
            logits = ops.matmul(state, ops.transpose(self.item_embedding.embeddings))
            scores = ops.take_along_axis(logits, items, axis=-1)
        else:
            scores = ops.einsum("...d,...cd->...c", state, self.item_embedding(items))
        bias = self.output_bias()
        if bias is not None:
            scores = scores + ops.take(bias, items, axis=0)
        return scores

    def history_length(self) -> int | None:
        return self.max_length

    def context_from_history(self, history, users):
        """Tokens of the latest `max_length` items (item index + 1; 0 pads on the left)."""
        tokens = ops.where(history >= 0, history + 1, ops.zeros_like(history))
        padding = ops.zeros((ops.shape(tokens)[0], self.max_length), dtype=tokens.dtype)
        tokens = ops.concatenate([padding, tokens], axis=1)[:, -self.max_length :]
        return {"history": tokens, "user": users}

    def export_input(self) -> ExportInput:
        return dataclasses.replace(
            _HISTORY_OF_IDS,
            index_shape=(None, self.max_length),
            index_spec=f"history: int32[batch, {self.max_length}] (item indexes, most recent last, left-padded with -1)",
            index_sample=f"np.full((1, {self.max_length}), -1, np.int32)  # then put item indexes at the end",
        )

    def score_all(self, context):
        state = self.encode(context["history"], context.get("user"), training=False)
        if self.training_mode == "seq2seq":
            state = state[:, -1, :]
        return self._catalogue_scores(state)

    def _catalogue_scores(self, state):
        """Scores of every item (column = item index; the padding token 0 is left out)."""
        scores = ops.matmul(state, ops.transpose(self.item_embedding.embeddings[1:]))
        bias = self.output_bias()
        if bias is not None:
            scores = scores + bias[1:]
        return scores

    def training_loss(self) -> keras.losses.Loss:
        if self.full_softmax:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return keras.losses.CategoricalCrossentropy(from_logits=True)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(max_length=self.max_length, num_negatives=self.num_negatives, softmax=self.softmax)
        return config


class PopularityPrior:
    """A sequence family's per-item output bias: a trainable `item_bias` on top of a fixed
    `log_popularity` (log(1 + training count), set by `load_tables` when `popularity_prior`), so
    training starts from popularity and learns the rest. Row 0 is the padding token. The weights are
    made on the model itself, so their names and paths are what they always were."""

    data_tables = ("log_popularity",)

    def add_item_bias(self) -> None:
        self.item_bias = self.add_weight(
            shape=(self.n_items + 1,), initializer="zeros", trainable=True, name="item_bias"
        )
        self.log_popularity = self.add_weight(
            shape=(self.n_items + 1,), initializer="zeros", trainable=False, name="log_popularity"
        )

    def load_tables(self, tables):
        if self.popularity_prior and "item_popularity" in tables:
            counts = np.asarray(tables["item_popularity"], np.float32)
            self.log_popularity.assign(np.concatenate([[0.0], np.log1p(counts)]).astype(np.float32))

    def output_bias(self):
        return self.item_bias + self.log_popularity


@keras.saving.register_keras_serializable(package="recctl")
class MultinomialLikelihood(keras.losses.Loss):
    """-sum_i y_i log softmax(logits)_i per user: the multinomial negative log-likelihood of a multi-hot y.

    Same value as `CategoricalCrossentropy(from_logits=True)`, but with the right gradient: that loss
    runs TensorFlow's fused softmax cross-entropy, whose gradient (softmax - y) assumes y sums to 1;
    for a user with n items the gradient of the likelihood is n * softmax - y.
    """

    def __init__(self, name="multinomial_likelihood", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        return -ops.sum(y_true * ops.log_softmax(y_pred, axis=-1), axis=-1)


class UserVectorRecommender(Recommender):
    """Models over the user's whole interaction vector (a row of the user-item matrix).

    Context for scoring and training input: ``{"vector": [B, n_items]}`` (1.0 where the user
    interacted). Training targets are the same vector; `call` returns logits ``[B, n_items]``.
    """

    input_kind: ClassVar[str] = "user_vector"

    def history_length(self) -> int | None:
        return None

    def context_from_history(self, history, users):
        """The multi-hot vector of every listed item (a scatter: no [B, H, n_items] one-hot)."""
        batch, width = ops.shape(history)[0], ops.shape(history)[1]
        columns = ops.where(history >= 0, history, self.n_items)  # padding lands in a column cut off below
        rows = ops.broadcast_to(ops.expand_dims(ops.arange(batch, dtype=history.dtype), 1), (batch, width))
        index = ops.reshape(ops.stack([rows, columns], axis=-1), (-1, 2))
        hot = ops.scatter(index, ops.ones((batch * width,), "float32"), (batch, self.n_items + 1))
        return {"vector": ops.minimum(hot[:, : self.n_items], 1.0)}

    def export_input(self) -> ExportInput:
        return _HISTORY_OF_IDS

    def score_all(self, context):
        return self(context, training=False)

    def training_loss(self) -> keras.losses.Loss:
        return MultinomialLikelihood()
