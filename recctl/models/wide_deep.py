"""Wide & Deep over ids and side features.

Cheng et al., "Wide & Deep Learning for Recommender Systems" (DLRS 2016): a linear ("wide") part
over sparse features and their crosses, plus an MLP ("deep") over dense embeddings of the same
features, summed into one logit. Here the features are the user and item ids, every categorical
side feature (embedded) and every numeric side feature (as is); the wide part has a weight per id
and per category, a linear term on numeric features, and the cross of each user categorical
feature with the item's numeric features (e.g. gender x genre on MovieLens).
Trained pointwise (binary cross-entropy) on each positive and `num_negatives` sampled items, so its
sigmoid outputs are probabilities. Scoring the whole catalogue reuses the first MLP layer's
linearity: W [u; i] = W_u u + W_i i, so the user and item halves are projected once and only
the layers after it run per (user, item) pair.

    model = WideDeep(n_users=943, n_items=1682, user_categorical=[8, 3], item_numeric=19)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import keras
import numpy as np
from keras import layers, ops

from recctl.models.base import IdAxis, IdRecommender, check_positive, check_rate


class FeatureFields:
    """The fields of a (user, item) pair: the two ids, every categorical side feature and the numeric
    side features, with their data tables and first-order (one weight per id / category, linear on
    numeric) terms. Shared by the id families over side features (wide_deep, deepfm); the weight
    names are WideDeep's, so its saved models and checkpoints load unchanged. Mixed into an
    IdRecommender (it reads ``n_users`` / ``n_items``)."""

    # The tasks these families train for (recctl/evaluation/tasks.py): the one list both check.
    tasks: ClassVar[tuple[str, ...]] = ("ranking", "ctr", "rating")
    data_tables: ClassVar[tuple[str, ...]] = (
        "user_cat_table",
        "item_cat_table",
        "user_num_table",
        "item_num_table",
        "user_known",  # only with model.user_dropout > 0
        "item_known",  # only with model.item_dropout > 0
    )

    # Scored without history through the unknown-id row that id dropout trains (cold-start splits).
    cold_start: ClassVar[dict[str, str | None]] = {"users": "user_dropout", "items": "item_dropout"}

    def _init_fields(
        self,
        user_categorical,
        item_categorical,
        user_numeric,
        item_numeric,
        user_dropout=0.0,
        item_dropout=0.0,
    ):
        """Keep the feature sizes and the id dropout rates (the task and its loss are
        IdRecommender's to check)."""
        self.user_categorical = [int(v) for v in user_categorical]
        self.item_categorical = [int(v) for v in item_categorical]
        self.user_numeric = int(user_numeric)
        self.item_numeric = int(item_numeric)
        check_rate("user_dropout", user_dropout)
        check_rate("item_dropout", item_dropout)
        self.user_dropout = float(user_dropout)
        self.item_dropout = float(item_dropout)

    def _id_rows(self, who: str) -> int:
        """Rows of a side's id weights: one per id, plus the unknown-id row when its id dropout is on."""
        n = self.n_users if who == "user" else self.n_items
        return n + (1 if self._dropout_of(who) > 0 else 0)

    def _dropout_of(self, who: str) -> float:
        return self.user_dropout if who == "user" else self.item_dropout

    def _init_unknown_ids(self):
        """With id dropout on a side: which ids have training interactions (1) and which not (0, a
        cold user or item: scored through the unknown-id row, from its side features). A data table
        (load_tables), made only when the dropout is on, so models without it keep their weights."""
        self.user_known = self.item_known = None
        for who in ("user", "item"):
            if self._dropout_of(who) > 0:
                n = self.n_users if who == "user" else self.n_items
                known = self.add_weight(
                    shape=(n,), dtype="int32", initializer="ones", trainable=False, name=f"{who}_known"
                )
                setattr(self, f"{who}_known", known)
        if self.user_dropout > 0 or self.item_dropout > 0:
            self.id_dropout_seed = keras.random.SeedGenerator()

    def _id_index(self, index, who: str, training):
        """The id row of users or items ``index``: the unknown-id row (the last) for ids without
        training interactions and, in training, for a `model.<who>_dropout` share of the examples."""
        rate = self._dropout_of(who)
        if not rate > 0:
            return index
        known = self.user_known if who == "user" else self.item_known
        index = ops.cast(index, "int32")
        unknown = ops.equal(ops.take(known, index, axis=0), 0)
        if training:
            draw = keras.random.uniform(ops.shape(index), seed=self.id_dropout_seed)
            unknown = ops.logical_or(unknown, ops.less(draw, rate))
        n = self.n_users if who == "user" else self.n_items
        return ops.where(unknown, n, index)

    def _init_tables(self):
        # Data-derived side-feature tables, filled by load_tables and saved with the weights.
        self.user_cat_table = self.add_weight(
            shape=(self.n_users, len(self.user_categorical)),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="user_cat_table",
        )
        self.item_cat_table = self.add_weight(
            shape=(self.n_items, len(self.item_categorical)),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="item_cat_table",
        )
        self.user_num_table = self.add_weight(
            shape=(self.n_users, self.user_numeric),
            initializer="zeros",
            trainable=False,
            name="user_num_table",
        )
        self.item_num_table = self.add_weight(
            shape=(self.n_items, self.item_numeric),
            initializer="zeros",
            trainable=False,
            name="item_num_table",
        )

    def _init_embeddings(self, id_dim: int, feature_dim: int):
        """One embedding per id and per categorical feature (code 0 = unknown)."""
        emb_init = keras.initializers.RandomNormal(stddev=0.05)
        self.user_id_embedding = layers.Embedding(
            self._id_rows("user"), id_dim, embeddings_initializer=emb_init, name="user_id_embedding"
        )
        self.item_id_embedding = layers.Embedding(
            self._id_rows("item"), id_dim, embeddings_initializer=emb_init, name="item_id_embedding"
        )
        self.user_cat_embeddings = [
            layers.Embedding(v, feature_dim, embeddings_initializer=emb_init, name=f"user_cat_{j}")
            for j, v in enumerate(self.user_categorical)
        ]
        self.item_cat_embeddings = [
            layers.Embedding(v, feature_dim, embeddings_initializer=emb_init, name=f"item_cat_{j}")
            for j, v in enumerate(self.item_categorical)
        ]

    def _init_first_order(self):
        """One weight per id / category (WideDeep's wide part, DeepFM's linear part)."""
        self.user_id_wide = layers.Embedding(
            self._id_rows("user"), 1, embeddings_initializer="zeros", name="user_id_wide"
        )
        self.item_id_wide = layers.Embedding(
            self._id_rows("item"), 1, embeddings_initializer="zeros", name="item_id_wide"
        )
        self.user_cat_wide = [
            layers.Embedding(v, 1, embeddings_initializer="zeros", name=f"user_cat_wide_{j}")
            for j, v in enumerate(self.user_categorical)
        ]
        self.item_cat_wide = [
            layers.Embedding(v, 1, embeddings_initializer="zeros", name=f"item_cat_wide_{j}")
            for j, v in enumerate(self.item_categorical)
        ]

    def _init_numeric_first_order(self):
        """Linear terms on the numeric features; the item side's bias is the global bias."""
        self.user_num_wide = layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="user_num_wide")
        self.item_num_wide = layers.Dense(1, use_bias=True, kernel_initializer="zeros", name="item_num_wide")

    def _build_fields(self):
        for layer in [
            self.user_id_embedding,
            self.item_id_embedding,
            self.user_id_wide,
            self.item_id_wide,
            *self.user_cat_embeddings,
            *self.item_cat_embeddings,
            *self.user_cat_wide,
            *self.item_cat_wide,
        ]:
            layer.build((None,))
        self.user_num_wide.build((None, max(self.user_numeric, 1)))
        self.item_num_wide.build((None, max(self.item_numeric, 1)))

    def _field_axes(self) -> dict[str, IdAxis]:
        axes = {}
        for who in ("user", "item"):
            unknown = 1 if self._dropout_of(who) > 0 else 0  # the unknown-id row, carried as it is
            axes[f"{who}_id_embedding/embeddings"] = IdAxis(who, trailing=unknown)
            axes[f"{who}_id_wide/embeddings"] = IdAxis(who, trailing=unknown)
            vocab = self.user_categorical if who == "user" else self.item_categorical
            for j in range(len(vocab)):  # category codes: 0 = unknown, then the vocabulary
                axes[f"{who}_cat_{j}/embeddings"] = IdAxis(f"{who}_cat:{j}", leading=1)
                axes[f"{who}_cat_wide_{j}/embeddings"] = IdAxis(f"{who}_cat:{j}", leading=1)
        return axes

    def load_tables(self, tables):
        super().load_tables(tables)
        self.user_cat_table.assign(tables["user_categorical"])
        self.item_cat_table.assign(tables["item_categorical"])
        self.user_num_table.assign(tables["user_numeric"])
        self.item_num_table.assign(tables["item_numeric"])
        pairs = tables.get("train_pairs")
        for who, column, n in (("user", 0, self.n_users), ("item", 1, self.n_items)):
            known = getattr(self, f"{who}_known", None)
            if known is not None and pairs is not None:
                known.assign((np.bincount(pairs[column], minlength=n)[:n] > 0).astype(np.int32))

    def _lookup(self, index, who: str, training=False, given=None):
        """The fields of users or items ``index`` [...]: (embeddings: the id's then each category's,
        each [..., dim]; first-order logit [...]; category codes [..., n_cat] or None; numeric
        features [..., n_num] or None). ``given`` = (codes [B, n_cat], numeric [B, n_num]): ids the
        model never saw (``index`` unused), through the unknown-id row with these features."""
        if who == "user":
            id_emb, id_wide, cat_table, num_table = (
                self.user_id_embedding,
                self.user_id_wide,
                self.user_cat_table,
                self.user_num_table,
            )
            cat_embs, cat_wide, n_num, num_wide = (
                self.user_cat_embeddings,
                self.user_cat_wide,
                self.user_numeric,
                self.user_num_wide,
            )
        else:
            id_emb, id_wide, cat_table, num_table = (
                self.item_id_embedding,
                self.item_id_wide,
                self.item_cat_table,
                self.item_num_table,
            )
            cat_embs, cat_wide, n_num, num_wide = (
                self.item_cat_embeddings,
                self.item_cat_wide,
                self.item_numeric,
                self.item_num_wide,
            )
        if given is None:
            rows = self._id_index(index, who, training)
            codes = ops.take(cat_table, index, axis=0) if cat_embs else None
            numeric = ops.take(num_table, index, axis=0) if n_num else None
        else:
            codes = ops.cast(given[0], "int32") if cat_embs else None
            numeric = ops.cast(given[1], num_table.dtype)
            rows = ops.full(ops.shape(given[0])[:1], self.n_users if who == "user" else self.n_items, "int32")
        parts = [id_emb(rows)]
        wide = ops.squeeze(id_wide(rows), -1)
        for j, (emb, w) in enumerate(zip(cat_embs, cat_wide, strict=True)):
            parts.append(emb(codes[..., j]))
            wide = wide + ops.squeeze(w(codes[..., j]), -1)
        if n_num:
            wide = wide + ops.squeeze(num_wide(numeric), -1)
        else:
            numeric = None
            if who == "item":
                wide = wide + ops.cast(ops.squeeze(self.item_num_wide.bias, -1), wide.dtype)
        return parts, wide, codes, numeric

    def serves_features(self) -> bool:
        """Whether a user the model never saw can be scored from raw features (serving cold start):
        only through the unknown-id row that `model.user_dropout` trains."""
        return self.user_dropout > 0

    def score_all_from_features(self, codes, numeric):
        """Scores [B, n_items] of users the model never saw, from their encoded side features
        (recctl/data/features.py): codes int32 [B, n_categorical], numeric float32 [B, n_numeric]."""
        return self._score_all(None, given=(codes, numeric))

    def _fields_config(self) -> dict:
        return dict(
            user_categorical=self.user_categorical,
            item_categorical=self.item_categorical,
            user_numeric=self.user_numeric,
            item_numeric=self.item_numeric,
            user_dropout=self.user_dropout,
            item_dropout=self.item_dropout,
        )


