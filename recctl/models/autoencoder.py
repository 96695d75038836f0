"""Variational (Mult-VAE) and denoising (Mult-DAE) autoencoders over the user's interaction vector.

Liang et al., "Variational Autoencoders for Collaborative Filtering" (WWW 2018). The input is the
user's multi-hot row of the interaction matrix, L2-normalised and corrupted by input dropout; an
MLP encoder (tanh) maps it to the mean and log-variance of a Gaussian code (Mult-VAE) or to a
deterministic code (Mult-DAE, `variant="dae"`), and an MLP decoder maps the code to one logit per
item. Training maximises the multinomial log-likelihood sum_i x_i log softmax(logits)_i minus, for
the VAE, beta * KL(q(z|x) || N(0, I)) with the reparameterisation trick; beta grows linearly by
1 / `total_anneal_steps` per optimizer update up to `anneal_cap` (the step count is a
non-trainable weight, saved with the model). At inference the code is the mean and there is no
dropout, so scores are deterministic.

Differences from the paper:
- The likelihood is `MultinomialLikelihood` (base.py), not Keras's CategoricalCrossentropy:
  same value, but TensorFlow's fused softmax cross-entropy gives the gradient softmax - x, right
  only when x sums to 1; with it the model did not learn (training loss rose every epoch).
- `micro_batch_size`: the user-vector pipeline yields one example per user, so at the trainer's
  batch of 1,024 an epoch of a 1,000-user dataset is one optimizer update, and 30 epochs are 30
  updates (ml-100k test NDCG@10 0.043, below popularity). Each pipeline batch is therefore split
  into chunks of `micro_batch_size` users with one update each (`train_step`), whatever
  `trainer.batch_size` is; 0 turns this off.
- `popularity_prior`: log(1 + training count) of each item is added to the logits (a fixed table
  set by `load_tables`), so training starts from the popularity ranking and learns the rest.
- The paper's L2 penalty on the weights (0.01 in its code) is optional (`l2`, default 0: it
  lowered ml-100k NDCG@10).
- With the paper's `total_anneal_steps` of 200,000 and recctl's 30-epoch budget, beta stays
  small on small datasets (under 0.005 on ml-100k): measured best there; see conf/model/autoencoder.yaml.

    model = MultVAE(n_users=943, n_items=1682, hidden_units=[600], latent_dim=200)
    scores = model.score_all({"vector": multi_hot})   # [batch, 1682] logits
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from recctl.models.base import IdAxis, UserVectorRecommender, check_choice, check_positive, check_rate

VARIANTS = ("vae", "dae")


def _rows(tensor, start, count):
    """tensor[start : start + count] along the first axis (None passes through)."""
    if tensor is None:
        return None
    shape = ops.shape(tensor)
    return ops.slice(tensor, [start] + [0] * (len(shape) - 1), [count, *shape[1:]])


class MicroBatchSteps:
    """`micro_batch_size`: one optimizer update per chunk of that many users of each pipeline batch
    (user-vector families whose pipeline batch is large for memory's sake: MultVAE, content)."""

    micro_batch_size: int = 0

    def train_step(self, data):
        """One optimizer update per chunk of `micro_batch_size` users of the pipeline batch.

        The chunks all have `min(batch, micro_batch_size)` rows (static shapes, so XLA compiles the
        loop once): the last one starts early enough to end at the batch's end, overlapping the one
        before it. Metrics accumulate over the chunks as over batches.
        """
        size = self.micro_batch_size
        step = super().train_step
        strategy = getattr(self, "distribute_strategy", None)
        if not size or getattr(strategy, "num_replicas_in_sync", 1) > 1:
            return step(data)  # over replicas the pipeline yields micro-batches itself (fit.py)
        x, y, weight = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(y)[0]
        chunk = ops.minimum(n, size)
        updates = (n + size - 1) // size

        def part(i):
            start = ops.minimum(i * size, n - chunk)
            return keras.tree.map_structure(lambda t: _rows(t, start, chunk), (x, y, weight))

        def body(i, count):
            step(part(i))
            return count + 1

        ops.fori_loop(0, updates - 1, body, 0)
        return step(part(updates - 1))


@keras.saving.register_keras_serializable(package="recctl")
class MultVAE(MicroBatchSteps, UserVectorRecommender):
    """XLA is on by default (`jit_compile: auto`): on ml-100k, 30 epochs took fit 11.7 s and 10.8 s
    with it, 14.3 s and 13.6 s without (training alone: 0.3 s vs 0.6 s an epoch, after a 5-8 s
    compilation per batch shape, so very short runs gain nothing: ~equal over 15 epochs).

    Args:
    n_users, n_items: catalogue sizes (from the dataset).
    variant: "vae" (Mult-VAE: Gaussian code, KL term) or "dae" (Mult-DAE: deterministic code).
    hidden_units: widths of the encoder's tanh layers (the decoder mirrors them), e.g. [600].
    latent_dim: size of the latent code (200 in the paper).
    dropout: input dropout rate (the denoising corruption; 0.5 in the paper).
    anneal_cap: the largest KL weight beta (0.2 in the paper); VAE only.
    total_anneal_steps: training steps for beta to grow from 0 to 1 (it stops at anneal_cap).
    l2: L2 penalty on every kernel (the paper's code: 0.01; 0 = none).
    micro_batch_size: users per optimizer update; each pipeline batch is split into chunks of this
        size (0 = one update per pipeline batch).
    """

    data_tables = ("log_popularity",)

    jit_compile_default = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        variant: str = "vae",
        hidden_units: Sequence[int] = (600,),
        latent_dim: int = 200,
        dropout: float = 0.5,
        anneal_cap: float = 0.2,
        total_anneal_steps: int = 200000,
        l2: float = 0.0,
        popularity_prior: bool = True,
        micro_batch_size: int = 32,
        **kwargs,
    ):
        super().__init__(n_users, n_items, **kwargs)
        check_choice("variant", variant, VARIANTS)
        if isinstance(hidden_units, (str, bytes)):
            raise ValueError(f"hidden_units should be a list of layer widths. Received: {hidden_units!r}")
        for width in hidden_units:
            check_positive("hidden_units[*]", width)
        check_positive("latent_dim", latent_dim)
        check_rate("dropout", dropout)
        check_positive("anneal_cap", anneal_cap, allow_zero=True)
        check_positive("total_anneal_steps", total_anneal_steps)
        check_positive("l2", l2, allow_zero=True)
        check_positive("micro_batch_size", micro_batch_size, allow_zero=True)
        self.variant = variant
        self.hidden_units = [int(v) for v in hidden_units]
        self.latent_dim = int(latent_dim)
        self.dropout = float(dropout)
        self.anneal_cap = float(anneal_cap)
        self.total_anneal_steps = int(total_anneal_steps)
        self.l2 = float(l2)
        self.popularity_prior = bool(popularity_prior)
        self.micro_batch_size = int(micro_batch_size)

        regularizer = keras.regularizers.L2(self.l2) if self.l2 > 0 else None

        def dense(width, activation, name):
            return layers.Dense(width, activation=activation, kernel_regularizer=regularizer, name=name)

        code_width = 2 * self.latent_dim if variant == "vae" else self.latent_dim
        self.input_dropout = layers.Dropout(self.dropout)
        # Mult-DAE squashes its code with tanh like every other layer; Mult-VAE's mean/log-variance are linear.
        self.encoder_layers = [dense(w, "tanh", f"encoder_{j}") for j, w in enumerate(self.hidden_units)]
        self.encoder_layers.append(dense(code_width, "tanh" if variant == "dae" else None, "encoder_code"))
        self.decoder_layers = [
            dense(w, "tanh", f"decoder_{j}") for j, w in enumerate(reversed(self.hidden_units))
        ]
        self.decoder_layers.append(dense(self.n_items, None, "decoder_logits"))
        width = self.n_items
        for layer in self.encoder_layers:
            layer.build((None, width))
            width = layer.units
        width = self.latent_dim
        for layer in self.decoder_layers:
            layer.build((None, width))
            width = layer.units
        # Optimizer updates seen so far (drives the KL annealing); saved with the model.
        self.anneal_step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="anneal_step")
        # log(1 + training count) of each item, added to the logits when popularity_prior (load_tables).
        self.log_popularity = self.add_weight(
            shape=(self.n_items,), initializer="zeros", trainable=False, name="log_popularity"
        )
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True

    def id_axes(self):
        first = self.encoder_layers[0].name  # the layer that reads the item vector
        return {
            f"{first}/kernel": IdAxis("item", axis=0),
            "decoder_logits/kernel": IdAxis("item", axis=1),
            "decoder_logits/bias": IdAxis("item"),
        }

    def load_tables(self, tables):
        if self.popularity_prior and "item_popularity" in tables:
            counts = np.asarray(tables["item_popularity"], np.float32)
            self.log_popularity.assign(np.log1p(counts))

    def beta(self):
        """The current KL weight: min(anneal_cap, steps / total_anneal_steps)."""
        return ops.minimum(self.anneal_cap, self.anneal_step / float(self.total_anneal_steps))

    def encode(self, vector, training=False):
        """Mean and log-variance of q(z | x) (log-variance None for the DAE)."""
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(vector), axis=-1, keepdims=True), 1e-12))
        hidden = self.input_dropout(vector / norm, training=training)
        for layer in self.encoder_layers:
            hidden = layer(hidden)
        if self.variant == "dae":
            return hidden, None
        return hidden[:, : self.latent_dim], hidden[:, self.latent_dim :]

    def decode(self, code):
        for layer in self.decoder_layers:
            code = layer(code)
        if self.popularity_prior:
            code = code + ops.expand_dims(self.log_popularity, 0)
        return code

    def call(self, inputs, training=False):
        mean, log_var = self.encode(inputs["vector"], training=training)
        code = mean
        if training and log_var is not None:
            noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
            code = mean + ops.exp(0.5 * log_var) * noise
            kl = 0.5 * ops.sum(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var, axis=-1)
            self.add_loss(self.beta() * ops.mean(kl))
        if training:
            self.anneal_step.assign_add(1.0)
        return self.decode(code)

    def get_config(self):
        config = super().get_config()
        config.update(
            variant=self.variant,
            hidden_units=self.hidden_units,
            latent_dim=self.latent_dim,
            dropout=self.dropout,
            anneal_cap=self.anneal_cap,
            total_anneal_steps=self.total_anneal_steps,
            l2=self.l2,
            popularity_prior=self.popularity_prior,
            micro_batch_size=self.micro_batch_size,
        )
        return config
