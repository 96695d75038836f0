"""tf.data input pipelines, one per input kind: whole batches, negatives sampled in-graph, no Python per example.

Every epoch's order and negatives are a pure function of (seed, epoch): the epoch is read from an
`EpochClock` when Keras starts that epoch's iterator, and all randomness is stateless and keyed by
it. A run resumed from its epoch-N checkpoint therefore sees exactly the batches an uninterrupted
run saw from epoch N on (tests/test_resume.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf


class EpochClock:
    """The epoch being trained, as a variable the input pipeline reads at the start of each epoch."""

    def __init__(self, start_epoch: int = 0):
        with tf.init_scope():
            self.epoch = tf.Variable(int(start_epoch), dtype=tf.int64, trainable=False, name="epoch_clock")

    def set(self, epoch: int) -> None:
        self.epoch.assign(int(epoch))


def _per_epoch(
    seed: int,
    clock: EpochClock | None,
    make_epoch: Callable[[tf.Tensor], tf.data.Dataset],
    examples: int,
    batch_size: int,
) -> tf.data.Dataset:
    """One epoch of `make_epoch(epoch_seed)` (its `examples` cut into batches by _index_batches),
    re-evaluated (clock read, seed derived) per iterator. The batch count is declared, as flat_map
    loses it: Keras then knows the epoch's end instead of warning that the input ran out of data."""
    clock = clock or EpochClock()
    base = tf.constant(int(seed) * 1_000_003, tf.int64)
    seeds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
        lambda _: base + clock.epoch.read_value()
    )
    batches = (int(examples) + int(batch_size) - 1) // int(batch_size)
    epoch = seeds.flat_map(make_epoch).apply(tf.data.experimental.assert_cardinality(batches))
    return epoch.prefetch(tf.data.AUTOTUNE)


def _index_batches(n: int, batch_size: int, epoch_seed: tf.Tensor) -> tf.data.Dataset:
    """(batch index, example indexes) for one epoch: a full stateless permutation of range(n), cut
    into batches. One gather per batch replaces a shuffle buffer fed one example at a time (faster,
    and a full shuffle however large n is)."""
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([epoch_seed, tf.constant(0, tf.int64)])
    )
    n_batches = (n + batch_size - 1) // batch_size

    def cut(b):
        return b, perm[b * batch_size : tf.minimum((b + 1) * batch_size, n)]

    return tf.data.Dataset.range(n_batches).map(cut)


def _draw(shape, low: int, high: int, epoch_seed: tf.Tensor, batch_index: tf.Tensor) -> tf.Tensor:
    """Uniform integers in [low, high), stateless: the same (epoch, batch) always draws the same."""
    return tf.random.stateless_uniform(
        shape, tf.stack([epoch_seed, batch_index]), minval=low, maxval=high, dtype=tf.int32
    )