@keras.saving.register_keras_serializable(package="recctl")
class WideDeep(FeatureFields, IdRecommender):
    """XLA is off by default for this family: on CPU its many small embedding gathers made a
    jit-compiled step 16x slower (41 s vs 2.6 s per ml-100k epoch, BENCHMARKS.md).

    Args:
    n_users, n_items: catalogue sizes (from the dataset).
    user_categorical / item_categorical: vocabulary size of each categorical side feature
        (code 0 = unknown), from the dataset.
    user_numeric / item_numeric: number of numeric side features, from the dataset.
    embedding_dim: size of the id embeddings.
    feature_dim: size of each categorical feature's embedding.
    hidden_units: widths of the deep MLP's layers.
    dropout: dropout rate after each hidden layer.
    loss / num_negatives: see IdRecommender (default bce with 4 sampled negatives).
    task: "ranking" (implicit feedback: positives + sampled negatives, full-ranking metrics),
        "ctr" (labelled rows, e.g. rating >= 4 vs lower ratings: AUC and logloss), the setting the
        paper was made for, or "rating" (loss=mse on the rating value: RMSE and MAE).
    user_dropout / item_dropout: share of training examples whose user (item) id is replaced by a
        reserved unknown-id row, so a user (item) without training interactions is scored from its
        side features through that row (cold-start splits; 0: no such row, the weights as before).
    """

    jit_compile_default = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_categorical: Sequence[int] = (),
        item_categorical: Sequence[int] = (),
        user_numeric: int = 0,
        item_numeric: int = 0,
        embedding_dim: int = 32,
        feature_dim: int = 8,
        hidden_units: Sequence[int] = (128, 64),
        dropout: float = 0.1,
        loss: str = "bce",
        num_negatives: int = 4,
        task: str = "ranking",
        user_dropout: float = 0.0,
        item_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(n_users, n_items, loss=loss, num_negatives=num_negatives, task=task, **kwargs)
        self._init_fields(
            user_categorical, item_categorical, user_numeric, item_numeric, user_dropout, item_dropout
        )
        check_positive("embedding_dim", embedding_dim)
        check_positive("feature_dim", feature_dim)
        if not hidden_units:
            raise ValueError("hidden_units should list at least one layer width. Received: hidden_units=[]")
        for width in hidden_units:
            check_positive("hidden_units[*]", width)
        check_rate("dropout", dropout)
        self.embedding_dim = int(embedding_dim)
        self.feature_dim = int(feature_dim)
        self.hidden_units = [int(v) for v in hidden_units]
        self.dropout = float(dropout)

        self._init_tables()
        self._init_unknown_ids()
        self._init_embeddings(self.embedding_dim, self.feature_dim)
        # Wide part: one weight per id / category, linear numeric terms, user-category x item-numeric crosses.
        self._init_first_order()
        self.cross_wide = (
            [
                layers.Embedding(
                    v, max(self.item_numeric, 1), embeddings_initializer="zeros", name=f"cross_wide_{j}"
                )
                for j, v in enumerate(self.user_categorical)
            ]
            if self.item_numeric
            else []
        )
        self._init_numeric_first_order()

        # Deep part: the first layer is split into a user half and an item half (see module doc).
        first = self.hidden_units[0]
        self.deep_user = layers.Dense(first, use_bias=False, name="deep_user")
        self.deep_item = layers.Dense(first, use_bias=True, name="deep_item")
        self.deep_layers = [
            layers.Dense(w, activation="relu", name=f"deep_{j + 1}")
            for j, w in enumerate(self.hidden_units[1:])
        ]
        self.deep_dropout = layers.Dropout(self.dropout)
        self.deep_out = layers.Dense(1, name="deep_out")
        self._build_layers()
        self.built = True

    def _build_layers(self):
        self._build_fields()
        for layer in self.cross_wide:
            layer.build((None,))
        user_width = self.embedding_dim + self.feature_dim * len(self.user_categorical) + self.user_numeric
        item_width = self.embedding_dim + self.feature_dim * len(self.item_categorical) + self.item_numeric
        self.deep_user.build((None, user_width))
        self.deep_item.build((None, item_width))
        width = self.hidden_units[0]
        for layer, out in zip(self.deep_layers, self.hidden_units[1:], strict=True):
            layer.build((None, width))
            width = out
        self.deep_out.build((None, width))

    def id_axes(self):
        axes = self._field_axes()
        for j in range(len(self.cross_wide)):  # none without item numeric features
            axes[f"cross_wide_{j}/embeddings"] = IdAxis(f"user_cat:{j}", leading=1)
        return axes

    def scoring_batch_size(self, requested: int) -> int:
        # each (user, item) pair carries a hidden_units[0]-wide activation: keep a batch near 2^25 floats
        return max(1, min(requested, (1 << 25) // max(1, self.n_items * self.hidden_units[0])))

    # -- the two halves of every feature: (deep input, wide logit, categorical codes) per side
    def _side(self, index, who: str, training=False, given=None):
        parts, wide, codes, numeric = self._lookup(index, who, training, given)
        if numeric is not None:
            parts.append(numeric)
        return ops.concatenate(parts, axis=-1), wide, codes, numeric

    def _logits(self, user_deep, user_wide, user_codes, item_deep, item_wide, item_numeric, training):
        """user_*: [B, ...]; item_*: [B, C, ...] or [1, N, ...] (broadcast over users)."""
        hidden = ops.relu(ops.expand_dims(self.deep_user(user_deep), 1) + self.deep_item(item_deep))
        for layer in self.deep_layers:
            hidden = layer(self.deep_dropout(hidden, training=training))
        logits = ops.squeeze(self.deep_out(self.deep_dropout(hidden, training=training)), -1)
        logits = logits + ops.expand_dims(user_wide, 1) + item_wide
        for j, cross in enumerate(self.cross_wide):  # user category j x item numeric features
            weights = cross(user_codes[:, j])  # [B, item_numeric]
            logits = logits + ops.sum(ops.expand_dims(weights, 1) * item_numeric, axis=-1)
        return logits

    def call(self, inputs, training=False):
        user_deep, user_wide, user_codes, _ = self._side(inputs["user"], "user", training)
        item_deep, item_wide, _, item_numeric = self._side(inputs["items"], "item", training)
        return self.task_output(
            self._logits(user_deep, user_wide, user_codes, item_deep, item_wide, item_numeric, training)
        )

    def score_all(self, users):
        return self._score_all(users)

    def _score_all(self, users, given=None):
        user_deep, user_wide, user_codes, _ = self._side(users, "user", given=given)
        all_items = ops.expand_dims(ops.arange(self.n_items, dtype="int32"), 0)
        item_deep, item_wide, _, item_numeric = self._side(all_items, "item")
        return self.task_output(
            self._logits(user_deep, user_wide, user_codes, item_deep, item_wide, item_numeric, False)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            **self._fields_config(),
            embedding_dim=self.embedding_dim,
            feature_dim=self.feature_dim,
            hidden_units=self.hidden_units,
            dropout=self.dropout,
            task=self.task,
        )
        return config
