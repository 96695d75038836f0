"""Mult-VAE / Mult-DAE (model=autoencoder) and NeuMF (model=neumf): contract, .keras round trip,
KL annealing, micro-batched updates, and learning (CLI runs; the ml-100k bars are `slow`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, recctl_json

from recctl.tfenv import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from recctl.models.autoencoder import MultVAE  # noqa: E402
from recctl.models.base import MultinomialLikelihood  # noqa: E402
from recctl.models.neumf import NeuMF  # noqa: E402

N_USERS, N_ITEMS = 9, 13


def _multi_hot(n_users=N_USERS, seed=0):
    rng = np.random.default_rng(seed)
    vector = (rng.random((n_users, N_ITEMS)) < 0.3).astype(np.float32)
    vector[:, 0] = 1.0  # every user has at least one item
    return vector


def _popularity():
    return {"item_popularity": np.arange(N_ITEMS, dtype=np.float32)}


def _round_trip(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    import recctl.models.registry  # noqa: F401

    return keras.saving.load_model(path, safe_mode=True, compile=False)


# -- NeuMF


@pytest.mark.parametrize("variant", ["neumf", "gmf", "mlp"])
def test_neumf_contract_and_keras_round_trip(variant, tmp_path):
    model = NeuMF(N_USERS, N_ITEMS, mf_dim=4, mlp_dim=3, hidden_units=[8, 4], variant=variant)
    users = np.array([0, 4, 8], np.int32)
    scores = np.asarray(model.score_all(users))
    assert scores.shape == (3, N_ITEMS)
    items = np.array([[0, 5, 12], [12, 2, 2], [3, 7, 1]], np.int32)
    pairs = np.asarray(model.score_pairs(users, items))
    np.testing.assert_allclose(pairs, np.take_along_axis(scores, items, axis=1), rtol=1e-5, atol=1e-6)
    assert model.emits_probabilities and model.loss_name == "bce" and model.num_negatives == 32
    loaded = _round_trip(model, tmp_path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(loaded.score_all(users)), scores, rtol=1e-6)


def test_neumf_scoring_batch_bounds_memory_and_arguments_are_validated():
    model = NeuMF(943, 1682, hidden_units=[128, 64])
    assert model.scoring_batch_size(1024) * 1682 * 128 <= 1 << 25
    assert NeuMF(943, 1682, variant="gmf").scoring_batch_size(1024) == 1024
    with pytest.raises(ValueError, match="mf_dim should be positive. Received: mf_dim=0"):
        NeuMF(N_USERS, N_ITEMS, mf_dim=0)
    with pytest.raises(ValueError, match="hidden_units"):
        NeuMF(N_USERS, N_ITEMS, hidden_units=[])
    with pytest.raises(ValueError, match="variant should be one of"):
        NeuMF(N_USERS, N_ITEMS, variant="ncf")
    with pytest.raises(ValueError, match="dropout"):
        NeuMF(N_USERS, N_ITEMS, dropout=1.0)


# -- Mult-VAE / Mult-DAE


@pytest.mark.parametrize("variant", ["vae", "dae"])
def test_autoencoder_contract_and_keras_round_trip(variant, tmp_path):
    model = MultVAE(N_USERS, N_ITEMS, variant=variant, hidden_units=[8], latent_dim=4)
    model.load_tables(_popularity())
    context = {"vector": _multi_hot()}
    scores = np.asarray(model.score_all(context))
    assert scores.shape == (N_USERS, N_ITEMS)
    # inference is deterministic: no dropout, the code is the mean
    np.testing.assert_array_equal(np.asarray(model.score_all(context)), scores)
    np.testing.assert_array_equal(np.asarray(model(context, training=False)), scores)
    # training is not: input dropout (and sampling for the VAE)
    assert not np.allclose(np.asarray(model(context, training=True)), scores)
    loaded = _round_trip(model, tmp_path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(loaded.score_all(context)), scores, rtol=1e-6)


def test_autoencoder_arguments_are_validated():
    with pytest.raises(ValueError, match="latent_dim should be positive. Received: latent_dim=0"):
        MultVAE(N_USERS, N_ITEMS, latent_dim=0)
    with pytest.raises(ValueError, match="variant should be one of"):
        MultVAE(N_USERS, N_ITEMS, variant="ae")
    with pytest.raises(ValueError, match="dropout"):
        MultVAE(N_USERS, N_ITEMS, dropout=1.0)
    with pytest.raises(ValueError, match="micro_batch_size should be non-negative"):
        MultVAE(N_USERS, N_ITEMS, micro_batch_size=-1)


def test_multinomial_likelihood_value_and_gradient():
    logits = tf.Variable([[0.1, 0.5, -0.3, 0.2], [1.0, -1.0, 0.0, 0.5]])
    target = tf.constant([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = MultinomialLikelihood()(target, logits)
    log_softmax = tf.nn.log_softmax(logits)
    expected = -tf.reduce_sum(target * log_softmax) / 2
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
    # d/dlogits of the mean over users: (n_u * softmax - y) / batch, n_u the user's number of items
    n = tf.reduce_sum(target, axis=1, keepdims=True)
    np.testing.assert_allclose(
        tape.gradient(loss, logits).numpy(), ((n * tf.exp(log_softmax) - target) / 2).numpy(), atol=1e-6
    )


def _fit(model, vectors, batch_size, epochs=1, jit_compile=False):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.training_loss(), jit_compile=jit_compile)
    data = tf.data.Dataset.from_tensor_slices(({"vector": vectors}, vectors)).batch(batch_size)
    return model.fit(data, epochs=epochs, verbose=0, shuffle=False)


def test_kl_annealing_grows_beta_per_update_up_to_the_cap():
    model = MultVAE(
        N_USERS,
        N_ITEMS,
        hidden_units=[8],
        latent_dim=4,
        anneal_cap=0.2,
        total_anneal_steps=10,
        micro_batch_size=2,
    )
    assert float(model.beta()) == 0.0
    vectors = _multi_hot()
    # 9 users in batches of 4 split into micro-batches of 2: (2 + 2) + (2 + 2) + 1 = 5 updates per epoch
    _fit(model, vectors, batch_size=4)
    assert int(model.optimizer.iterations) == 5 and float(model.anneal_step) == 5.0
    assert float(model.beta()) == pytest.approx(0.2)  # min(0.2, 5 / 10)
    model.anneal_cap = 1.0
    assert float(model.beta()) == pytest.approx(0.5)
    # the KL term is added to the loss in training only, weighted by beta
    model(({"vector": vectors}), training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0


def test_micro_batches_compile_with_xla():
    # the default for this family: every chunk has a static shape, the last one overlapping
    model = MultVAE(N_USERS, N_ITEMS, hidden_units=[8], latent_dim=4, micro_batch_size=4)
    history = _fit(model, _multi_hot(), batch_size=9, epochs=2, jit_compile=True)
    assert int(model.optimizer.iterations) == 6 and float(model.anneal_step) == 6.0  # ceil(9 / 4) per epoch
    assert np.isfinite(history.history["loss"]).all()


def test_dae_has_no_kl_and_micro_batches_off_means_one_update_per_batch():
    model = MultVAE(N_USERS, N_ITEMS, variant="dae", hidden_units=[8], latent_dim=4, micro_batch_size=0)
    vectors = _multi_hot()
    history = _fit(model, vectors, batch_size=4, epochs=2)
    assert int(model.optimizer.iterations) == 6  # ceil(9 / 4) per epoch
    assert np.isfinite(history.history["loss"]).all()
    model({"vector": vectors}, training=True)
    assert model.losses == []


# -- learning, through the CLI as a user runs it


def _lift(result: dict) -> tuple[float, float]:
    return result["metrics"]["test"]["ndcg@10"], result["baseline"]["pop"]["test"]["ndcg@10"]


# One example per user: TINY's 300 users leave the autoencoder little to learn from (1.3x-1.4x pop),
# so this run has 1,000 (still ~10 s). Test NDCG@10 / pop over seeds 1-6: 1.43x-1.84x; 1.68x at the
# default seed 42, which this run uses (and reproduces exactly on the project machine).
# No XLA: its compilation would dominate a run this short.
AUTOENCODER_TINY = [
    "dataset.synthetic.n_users=1000",
    "trainer.epochs=10",
    "trainer.jit_compile=false",
    "trainer.checkpoint=false",
    "logger=none",
]


def test_autoencoder_learns_on_tiny_synthetic_data(tmp_path: Path):
    result = recctl_json("train", "model=autoencoder", *TINY, *AUTOENCODER_TINY, cwd=tmp_path)
    model, pop = _lift(result)
    assert model >= 1.5 * pop, (model, pop)


# NeuMF needs more interactions than TINY has (it stays near pop there: id models cannot use the
# validation item at test, and TINY gives them ~30 updates an epoch): 1,000 users x 500 items reached
# 1.78x pop at seed 42 (1.34x-1.88x over seeds 1-3) in ~30 s.
NEUMF_SMALL = [
    "dataset.synthetic.n_users=1000",
    "dataset.synthetic.n_items=500",
    "trainer.batch_size=256",
    "trainer.jit_compile=false",
]


@pytest.mark.slow
def test_neumf_learns_on_small_synthetic_data(tmp_path: Path):
    result = recctl_json("train", "model=neumf", *NEUMF_SMALL, "trainer.epochs=10", cwd=tmp_path)
    model, pop = _lift(result)
    assert model >= 1.5 * pop, (model, pop)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["autoencoder", "neumf"])
def test_default_config_beats_pop_on_the_synthetic_default(tmp_path: Path, model: str):
    result = recctl_json("train", f"model={model}", cwd=tmp_path, timeout=1200)
    ndcg, pop = _lift(result)
    assert ndcg >= 1.5 * pop, (ndcg, pop)


# 0.95 x RecBole 1.2.1 on the same protocol (MultiDAE 0.0492, NeuMF 0.0649); measured: conf/model/*.yaml.
ML100K_BARS = {"autoencoder": 0.0467, "neumf": 0.0617}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(ML100K_BARS))
def test_default_config_reaches_the_peer_bar_on_ml100k(ml100k_dir: Path, tmp_path: Path, model: str):
    result = recctl_json(
        "train", "dataset=ml_100k", f"dataset.root={ml100k_dir}", f"model={model}", cwd=tmp_path, timeout=1200
    )
    ndcg, pop = _lift(result)
    assert ndcg >= ML100K_BARS[model], (ndcg, pop)