def id_training_dataset(
    users: np.ndarray,
    items: np.ndarray,
    n_items: int,
    batch_size: int,
    num_negatives: int,
    seed: int,
    clock: EpochClock | None = None,
    shared_negatives: bool = False,
) -> tf.data.Dataset:
    """Batches of ({"user": [B], "items": [B, 1 + num_negatives]}, labels [B, 1 + num_negatives]).

    The positive item comes first; negatives are uniform over the catalogue, drawn per batch (a
    negative may rarely be another positive of the user: the usual, cheap approximation).
    `shared_negatives`: one draw for the whole batch, repeated on every row (the shape stays, so
    distribution strategies split batches as usual); a model that knows scores them once per batch.
    """
    n = len(users)
    users_t, items_t = tf.constant(users.astype(np.int32)), tf.constant(items.astype(np.int32))
    width = 1 + num_negatives

    def one_epoch(epoch_seed):
        def make_batch(index, rows):
            u, i = tf.gather(users_t, rows), tf.gather(items_t, rows)
            b = tf.shape(u)[0]
            if shared_negatives:
                drawn = _draw((1, num_negatives), 0, n_items, epoch_seed, index)
                negatives = tf.broadcast_to(drawn, (b, num_negatives))
            else:
                negatives = _draw((b, num_negatives), 0, n_items, epoch_seed, index)
            candidates = tf.concat([i[:, None], negatives], axis=1)
            labels = tf.concat(
                [tf.ones_like(u[:, None], tf.float32), tf.zeros_like(negatives, tf.float32)], axis=1
            )
            return {"user": u, "items": candidates}, tf.reshape(labels, (-1, width))

        return _index_batches(n, batch_size, epoch_seed).map(
            make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    return _per_epoch(seed, clock, one_epoch, n, batch_size)


def labeled_pairs_dataset(
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    clock: EpochClock | None = None,
) -> tf.data.Dataset:
    """Pointwise CTR examples: ({"user": [B], "items": [B, 1]}, labels [B, 1]); no sampled negatives."""
    columns = [
        tf.constant(a) for a in (users.astype(np.int32), items.astype(np.int32), labels.astype(np.float32))
    ]

    def make_batch(_, rows):
        u, i, y = (tf.gather(c, rows) for c in columns)
        return {"user": u, "items": i[:, None]}, y[:, None]

    def one_epoch(epoch_seed):
        return _index_batches(len(users), batch_size, epoch_seed).map(
            make_batch, num_parallel_calls=tf.data.AUTOTUNE
        )

    return _per_epoch(seed, clock, one_epoch, len(users), batch_size)


def _time_ordered(snapshot, splits: tuple[str, ...]):
    """CSR of each user's items over `splits`, in time order (splits are stored time-ordered per user,
    and a later split is later in time)."""
    return snapshot.csr(*splits)


def sequence_training_dataset(
    snapshot,
    mode: str,
    max_length: int,
    batch_size: int,
    num_negatives: int,
    seed: int,
    clock: EpochClock | None = None,
    full_softmax: bool = False,
) -> tf.data.Dataset:
    """Next-item examples from each user's training sequence (tokens = item index + 1, 0 = padding).

    seq2seq: the (item_t -> item_t+1) pairs of a user cut into windows of `max_length`, aligned to
      the most recent pair, so every pair is trained on once per epoch and a window predicts at
      every position; yields (history [B, L], items [B, L, 1+neg]), labels, weights [B, L].
    prefix: one example per pair: the last `max_length` items before the target; the windows are
      gathered in-graph from one flat array, so memory stays O(interactions).
    full_softmax: no negatives are drawn; the labels are the targets' item indexes (token - 1; 0 on
      padding, whose weight is 0) for a softmax over the whole catalogue, and "items" holds only
      the target tokens.
    """
    csr = _time_ordered(snapshot, ("train",))
    lengths = csr.row_lengths()
    items = csr.indices.astype(np.int64) + 1
    users_of = np.repeat(np.arange(snapshot.n_users, dtype=np.int64), lengths)
    starts = csr.indptr[:-1][users_of]
    position = np.arange(len(items)) - starts  # position of each item in its user's sequence
    is_input = position < lengths[users_of] - 1  # every item but a user's last is an input x_t
    pair_at = np.flatnonzero(is_input)  # global index of x_t; its target y_t is at pair_at + 1
    if len(pair_at) == 0:
        raise ValueError("no user has two training interactions: sequence models need histories")
    n_neg = num_negatives
    n_tokens = snapshot.n_items + 1

    if mode == "prefix":
        flat = tf.constant(items, tf.int32)
        pair_pos = pair_at.astype(np.int64)
        user_start = starts[pair_at]
        examples = [tf.constant(a) for a in (pair_pos, user_start, users_of[pair_at].astype(np.int32))]

        def make_prefix(pos, start, user, epoch_seed, batch_index):
            offsets = tf.range(-max_length + 1, 1, dtype=tf.int64)
            index = pos[:, None] + offsets[None, :]
            valid = index >= start[:, None]
            history = tf.where(valid, tf.gather(flat, tf.maximum(index, 0)), 0)
            target = tf.gather(flat, pos + 1)
            if full_softmax:
                return {"history": history, "user": user, "items": target[:, None]}, target - 1
            negatives = _draw((tf.shape(pos)[0], n_neg), 1, n_tokens, epoch_seed, batch_index)
            candidates = tf.concat([target[:, None], negatives], axis=1)
            labels = tf.concat(
                [tf.ones_like(target[:, None], tf.float32), tf.zeros_like(negatives, tf.float32)], 1
            )
            return {"history": history, "user": user, "items": candidates}, labels

        def prefix_epoch(epoch_seed):
            return _index_batches(len(pair_pos), batch_size, epoch_seed).map(
                lambda index, rows: make_prefix(*(tf.gather(c, rows) for c in examples), epoch_seed, index),
                num_parallel_calls=tf.data.AUTOTUNE,
            )

        return _per_epoch(seed, clock, prefix_epoch, len(pair_pos), batch_size)

    # seq2seq windows, built once in numpy
    pair_user = users_of[pair_at]
    n_pairs = lengths[pair_user] - 1
    back = n_pairs - 1 - position[pair_at]  # 0 for a user's most recent pair
    window_in_user = back // max_length
    offset = max_length - 1 - back % max_length
    windows_per_user = np.where(lengths > 1, (np.maximum(lengths - 1, 1) + max_length - 1) // max_length, 0)
    first_window = np.concatenate([[0], np.cumsum(windows_per_user)[:-1]])
    window = first_window[pair_user] + window_in_user
    n_windows = int(windows_per_user.sum())
    x = np.zeros((n_windows, max_length), np.int32)
    y = np.zeros((n_windows, max_length), np.int32)
    x[window, offset] = items[pair_at]
    y[window, offset] = items[pair_at + 1]
    window_user = np.repeat(np.arange(snapshot.n_users, dtype=np.int32), windows_per_user)
    windows = [tf.constant(a) for a in (x, y, window_user)]

    def make_windows(history, targets, user, epoch_seed, index):
        weights = tf.cast(targets > 0, tf.float32)
        if full_softmax:
            inputs = {"history": history, "user": user, "items": targets[..., None]}
            return inputs, tf.maximum(targets - 1, 0), weights
        shape = tf.concat([tf.shape(targets), [n_neg]], axis=0)
        negatives = _draw(shape, 1, n_tokens, epoch_seed, index)
        candidates = tf.concat([targets[..., None], negatives], axis=-1)
        labels = tf.concat(
            [tf.ones_like(targets[..., None], tf.float32), tf.zeros(shape, tf.float32)], axis=-1
        )
        return {"history": history, "user": user, "items": candidates}, labels, weights

    def windows_epoch(epoch_seed):
        return _index_batches(n_windows, batch_size, epoch_seed).map(
            lambda index, rows: make_windows(*(tf.gather(c, rows) for c in windows), epoch_seed, index),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return _per_epoch(seed, clock, windows_epoch, n_windows, batch_size)


def user_vector_training_dataset(
    snapshot, batch_size: int, seed: int, clock: EpochClock | None = None
) -> tf.data.Dataset:
    """Each user's training row of the interaction matrix as a dense multi-hot vector, input and target."""
    csr = _time_ordered(snapshot, ("train",))
    users = np.flatnonzero(csr.row_lengths() > 0).astype(np.int64)
    ragged = tf.RaggedTensor.from_row_splits(
        tf.constant(csr.indices, tf.int64), tf.constant(csr.indptr, tf.int64)
    )
    n_items = snapshot.n_items
    ids = tf.constant(users)

    def to_vectors(batch_users):
        rows = tf.gather(ragged, batch_users)
        vector = _multi_hot(rows, n_items)
        return {"vector": vector}, vector

    def one_epoch(epoch_seed):
        return _index_batches(len(users), batch_size, epoch_seed).map(
            lambda _, rows: to_vectors(tf.gather(ids, rows)), num_parallel_calls=tf.data.AUTOTUNE
        )

    return _per_epoch(seed, clock, one_epoch, len(users), batch_size)


def _multi_hot(rows: tf.RaggedTensor, n_items: int) -> tf.Tensor:
    row_ids = tf.cast(rows.value_rowids(), tf.int64)
    index = tf.stack([row_ids, tf.cast(rows.flat_values, tf.int64)], axis=1)
    shape = tf.stack([tf.cast(rows.nrows(), tf.int64), tf.constant(n_items, tf.int64)])
    return tf.scatter_nd(index, tf.ones(tf.shape(row_ids), tf.float32), shape)


def _id_examples(model, snapshot, batch_size: int, seed: int, replicas: int, clock) -> tf.data.Dataset:
    """(user, positive + sampled negatives) for ranking; labelled rows where the task trains on labels."""
    from recctl.errors import RecctlError
    from recctl.evaluation.tasks import task_of

    labels = task_of(model).training_labels(snapshot)
    if labels is not None:
        users, items = snapshot.pairs("train")
        return labeled_pairs_dataset(users, items, labels, batch_size, seed, clock)
    users, items = snapshot.pairs("train")
    if len(users) == 0:
        raise RecctlError("the training split is empty")
    return id_training_dataset(
        users,
        items,
        snapshot.n_items,
        batch_size,
        model.num_negatives,
        seed,
        clock,
        shared_negatives=getattr(model, "shared_negatives", False),
    )


def _sequence_examples(model, snapshot, batch_size: int, seed: int, replicas: int, clock) -> tf.data.Dataset:
    from recctl.errors import RecctlError

    try:
        return sequence_training_dataset(
            snapshot,
            model.training_mode,
            model.max_length,
            batch_size,
            model.num_negatives,
            seed,
            clock,
            full_softmax=model.full_softmax,
        )
    except ValueError as exc:
        raise RecctlError(str(exc)) from None


def _user_vector_examples(
    model, snapshot, batch_size: int, seed: int, replicas: int, clock
) -> tf.data.Dataset:
    from recctl.errors import ConfigError

    micro = int(getattr(model, "micro_batch_size", 0) or 0)
    if replicas > 1 and micro:
        # Over replicas the model cannot loop over micro-batches inside one step (the optimizer's
        # cross-replica sync cannot sit in a loop), so the pipeline yields them: same updates.
        if micro % replicas:
            raise ConfigError(
                f"model.micro_batch_size={micro} is global and must split evenly over {replicas} replicas"
            )
        batch_size = micro
    return user_vector_training_dataset(snapshot, batch_size, seed, clock)


# The training data of each input kind (models/base.py): the one place that picks it.
TRAINING_DATA = {
    "id": _id_examples,
    "sequence": _sequence_examples,
    "user_vector": _user_vector_examples,
}


def training_dataset(
    model, snapshot, batch_size: int, seed: int, replicas: int = 1, clock: EpochClock | None = None
) -> tf.data.Dataset:
    """The model's training examples, batched (`batch_size` is global over the replicas)."""
    return TRAINING_DATA[model.input_kind](model, snapshot, int(batch_size), seed, replicas, clock)
