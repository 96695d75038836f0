"""SASRec: causal self-attention over the user's item history.

Kang & McAuley, "Self-Attentive Sequential Recommendation" (ICDM 2018). The history's item
embeddings plus learned positional embeddings go through `num_blocks` Transformer blocks whose
attention is causal (position t sees items 1..t only), each block
``x = x + Dropout(Attention(LayerNorm(x)))``, ``x = x + Dropout(FFN(LayerNorm(x)))`` (the paper's
pre-LN residuals, a point-wise two-layer ReLU feed-forward), padded positions zeroed after every
block, then a final LayerNorm. ``norm="post"`` gives the blocks of BERT and of RecBole's SASRec
instead: ``x = LayerNorm(x + Dropout(Attention(x)))``, ``x = LayerNorm(x + Dropout(FFN(x)))``, the
embeddings normalised before the first block, no dropout inside the feed-forward and no final
LayerNorm; with GELU, 2 heads, a 256-wide feed-forward and dropout 0.5 (RecBole's sizes) it is
experiment=ml100k_attention, which trained to a better model on ml-100k than the paper's blocks
(BENCHMARKS.md section 13). The state at position t predicts item t+1; the score of item i is
``state . E[i + 1]`` with E the input item embedding table (shared input/output embeddings, as in
the paper). Trained seq2seq: the next item at every position of every window.

Differences from the paper: trained with a sampled softmax over the positive and `num_negatives`
uniform negatives instead of binary cross-entropy on one negative (the change that Klenitskiy &
Vasilev, RecSys 2023, and Petrov & Macdonald's gSASRec, RecSys 2023, found to matter most); positions
are counted from the most recent item (the last item always has the last positional embedding), so
a history scores the same whatever its left padding; the feed-forward width is a parameter
(`ffn_dim`, the paper uses `embedding_dim`); padded query positions attend to themselves only, so
no attention row is empty and a padding-only history still gives finite scores. Default
`max_length` 10 (the paper: 50 on sparse data, 200 on MovieLens-1M): the seq2seq pipeline batches
whole windows, so short windows give more optimizer steps per epoch, and on ml-100k 50 items of
context scored no better than 10 at an equal number of steps (conf/model/attention.yaml).

    model = SASRec(n_users=943, n_items=1682, max_length=10, embedding_dim=64)
    scores = model.score_all({"history": keras.ops.array([[0, 0, 5, 9]]), "user": keras.ops.array([-1])})
"""

from __future__ import annotations

import keras
from keras import layers, ops

from recctl.models.base import IdAxis, SequenceRecommender, check_choice, check_positive, check_rate

NORMS = ("pre", "post")
ACTIVATIONS = ("relu", "gelu")


