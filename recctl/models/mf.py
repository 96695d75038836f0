"""Matrix factorisation: score(u, i) = p_u . q_i + b_i.

Koren et al., "Matrix Factorization Techniques for Recommender Systems" (2009), trained for
implicit feedback with BPR (Rendle et al., UAI 2009: pairwise logistic loss on a positive and a
sampled negative) or with a sampled softmax over the positive and `num_negatives` uniform negatives.
Differences from the papers: uniform negatives sampled per batch on the fly; L2 applied to the
embeddings used in the batch only (cheap on large catalogues) instead of the whole tables.

    model = MatrixFactorization(n_users=943, n_items=1682, embedding_dim=64, loss="bpr")
    scores = model.score_all(keras.ops.array([0, 1]))   # [2, 1682]

task="rating" is the biased MF of Koren et al. (Funk SVD, surprise's SVD): r_hat = mu + b_u + b_i
+ p_u . q_i, trained with squared error on the rating, mu starting at the training mean, the L2
penalty on the batch's factors and biases (SVD's reg_all).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from recctl.models.base import IdAxis, IdRecommender, check_positive


@keras.saving.register_keras_serializable(package="recctl")
class MatrixFactorization(IdRecommender):
    """Args:
    n_users, n_items: catalogue sizes (from the dataset).
    embedding_dim: size of the user and item vectors.
    loss: "bpr" (pairwise), "softmax" (sampled softmax) or "bce" (pointwise).
    num_negatives: uniform negatives sampled per positive.
    l2: weight of the L2 penalty on the batch's embeddings.
    init_std: standard deviation of the normal initialiser.
    use_bias: learn a per-item bias (popularity).
    shared_negatives: in training, one draw of negatives per batch shared by every example (the
        pipeline repeats it on each row): they are embedded once and scored with one matmul
        instead of a gather per example, which made the per-example gathers of 64 negatives the
        bottleneck (BENCHMARKS.md, section 11). A negative equal to a row's positive is masked.
    task: "ranking" or "rating" (loss=mse; see the module doc).
    """

    tasks = ("ranking", "rating")

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int = 64,
        loss: str = "bpr",
        num_negatives: int = 1,
        l2: float = 0.0,
        init_std: float = 0.1,
        use_bias: bool = True,
        shared_negatives: bool = False,
        **kwargs,
    ):
        super().__init__(n_users, n_items, loss=loss, num_negatives=num_negatives, **kwargs)
        check_positive("embedding_dim", embedding_dim)
        check_positive("l2", l2, allow_zero=True)
        check_positive("init_std", init_std)
        self.embedding_dim = int(embedding_dim)
        self.l2 = float(l2)
        self.init_std = float(init_std)
        self.use_bias = bool(use_bias)
        self.shared_negatives = bool(shared_negatives)
        if self.task == "rating" and self.shared_negatives:
            raise ValueError("shared_negatives applies to sampled negatives, not to task=rating")
        init = keras.initializers.RandomNormal(stddev=self.init_std)
        self.user_embedding = layers.Embedding(
            self.n_users, self.embedding_dim, embeddings_initializer=init, name="user_embedding"
        )
        self.item_embedding = layers.Embedding(
            self.n_items, self.embedding_dim, embeddings_initializer=init, name="item_embedding"
        )
        self.item_bias = layers.Embedding(self.n_items, 1, embeddings_initializer="zeros", name="item_bias")
        for layer in (self.user_embedding, self.item_embedding, self.item_bias):
            layer.build((None,))
        if self.task == "rating":  # a user's offset matters for ratings, not for a user's ranking
            self.user_bias = layers.Embedding(
                self.n_users, 1, embeddings_initializer="zeros", name="user_bias"
            )
            self.user_bias.build((None,))
        self.built = True

    def id_axes(self):
        axes = {
            "user_embedding/embeddings": IdAxis("user"),
            "item_embedding/embeddings": IdAxis("item"),
            "item_bias/embeddings": IdAxis("item"),
        }
        if self.task == "rating":
            axes["user_bias/embeddings"] = IdAxis("user")
        return axes

    def call(self, inputs, training=False):
        users, items = inputs["user"], inputs["items"]
        if training and self.shared_negatives:
            return self._shared_negative_scores(users, items)
        u = self.user_embedding(users)
        v = self.item_embedding(items)
        scores = ops.einsum("bd,bcd->bc", u, v)
        penalty = ops.sum(u * u) + ops.sum(v * v)
        if self.use_bias:
            b = ops.squeeze(self.item_bias(items), -1)
            scores = scores + b
            if self.task == "rating":
                bu = self.user_bias(users)  # [B, 1]
                scores = scores + bu
                penalty = penalty + ops.sum(b * b) + ops.sum(bu * bu)
        if training and self.l2 > 0:
            batch = ops.cast(ops.shape(u)[0], u.dtype)
            self.add_loss(self.l2 * penalty / batch)
        return self.task_output(scores)

    def _shared_negative_scores(self, users, items):
        """[B, 1 + K] scores: each row's positive, then the batch's K shared negatives (row 0's)."""
        positives, negatives = items[:, 0], items[0, 1:]
        u = self.user_embedding(users)
        vp, vn = self.item_embedding(positives), self.item_embedding(negatives)
        pos = ops.sum(u * vp, axis=-1, keepdims=True)
        neg = ops.matmul(u, ops.transpose(vn))
        if self.use_bias:
            pos = pos + self.item_bias(positives)
            neg = neg + ops.reshape(self.item_bias(negatives), (1, -1))
        hit = ops.equal(ops.expand_dims(negatives, 0), ops.expand_dims(positives, 1))
        neg = ops.where(
            hit, ops.cast(-1e4, neg.dtype), neg
        )  # a sampled negative that is the positive (finite: float16-safe)
        if self.l2 > 0:
            batch = ops.cast(ops.shape(u)[0], u.dtype)
            self.add_loss(self.l2 * (ops.sum(u * u) + ops.sum(vp * vp) + ops.sum(vn * vn)) / batch)
        return ops.concatenate([pos, neg], axis=1)

    def score_all(self, users):
        u = self.user_embedding(users)
        scores = ops.matmul(u, ops.transpose(self.item_embedding.embeddings))
        if self.use_bias:
            scores = scores + ops.reshape(self.item_bias.embeddings, (1, -1))
            if self.task == "rating":
                scores = scores + self.user_bias(users)
        return self.task_output(scores)

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            l2=self.l2,
            init_std=self.init_std,
            use_bias=self.use_bias,
            shared_negatives=self.shared_negatives,
        )
        return config
