"""Input pipelines per input kind: exact window contents on a hand-made snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recctl.tfenv import import_tensorflow

tf = import_tensorflow()

from recctl.data.pipelines import (  # noqa: E402
    TRAINING_DATA,
    sequence_training_dataset,
    user_vector_training_dataset,
)
from recctl.data.snapshot import CSR  # noqa: E402


class FakeSnapshot:
    """User 0 trained on items 3,1,4,1->5 (time order), user 1 on 2,6; valid/test empty."""

    n_users, n_items = 2, 7

    def __init__(self):
        self.train = pd.DataFrame({"user": [0, 0, 0, 0, 1, 1], "item": [3, 1, 4, 5, 2, 6]})

    def csr(self, *names):
        return CSR.from_pairs(self.train.user.to_numpy(), self.train.item.to_numpy(), self.n_users)


def _collect(ds):
    batches = list(ds.as_numpy_iterator())
    return batches


def test_seq2seq_windows_cover_every_pair_once():
    ds = sequence_training_dataset(
        FakeSnapshot(), "seq2seq", max_length=2, batch_size=16, num_negatives=3, seed=0
    )
    ((features, labels, weights),) = _collect(ds)
    pairs = set()
    for hist, cand, w in zip(features["history"], features["items"], weights, strict=True):
        for x, c, wt in zip(hist, cand, w, strict=True):
            if wt:
                pairs.add((int(x), int(c[0])))
            else:
                assert x == 0  # padding carries no target
    # tokens are item + 1: user 0 pairs 3->1, 1->4, 4->5; user 1 pair 2->6
    assert pairs == {(4, 2), (2, 5), (5, 6), (3, 7)}
    assert labels.shape[-1] == 4 and (labels[..., 0] == 1).all() and (labels[..., 1:] == 0).all()
    assert features["items"][..., 1:].min() >= 1 and features["items"].max() <= 7


def test_prefix_examples_hold_the_last_items_before_each_target():
    ds = sequence_training_dataset(
        FakeSnapshot(), "prefix", max_length=3, batch_size=16, num_negatives=2, seed=0
    )
    ((features, labels),) = _collect(ds)
    got = {(tuple(h), int(c[0])) for h, c in zip(features["history"], features["items"], strict=True)}
    assert got == {((0, 0, 4), 2), ((0, 4, 2), 5), ((4, 2, 5), 6), ((0, 0, 3), 7)}


def test_user_vectors_are_multi_hot_rows():
    ((features, target),) = _collect(user_vector_training_dataset(FakeSnapshot(), batch_size=8, seed=0))
    rows = {tuple(np.flatnonzero(v)) for v in features["vector"]}
    assert rows == {(1, 3, 4, 5), (2, 6)} and (features["vector"] == target).all()


def test_latest_history_keeps_the_most_recent_items_left_padded():
    history = FakeSnapshot().csr()
    assert history.latest(np.array([1, 0]), 3).tolist() == [[-1, 2, 6], [1, 4, 5]]
    assert history.latest(np.array([0, 1]), None).tolist() == [[3, 1, 4, 5], [-1, -1, 2, 6]]
    assert history.latest(np.array([1]), 0).shape == (1, 0)


def test_each_input_kind_builds_its_scoring_context_from_a_history():
    """One function per kind, in keras.ops, used by evaluation and every export."""
    from recctl.models.autoencoder import MultVAE
    from recctl.models.lstm import RecurrentRecommender
    from recctl.models.mf import MatrixFactorization

    history = FakeSnapshot().csr().latest(np.array([1, 0]), None)
    users = np.array([1, 0], np.int32)
    sequence = RecurrentRecommender(n_users=2, n_items=7, max_length=3, embedding_dim=4, hidden_units=4)
    ctx = sequence.context_from_history(tf.constant(history), tf.constant(users))
    assert ctx["history"].numpy().tolist() == [[0, 3, 7], [2, 5, 6]] and ctx["user"].numpy().tolist() == [
        1,
        0,
    ]
    short = sequence.context_from_history(tf.constant([[4]], tf.int32), tf.constant([-1], tf.int32))
    assert short["history"].numpy().tolist() == [[0, 0, 5]]
    vector = MultVAE(n_users=2, n_items=7, hidden_units=[4], latent_dim=2)
    vec = vector.context_from_history(tf.constant(history), tf.constant(users))["vector"].numpy()
    assert [np.flatnonzero(v).tolist() for v in vec] == [[2, 6], [1, 3, 4, 5]] and vec.max() == 1.0
    ids = MatrixFactorization(n_users=2, n_items=7, embedding_dim=4)
    assert ids.context_from_history(tf.constant(history), tf.constant(users)).numpy().tolist() == [1, 0]
    assert set(TRAINING_DATA) == {"id", "sequence", "user_vector"}


def test_sequence_pipeline_needs_histories():
    class Lonely(FakeSnapshot):
        def __init__(self):
            self.train = pd.DataFrame({"user": [0, 1], "item": [1, 2]})

    with pytest.raises(ValueError, match="two training interactions"):
        sequence_training_dataset(Lonely(), "seq2seq", 4, 8, 2, 0)


@pytest.mark.parametrize("mode", ["seq2seq", "prefix"])
def test_full_softmax_yields_item_indexes_and_draws_no_negatives(mode):
    """The same batches as the sampled pipeline; labels are the targets' item indexes (0 on padding,
    whose weight stays 0) and "items" holds the target token only."""
    sampled = _collect(sequence_training_dataset(FakeSnapshot(), mode, 3, 16, 4, seed=0))
    full = _collect(sequence_training_dataset(FakeSnapshot(), mode, 3, 16, 4, seed=0, full_softmax=True))
    assert len(full) == len(sampled) == 1
    (s_features, s_labels, *s_weights), (f_features, f_labels, *f_weights) = sampled[0], full[0]
    np.testing.assert_array_equal(f_features["history"], s_features["history"])
    target = s_features["items"][..., 0]
    assert f_features["items"].shape == (*target.shape, 1) and s_labels.shape[-1] == 5
    np.testing.assert_array_equal(f_features["items"][..., 0], target)
    np.testing.assert_array_equal(f_labels, np.maximum(target - 1, 0))
    assert f_labels.dtype == np.int32
    for s_w, f_w in zip(s_weights, f_weights, strict=True):
        np.testing.assert_array_equal(f_w, s_w)
