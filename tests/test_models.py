"""The model contract for every model of this issue: shapes, .keras round trip, learning."""

from __future__ import annotations

import numpy as np
import pytest

from recctl.tfenv import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from recctl.models.mf import MatrixFactorization  # noqa: E402
from recctl.models.pop import Popularity  # noqa: E402
from recctl.models.wide_deep import WideDeep  # noqa: E402

N_USERS, N_ITEMS = 7, 11


def _tables():
    rng = np.random.default_rng(0)
    return {
        "user_categorical": rng.integers(0, 3, size=(N_USERS, 2)).astype(np.int32),
        "item_categorical": rng.integers(0, 4, size=(N_ITEMS, 1)).astype(np.int32),
        "user_numeric": np.zeros((N_USERS, 0), np.float32),
        "item_numeric": rng.integers(0, 2, size=(N_ITEMS, 3)).astype(np.float32),
        "item_popularity": rng.integers(0, 9, size=N_ITEMS).astype(np.float32),
    }


def _models():
    return [
        Popularity(N_USERS, N_ITEMS),
        MatrixFactorization(N_USERS, N_ITEMS, embedding_dim=4),
        WideDeep(
            N_USERS,
            N_ITEMS,
            user_categorical=[3, 3],
            item_categorical=[4],
            item_numeric=3,
            hidden_units=[8, 4],
        ),
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_contract_and_keras_round_trip(model, tmp_path):
    model.load_tables(_tables())
    users = np.array([0, 3, 6], np.int32)
    scores = np.asarray(model.score_all(users))
    assert scores.shape == (3, N_ITEMS)
    # score_all agrees with the pairwise scores training uses
    items = np.array([[0, 5], [10, 2], [3, 3]], np.int32)
    pairs = np.asarray(model.score_pairs(users, items))
    np.testing.assert_allclose(pairs, np.take_along_axis(scores, items, axis=1), rtol=1e-5, atol=1e-5)
    path = tmp_path / "m.keras"
    model.save(path)
    import recctl.models.registry  # noqa: F401

    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded.score_all(users)), scores, rtol=1e-6)


def test_constructor_arguments_are_validated():
    with pytest.raises(ValueError, match="embedding_dim should be positive. Received: embedding_dim=0"):
        MatrixFactorization(N_USERS, N_ITEMS, embedding_dim=0)
    with pytest.raises(ValueError, match="loss should be one of"):
        MatrixFactorization(N_USERS, N_ITEMS, loss="hinge")
    with pytest.raises(ValueError, match="dropout"):
        WideDeep(N_USERS, N_ITEMS, dropout=1.5)


def test_pop_ranks_by_count_with_ties_by_index():
    model = Popularity(2, 5)
    model.load_tables({"item_popularity": np.array([1, 3, 3, 0, 2], np.float32)})
    top = tf.math.top_k(model.score_all(np.array([0], np.int32)), k=5).indices.numpy()[0]
    assert top.tolist() == [1, 2, 4, 0, 3]


def test_mf_shared_negatives_score_like_per_example_scoring_and_mask_accidental_hits():
    """The shared-negative path (one matmul per batch) gives the per-example scores of the same
    candidates, except a sampled negative equal to the row's positive, which is masked."""
    from recctl.data.pipelines import EpochClock, id_training_dataset

    model = MatrixFactorization(n_users=6, n_items=9, embedding_dim=4, loss="softmax", shared_negatives=True)
    users = np.array([0, 1, 2, 3, 4, 5], np.int32)
    positives = np.array([1, 2, 3, 4, 5, 6], np.int32)
    negatives = np.array([2, 7, 8], np.int32)  # item 2 is user 1's positive
    items = np.concatenate([positives[:, None], np.tile(negatives, (6, 1))], axis=1)
    shared = np.asarray(model({"user": users, "items": items}, training=True))
    plain = np.asarray(model({"user": users, "items": items}, training=False))
    hit = items[:, 1:] == positives[:, None]
    np.testing.assert_allclose(shared[:, 0], plain[:, 0], rtol=1e-5)
    np.testing.assert_allclose(shared[:, 1:][~hit], plain[:, 1:][~hit], rtol=1e-5)
    assert hit.sum() == 1 and (shared[:, 1:][hit] <= -1e3).all()

    batches = list(
        id_training_dataset(
            users, positives, 9, 4, 3, 0, EpochClock(), shared_negatives=True
        ).as_numpy_iterator()
    )
    for features, labels in batches:
        assert (features["items"][:, 1:] == features["items"][0, 1:]).all()  # one draw per batch
        assert (labels[:, 0] == 1).all() and (labels[:, 1:] == 0).all()
    assert sorted(np.concatenate([f["user"] for f, _ in batches]).tolist()) == users.tolist()
