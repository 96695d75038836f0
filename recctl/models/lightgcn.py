"""Graph collaborative filtering: LightGCN and NGCF, embedding propagation over the user-item graph.

The graph is the bipartite user-item graph of the TRAINING split only (validation and test
interactions never enter it), with the symmetric normalisation of both papers: the edge (u, i)
weighs 1 / sqrt(|N_u| |N_i|). It is kept as an edge list (three non-trainable weights filled by
`load_tables` from the snapshot's train pairs: user index, item index and weight of every distinct
pair), so a `.keras` file is self-contained, loads in safe mode, and memory grows with the number
of interactions, never with (users + items)^2. One propagation step is a gather of the neighbours'
rows and a `segment_sum` onto each node, in each direction:

    user'_u = sum_{i in N_u} w_ui item_i        item'_i = sum_{u in N_i} w_ui user_u

- ``variant="lightgcn"``: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network
  for Recommendation" (SIGIR 2020). No feature transform, no nonlinearity: E^(k+1) = A E^(k), and
  the final embedding is the mean of layers 0..K. Score = dot product.
- ``variant="ngcf"``: Wang et al., "Neural Graph Collaborative Filtering" (SIGIR 2019).
  E^(k+1) = LeakyReLU((A + I) E^(k) W1 + (A E^(k) * E^(k)) W2) (W1, W2 with biases, one pair per
  layer, shared by users and items; slope 0.2), message dropout, each layer L2-normalised, and the
  final embedding the concatenation of layers 0..K (as the authors' code and RecBole do).

Training propagates once per step over the whole graph (what LightGCN does), then scores the
batch's (user, positive + negatives) pairs; the loss is BPR or a sampled softmax over the positive
and `num_negatives` uniform negatives, as for mf. L2 (`l2`) applies to the layer-0 embeddings of
the batch's users and items, as in both papers. `score_all` propagates too and scores every item
with one matmul, so evaluation, the SavedModel (`user_id` signatures) and the ONNX/LiteRT exports
all see the propagated embeddings; the propagation is a few gathers and segment sums, ops all
three runtimes have (checked: ONNX and LiteRT top-10 overlap 1.0 with TensorFlow). An export runs
the propagation on every request (milliseconds at ml-100k); freezing it into plain user/item
matrices would need an export hook that the base contract does not have yet.

    model = LightGCN(n_users=943, n_items=1682, num_layers=3)
    model.load_tables({"train_pairs": (users, items)})
    scores = model.score_all(keras.ops.array([0, 1]))   # [2, 1682]
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import layers, ops

from recctl.models.base import IdAxis, IdRecommender, check_choice, check_positive, check_rate

VARIANTS = ("lightgcn", "ngcf")
EDGE_TABLES = ("edge_users", "edge_items", "edge_weights")


def normalised_edges(users, items, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (user, item) pairs, sorted, and their weights 1 / sqrt(deg(u) deg(i))."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    if users.size and (
        users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items
    ):
        raise ValueError("train_pairs has an index outside the catalogue")
    pairs = np.unique(users * n_items + items)
    edge_users, edge_items = pairs // n_items, pairs % n_items
    user_degree = np.bincount(edge_users, minlength=n_users).astype(np.float64)
    item_degree = np.bincount(edge_items, minlength=n_items).astype(np.float64)
    weights = 1.0 / np.sqrt(user_degree[edge_users] * item_degree[edge_items])
    return edge_users.astype(np.int32), edge_items.astype(np.int32), weights.astype(np.float32)


@keras.saving.register_keras_serializable(package="recctl")
class LightGCN(IdRecommender):
    """Args:
    n_users, n_items: catalogue sizes (from the dataset).
    variant: "lightgcn" (layer mean, no transforms) or "ngcf" (W1/W2, LeakyReLU, concatenation).
    embedding_dim: size of the layer-0 user and item vectors (ngcf's layers keep this size; its
        final vectors are (num_layers + 1) x embedding_dim long).
    num_layers: propagation steps K (0 = plain matrix factorisation).
    loss: "bpr" (pairwise) or "softmax" (sampled softmax over the positive and the negatives).
    num_negatives: uniform negatives sampled per positive.
    l2: weight of the L2 penalty on the batch's layer-0 embeddings.
    init_std: standard deviation of the normal initialiser of the embeddings.
    message_dropout: ngcf's dropout on each layer's output in training (lightgcn has none).
    n_edges: the number of distinct training pairs; set by `load_tables` and saved in the model's
        config so a `.keras` file rebuilds its graph tables (leave it unset in configs).
    """

    data_tables: ClassVar[tuple[str, ...]] = EDGE_TABLES
    interaction_tables: ClassVar[tuple[str, ...]] = EDGE_TABLES  # the training pairs themselves
    supported_losses: ClassVar[tuple[str, ...]] = ("bpr", "softmax")
    # Measured on ml-100k (2-core CPU, batch 2048, softmax over 64 negatives, 3 layers): a training
    # step took 0.58 s without XLA and 0.14 s with it (XLA fuses each gather, scale and segment sum).
    jit_compile_default: ClassVar[bool] = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        variant: str = "lightgcn",
        embedding_dim: int = 64,
        num_layers: int = 3,
        loss: str = "softmax",
        num_negatives: int = 64,
        l2: float = 0.0,
        init_std: float = 0.1,
        message_dropout: float = 0.0,
        n_edges: int | None = None,
        **kwargs,
    ):
        super().__init__(n_users, n_items, loss=loss, num_negatives=num_negatives, **kwargs)
        check_choice("variant", variant, VARIANTS)
        check_positive("embedding_dim", embedding_dim)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(
                f"num_layers should be a non-negative integer. Received: num_layers={num_layers!r}"
            )
        check_positive("l2", l2, allow_zero=True)
        check_positive("init_std", init_std)
        check_rate("message_dropout", message_dropout)
        if n_edges is not None:
            check_positive("n_edges", n_edges)
        self.variant = str(variant)
        self.embedding_dim = int(embedding_dim)
        self.num_layers = int(num_layers)
        self.l2 = float(l2)
        self.init_std = float(init_std)
        self.message_dropout = float(message_dropout)
        init = keras.initializers.RandomNormal(stddev=self.init_std)
        self.user_embedding = layers.Embedding(
            self.n_users, self.embedding_dim, embeddings_initializer=init, name="user_embedding"
        )
        self.item_embedding = layers.Embedding(
            self.n_items, self.embedding_dim, embeddings_initializer=init, name="item_embedding"
        )
        for layer in (self.user_embedding, self.item_embedding):
            layer.build((None,))
        self.w1: list[layers.Dense] = []  # ngcf only: (A + I) E W1 and (A E * E) W2, one per layer
        self.w2: list[layers.Dense] = []
        if self.variant == "ngcf":
            for k in range(self.num_layers):
                for transforms, name in ((self.w1, "w1"), (self.w2, "w2")):
                    dense = layers.Dense(self.embedding_dim, name=f"ngcf_{name}_{k}")
                    dense.build((None, self.embedding_dim))
                    transforms.append(dense)
            self.dropout = layers.Dropout(self.message_dropout, name="message_dropout")
        self.n_edges: int | None = None
        if n_edges is not None:
            self._add_edge_tables(int(n_edges))
        self.built = True

    # -- the graph (data tables) -------------------------------------------------------------
    def _add_edge_tables(self, n_edges: int) -> None:
        self.n_edges = n_edges
        self.edge_users = self.add_weight(
            shape=(n_edges,), initializer="zeros", dtype="int32", trainable=False, name="edge_users"
        )
        self.edge_items = self.add_weight(
            shape=(n_edges,), initializer="zeros", dtype="int32", trainable=False, name="edge_items"
        )
        self.edge_weights = self.add_weight(
            shape=(n_edges,), initializer="zeros", trainable=False, name="edge_weights"
        )

    def load_tables(self, tables: dict[str, Any]) -> None:
        """The normalised graph of the training pairs (`tables["train_pairs"]`: the train split)."""
        users, items, weights = normalised_edges(*tables["train_pairs"], self.n_users, self.n_items)
        if len(users) == 0:
            raise ValueError("the training split has no pairs to build the graph from")
        if self.n_edges is None:
            self._add_edge_tables(len(users))
        elif self.n_edges != len(users):
            raise ValueError(
                f"this model's graph has {self.n_edges} edges and the data {len(users)}: build the "
                "model from the data (leave model.n_edges unset)"
            )
        self.edge_users.assign(users)
        self.edge_items.assign(items)
        self.edge_weights.assign(weights)

    def id_axes(self):
        return {"user_embedding/embeddings": IdAxis("user"), "item_embedding/embeddings": IdAxis("item")}

    # -- propagation ---------------------------------------------------------------------------
    def _spread(self, users, items, weights):
        """One step over the normalised graph: (A E)_users, (A E)_items."""
        to_users = ops.segment_sum(
            ops.take(items, self.edge_items, axis=0) * weights, self.edge_users, num_segments=self.n_users
        )
        to_items = ops.segment_sum(
            ops.take(users, self.edge_users, axis=0) * weights, self.edge_items, num_segments=self.n_items
        )
        return to_users, to_items

    def propagate(self, training=False):
        """The final user and item vectors: [n_users, d'], [n_items, d'] (d' = d for lightgcn,
        (K + 1) d for ngcf)."""
        if self.n_edges is None:
            raise ValueError("the graph is not loaded: call load_tables({'train_pairs': (users, items)})")
        dtype = self.compute_dtype
        users = ops.cast(self.user_embedding.embeddings, dtype)
        items = ops.cast(self.item_embedding.embeddings, dtype)
        weights = ops.expand_dims(ops.cast(self.edge_weights, dtype), 1)
        if self.variant == "lightgcn":
            sum_users, sum_items = users, items
            for _ in range(self.num_layers):
                users, items = self._spread(users, items, weights)
                sum_users, sum_items = sum_users + users, sum_items + items
            scale = ops.cast(1.0 / (self.num_layers + 1), dtype)
            return sum_users * scale, sum_items * scale
        out_users, out_items = [users], [items]
        for w1, w2 in zip(self.w1, self.w2, strict=True):
            side_users, side_items = self._spread(users, items, weights)
            users, items = (
                self._ngcf_layer(w1, w2, users, side_users, training),
                self._ngcf_layer(w1, w2, items, side_items, training),
            )
            out_users.append(_l2_normalise(users))
            out_items.append(_l2_normalise(items))
        return ops.concatenate(out_users, axis=1), ops.concatenate(out_items, axis=1)

    def _ngcf_layer(self, w1, w2, ego, side, training):
        message = w1(ego + side) + w2(ego * side)
        return self.dropout(ops.leaky_relu(message, negative_slope=0.2), training=training)

    # -- scoring -------------------------------------------------------------------------------
    def call(self, inputs, training=False):
        users, items = inputs["user"], inputs["items"]
        all_users, all_items = self.propagate(training=training)
        u = ops.take(all_users, users, axis=0)  # [B, d']
        v = ops.take(all_items, items, axis=0)  # [B, C, d']
        scores = ops.einsum("bd,bcd->bc", u, v)
        if training and self.l2 > 0:
            u0, v0 = self.user_embedding(users), self.item_embedding(items)
            batch = ops.cast(ops.shape(u0)[0], u0.dtype)
            self.add_loss(self.l2 * (ops.sum(u0 * u0) + ops.sum(v0 * v0)) / batch)
        return scores

    def score_all(self, users):
        all_users, all_items = self.propagate(training=False)
        return ops.matmul(ops.take(all_users, users, axis=0), ops.transpose(all_items))

    def get_config(self):
        config = super().get_config()
        config.update(
            variant=self.variant,
            embedding_dim=self.embedding_dim,
            num_layers=self.num_layers,
            l2=self.l2,
            init_std=self.init_std,
            message_dropout=self.message_dropout,
            n_edges=self.n_edges,
        )
        return config


def _l2_normalise(x):
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=1, keepdims=True), 1e-12))
