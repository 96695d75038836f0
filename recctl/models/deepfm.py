"""DeepFM, xDeepFM and DCN-v2 over ids and side features: one family, `variant` picks the block
that models the feature interactions.

The fields of a (user, item) pair are wide_deep's (`FeatureFields`): the user id, the item id,
every categorical side feature and, per side, the numeric side features pooled into one field
(the sum of x_j v_j, e.g. a movie's genres). Every field is embedded in the same `embedding_dim`
(the FM/CIN/cross layers need one size). Each variant sums, into one logit:

- the first-order terms: one weight per id and per category, a linear term on numeric features
  (wide_deep's wide part without its crosses);
- deepfm (Guo et al., IJCAI 2017): the FM second-order term, sum over field pairs of <v_i, v_j>,
  plus an MLP over the concatenated field embeddings;
- xdeepfm (Lian et al., KDD 2018): a CIN (compressed interaction network: each layer's feature
  maps are weighted sums of the Hadamard products of the previous layer's maps with the fields;
  each map sum-pooled over the embedding axis into the logit) plus the MLP;
- dcn (Wang et al., WWW 2021, DCN-v2): `cross_layers` keras-rs FeatureCross layers
  (x_{l+1} = x_0 * (W x_l + b) + x_l, full rank or low rank with `projection_dim`) over the
  concatenated field embeddings, with the MLP stacked on the cross output (`structure=stacked`)
  or beside it on the embeddings (`structure=parallel`).

Scoring the whole catalogue (`score_all`) splits what is linear in the user and item halves: the
FM term is per-side sums (||s_u + s_i||^2 = ||s_u||^2 + 2<s_u, s_i> + ||s_i||^2) and the MLP's
first layer over [user fields; item fields] is W_u u + W_i i (as in wide_deep), so deepfm runs
only the MLP's later layers per (user, item) pair; the CIN and the cross layers run per pair,
with `scoring_batch_size` capping how many users are scored at once.

    model = DeepFM(n_users=943, n_items=1682, user_categorical=[8, 3], item_numeric=19, variant="dcn")
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from recctl.models.base import IdRecommender, check_choice, check_positive, check_rate
from recctl.models.wide_deep import FeatureFields

VARIANTS = ("deepfm", "xdeepfm", "dcn")
STRUCTURES = ("stacked", "parallel")


@keras.saving.register_keras_serializable(package="recctl")
class DeepFM(FeatureFields, IdRecommender):
    """XLA is off by default, as for wide_deep (many small embedding gathers; measured slower on CPU).

    Args:
    n_users, n_items, user_categorical, item_categorical, user_numeric, item_numeric: as WideDeep
        (from the dataset).
    variant: "deepfm" (FM + MLP), "xdeepfm" (CIN + MLP) or "dcn" (DCN-v2 cross layers + MLP).
    embedding_dim: the size of every field's embedding.
    hidden_units: widths of the MLP's layers (ReLU).
    dropout: dropout rate after each hidden layer.
    l2: L2 penalty on the field embeddings, the first-order weights and the CIN / cross layers
        kernels (0: none).
    cin_units: xdeepfm: the number of feature maps of each CIN layer.
    cross_layers: dcn: how many cross layers.
    projection_dim: dcn: the rank of each cross layer's W = U V (0: full rank).
    structure: dcn: "stacked" (MLP on the cross output) or "parallel" (MLP beside the cross layers).
    loss / num_negatives / task: as WideDeep (task "ranking", "ctr" or "rating").
    user_dropout / item_dropout: as WideDeep (the unknown-id row of cold-start splits).
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
        variant: str = "deepfm",
        embedding_dim: int = 16,
        hidden_units: Sequence[int] = (128, 64),
        dropout: float = 0.1,
        l2: float = 0.0,
        cin_units: Sequence[int] = (32, 32),
        cross_layers: int = 2,
        projection_dim: int = 0,
        structure: str = "stacked",
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
        check_choice("variant", variant, VARIANTS)
        check_choice("structure", structure, STRUCTURES)
        check_positive("embedding_dim", embedding_dim)
        if not hidden_units:
            raise ValueError("hidden_units should list at least one layer width. Received: hidden_units=[]")
        for width in hidden_units:
            check_positive("hidden_units[*]", width)
        if not cin_units:
            raise ValueError("cin_units should list at least one layer width. Received: cin_units=[]")
        for width in cin_units:
            check_positive("cin_units[*]", width)
        check_rate("dropout", dropout)
        check_positive("l2", l2, allow_zero=True)
        check_positive("cross_layers", cross_layers)
        check_positive("projection_dim", projection_dim, allow_zero=True)
        self.variant = str(variant)
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = [int(v) for v in hidden_units]
        self.dropout = float(dropout)
        self.l2 = float(l2)
        self.cin_units = [int(v) for v in cin_units]
        self.cross_layers = int(cross_layers)
        self.projection_dim = int(projection_dim)
        self.structure = str(structure)
        self.n_user_fields = 1 + len(self.user_categorical) + (1 if self.user_numeric else 0)
        self.n_item_fields = 1 + len(self.item_categorical) + (1 if self.item_numeric else 0)
        self.n_fields = self.n_user_fields + self.n_item_fields
        d = self.embedding_dim

        self._init_tables()
        self._init_unknown_ids()
        self._init_embeddings(d, d)
        self._init_first_order()
        self._init_numeric_first_order()
        penalty = keras.regularizers.L2(self.l2) if self.l2 else None
        for layer in self._lookup_layers():
            layer.embeddings_regularizer = penalty
        # the numeric features of a side, pooled into one field: sum_j x_j v_j
        self.user_num_field = (
            layers.Dense(d, use_bias=False, name="user_num_field") if self.user_numeric else None
        )
        self.item_num_field = (
            layers.Dense(d, use_bias=False, name="item_num_field") if self.item_numeric else None
        )

        # the MLP: its first layer split into a user half and an item half where its input is the
        # fields (deepfm, xdeepfm, dcn parallel); over the cross output when dcn is stacked
        first = self.hidden_units[0]
        if self._deep_on_cross:
            self.deep_in = layers.Dense(first, name="deep_in")
        else:
            self.deep_user = layers.Dense(first, use_bias=False, name="deep_user")
            self.deep_item = layers.Dense(first, use_bias=True, name="deep_item")
        self.deep_layers = [
            layers.Dense(w, activation="relu", name=f"deep_{j + 1}")
            for j, w in enumerate(self.hidden_units[1:])
        ]
        self.deep_dropout = layers.Dropout(self.dropout)
        self.deep_out = layers.Dense(1, name="deep_out")

        self.cin = []
        self.cross = []
        if self.variant == "xdeepfm":
            # layer k: [maps of layer k-1 x fields] -> cin_units[k] maps (a 1x1 convolution)
            self.cin = [
                layers.Dense(h, use_bias=False, kernel_regularizer=penalty, name=f"cin_{k}")
                for k, h in enumerate(self.cin_units)
            ]
            self.cin_out = layers.Dense(1, use_bias=False, name="cin_out")
        elif self.variant == "dcn":
            import keras_rs

            self.cross = [
                keras_rs.layers.FeatureCross(
                    projection_dim=self.projection_dim or None, kernel_regularizer=penalty, name=f"cross_{k}"
                )
                for k in range(self.cross_layers)
            ]
            self.cross_out = layers.Dense(1, use_bias=False, name="cross_out")
        self._build_layers()
        self.built = True

    def _lookup_layers(self):
        return [
            self.user_id_embedding,
            self.item_id_embedding,
            *self.user_cat_embeddings,
            *self.item_cat_embeddings,
            self.user_id_wide,
            self.item_id_wide,
            *self.user_cat_wide,
            *self.item_cat_wide,
        ]

    @property
    def _deep_on_cross(self) -> bool:
        return self.variant == "dcn" and self.structure == "stacked"

    def _build_layers(self):
        self._build_fields()
        d = self.embedding_dim
        for pool, width in (
            (self.user_num_field, self.user_numeric),
            (self.item_num_field, self.item_numeric),
        ):
            if pool is not None:
                pool.build((None, width))
        if self._deep_on_cross:
            self.deep_in.build((None, self.n_fields * d))
        else:
            self.deep_user.build((None, self.n_user_fields * d))
            self.deep_item.build((None, self.n_item_fields * d))
        width = self.hidden_units[0]
        for layer, out in zip(self.deep_layers, self.hidden_units[1:], strict=True):
            layer.build((None, width))
            width = out
        self.deep_out.build((None, width))
        fields = self.n_fields
        for layer, h in zip(self.cin, self.cin_units[: len(self.cin)], strict=True):
            layer.build((None, fields * self.n_fields))
            fields = h
        if self.cin:
            self.cin_out.build((None, sum(self.cin_units)))
        for layer in self.cross:  # called once: FeatureCross creates its Dense kernels when called
            probe = ops.zeros((1, self.n_fields * d))
            layer(probe, probe)
        if self.cross:
            self.cross_out.build((None, self.n_fields * d))

    def id_axes(self):
        return self._field_axes()

    def scoring_batch_size(self, requested: int) -> int:
        # keep one batch's per-(user, item) activations near 2^25 floats
        per_pair = self.hidden_units[0]
        if self.variant == "xdeepfm":
            per_pair = max(per_pair, max(self.cin_units) * self.n_fields * self.embedding_dim)
        elif self.variant == "dcn":
            per_pair = max(per_pair, 2 * self.n_fields * self.embedding_dim)
        return max(1, min(requested, (1 << 25) // max(1, self.n_items * per_pair)))

    # -- fields
    def _fields(self, index, who: str, training=False, given=None):
        """(field embeddings [..., F, d], first-order logit [...]) of users or items ``index``."""
        parts, linear, _, numeric = self._lookup(index, who, training, given)
        if numeric is not None:
            pool = self.user_num_field if who == "user" else self.item_num_field
            parts.append(pool(numeric))
        return ops.stack(parts, axis=-2), linear

    def _logits(self, user_fields, user_linear, item_fields, item_linear, training):
        """user_*: [B, Fu, d], [B]; item_*: [B, C, Fi, d], [B, C] or [1, N, ...] (broadcast over users)."""
        d = self.embedding_dim
        logits = ops.expand_dims(user_linear, 1) + item_linear  # [B, C]
        user_flat = ops.reshape(user_fields, (-1, self.n_user_fields * d))  # [B, Fu d]
        item_flat = ops.reshape(item_fields, (*ops.shape(item_fields)[:2], self.n_item_fields * d))
        if self.variant == "deepfm":
            logits = logits + self._fm(user_fields, item_fields)
        pairs = None
        if self.variant != "deepfm":  # the CIN and the cross layers see every (user, item) pair
            batch, candidates = ops.shape(user_fields)[0], ops.shape(item_fields)[1]
            users = ops.broadcast_to(
                ops.expand_dims(user_fields, 1), (batch, candidates, self.n_user_fields, d)
            )
            items = ops.broadcast_to(item_fields, (batch, candidates, self.n_item_fields, d))
            pairs = ops.concatenate([users, items], axis=-2)  # [B, C, F, d]
        if self.variant == "xdeepfm":
            logits = logits + self._cin(pairs)
        if self.variant == "dcn":
            x0 = ops.reshape(pairs, (*ops.shape(pairs)[:2], self.n_fields * d))
            x = x0
            for layer in self.cross:
                x = layer(x0, x)
            logits = logits + ops.squeeze(self.cross_out(x), -1)
            if self._deep_on_cross:
                return logits + self._mlp(self.deep_in(x), training)
        first = ops.expand_dims(self.deep_user(user_flat), 1) + self.deep_item(item_flat)
        return logits + self._mlp(first, training)

    def _mlp(self, first, training):
        """The MLP after its first layer's linear part: [B, C, hidden_units[0]] -> [B, C]."""
        hidden = ops.relu(first)
        for layer in self.deep_layers:
            hidden = layer(self.deep_dropout(hidden, training=training))
        return ops.squeeze(self.deep_out(self.deep_dropout(hidden, training=training)), -1)

    @staticmethod
    def _fm(user_fields, item_fields):
        """Sum over every pair of fields of <v_i, v_j>, from per-side sums: [B, C]."""

        def side(fields):  # (sum of the vectors, the side's own pairs)
            total = ops.sum(fields, axis=-2)
            own = 0.5 * (ops.sum(ops.square(total), axis=-1) - ops.sum(ops.square(fields), axis=(-2, -1)))
            return total, own

        user_sum, user_own = side(user_fields)  # [B, d], [B]
        item_sum, item_own = side(item_fields)  # [B, C, d], [B, C]
        cross = ops.sum(ops.expand_dims(user_sum, 1) * item_sum, axis=-1)
        return ops.expand_dims(user_own, 1) + item_own + cross

    def _cin(self, x0):
        """xDeepFM's CIN over the fields x0 [B, C, F, d]: each layer's maps sum-pooled over d, [B, C]."""
        shape = ops.shape(x0)
        x, pooled = x0, []
        for layer in self.cin:
            # Hadamard products of every (map, field) pair, then a weighted sum per output map
            z = ops.expand_dims(x, -2) * ops.expand_dims(x0, -3)  # [B, C, H, F, d]
            z = ops.reshape(z, (shape[0], shape[1], -1, shape[3]))  # [B, C, H F, d]
            x = ops.swapaxes(layer(ops.swapaxes(z, -1, -2)), -1, -2)  # [B, C, H', d]
            pooled.append(ops.sum(x, axis=-1))
        return ops.squeeze(self.cin_out(ops.concatenate(pooled, axis=-1)), -1)

    def call(self, inputs, training=False):
        user_fields, user_linear = self._fields(inputs["user"], "user", training)
        item_fields, item_linear = self._fields(inputs["items"], "item", training)
        return self.task_output(self._logits(user_fields, user_linear, item_fields, item_linear, training))

    def score_all(self, users):
        return self._score_all(users)

    def _score_all(self, users, given=None):
        user_fields, user_linear = self._fields(users, "user", given=given)
        all_items = ops.expand_dims(ops.arange(self.n_items, dtype="int32"), 0)
        item_fields, item_linear = self._fields(all_items, "item")
        return self.task_output(self._logits(user_fields, user_linear, item_fields, item_linear, False))

    def get_config(self):
        config = super().get_config()
        config.update(
            **self._fields_config(),
            variant=self.variant,
            embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units,
            dropout=self.dropout,
            l2=self.l2,
            cin_units=self.cin_units,
            cross_layers=self.cross_layers,
            projection_dim=self.projection_dim,
            structure=self.structure,
            task=self.task,
        )
        return config