@keras.saving.register_keras_serializable(package="recctl")
class SASRec(SequenceRecommender):
    """XLA is on by default for this family: a jit-compiled training epoch on ml-100k took ~5 s
    against ~13 s without (median of 6 epochs each, 2-core CPU, max_length 10, batch 1024).

    Args:
    n_users, n_items: catalogue sizes (from the dataset); users are ignored (history only).
    max_length: the most recent items of a history that are read (and the training window).
    num_negatives: uniform negatives of the sampled softmax, per position.
    embedding_dim: size of the item / positional embeddings and of every block.
    num_blocks: self-attention blocks.
    num_heads: attention heads per block (must divide embedding_dim).
    ffn_dim: width of the point-wise feed-forward layer; None = embedding_dim (the paper).
    dropout: dropout rate on the embeddings, attention weights and each residual branch.
    init_std: standard deviation of the normal initialiser of the embeddings.
    norm: "pre" (the paper: LayerNorm before each sub-layer) or "post" (after each residual sum).
    activation: of the feed-forward's inner layer, "relu" (the paper) or "gelu".
    """

    training_mode = "seq2seq"
    jit_compile_default = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        max_length: int = 10,
        num_negatives: int = 128,
        embedding_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 1,
        ffn_dim: int | None = None,
        dropout: float = 0.2,
        init_std: float = 0.02,
        norm: str = "pre",
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(n_users, n_items, max_length=max_length, num_negatives=num_negatives, **kwargs)
        check_positive("embedding_dim", embedding_dim)
        check_positive("num_blocks", num_blocks)
        check_positive("num_heads", num_heads)
        if ffn_dim is not None:
            check_positive("ffn_dim", ffn_dim)
        check_positive("init_std", init_std)
        check_choice("norm", norm, NORMS)
        check_choice("activation", activation, ACTIVATIONS)
        check_rate("dropout", dropout)
        if embedding_dim % num_heads:
            raise ValueError(
                f"num_heads should divide embedding_dim={embedding_dim}. Received: num_heads={num_heads!r}"
            )
        self.embedding_dim = int(embedding_dim)
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.ffn_dim = None if ffn_dim is None else int(ffn_dim)
        self.dropout = float(dropout)
        self.init_std = float(init_std)
        self.norm = str(norm)
        self.activation = str(activation)

        d, width = self.embedding_dim, self.ffn_dim or self.embedding_dim
        init = keras.initializers.RandomNormal(stddev=self.init_std)
        self.item_embedding = layers.Embedding(
            self.n_items + 1, d, embeddings_initializer=init, name="item_embedding"
        )
        self.position_embedding = layers.Embedding(
            self.max_length, d, embeddings_initializer=init, name="position_embedding"
        )
        self.item_embedding.build((None,))
        self.position_embedding.build((None,))
        self.input_dropout = layers.Dropout(self.dropout, name="input_dropout")
        sequence_shape = (None, self.max_length, d)
        n = range(self.num_blocks)
        self.attention_norms = [
            layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{b}") for b in n
        ]
        self.attentions = [
            layers.MultiHeadAttention(
                self.num_heads, d // self.num_heads, dropout=self.dropout, name=f"attention_{b}"
            )
            for b in n
        ]
        self.attention_dropouts = [layers.Dropout(self.dropout) for _ in n]
        self.ffn_norms = [layers.LayerNormalization(epsilon=1e-6, name=f"ffn_norm_{b}") for b in n]
        self.ffn_inners = [layers.Dense(width, activation=self.activation, name=f"ffn_inner_{b}") for b in n]
        self.ffn_inner_dropouts = [layers.Dropout(self.dropout) for _ in n]
        self.ffn_outers = [layers.Dense(d, name=f"ffn_outer_{b}") for b in n]
        self.ffn_dropouts = [layers.Dropout(self.dropout) for _ in n]
        for b in n:
            self.attention_norms[b].build(sequence_shape)
            self.attentions[b].build(sequence_shape, sequence_shape)
            self.ffn_norms[b].build(sequence_shape)
            self.ffn_inners[b].build(sequence_shape)
            self.ffn_outers[b].build((None, self.max_length, width))
        # pre: a final LayerNorm after the last block; post: one on the embeddings, before the first
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")
        self.final_norm.build(sequence_shape)
        self.built = True

    def id_axes(self):
        return {"item_embedding/embeddings": IdAxis("item", leading=1)}  # row 0 is padding

    def encode(self, history, user=None, training=False, attention_scores=None):
        """The user state per position; with a list as `attention_scores`, each block's attention
        scores [B, heads, L, L] are appended to it (recctl.models.explain)."""
        history = ops.cast(history, "int32")[:, -self.max_length :]
        length = ops.shape(history)[1]
        valid = ops.not_equal(history, 0)  # [B, L]
        keep = ops.cast(ops.expand_dims(valid, -1), self.compute_dtype)
        # positions counted from the most recent item: the last one always gets row max_length - 1
        positions = ops.arange(length, dtype="int32") + (self.max_length - length)
        post = self.norm == "post"
        x = self.item_embedding(history) + ops.expand_dims(self.position_embedding(positions), 0)
        if post:
            x = self.final_norm(x)
        x = self.input_dropout(x, training=training) * keep
        # query t attends to the non-padding keys s <= t, and always to itself (no empty row)
        index = ops.arange(length, dtype="int32")
        causal = ops.expand_dims(ops.less_equal(index[None, :], index[:, None]), 0)  # [1, L, L]
        itself = ops.expand_dims(ops.equal(index[None, :], index[:, None]), 0)
        mask = ops.logical_or(ops.logical_and(causal, ops.expand_dims(valid, 1)), itself)
        for b in range(self.num_blocks):
            h = x if post else self.attention_norms[b](x)
            if attention_scores is None:
                h = self.attentions[b](h, h, attention_mask=mask, training=training)
            else:
                h, scores = self.attentions[b](
                    h, h, attention_mask=mask, training=training, return_attention_scores=True
                )
                attention_scores.append(scores)
            x = x + self.attention_dropouts[b](h, training=training)
            if post:
                x = self.attention_norms[b](x)
            h = self.ffn_inners[b](x if post else self.ffn_norms[b](x))
            if not post:  # RecBole's post-LN feed-forward has no inner dropout
                h = self.ffn_inner_dropouts[b](h, training=training)
            h = self.ffn_outers[b](h)
            x = x + self.ffn_dropouts[b](h, training=training)
            x = (self.ffn_norms[b](x) if post else x) * keep
        return x if post else self.final_norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            init_std=self.init_std,
            norm=self.norm,
            activation=self.activation,
        )
        return config
