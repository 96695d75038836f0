"""model=deepfm (issue #16): DeepFM, xDeepFM and DCN-v2 over ids and side features, one family whose
`variant` picks the interaction block. The contract per variant, the tasks shared with wide_deep,
learning a planted interaction, the .keras round trip in safe mode and one CLI run + export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, recctl_json

from recctl.tfenv import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

import recctl.models.registry  # noqa: E402,F401  (safe-mode loading finds the family)
from recctl.evaluation.metrics import binary_auc  # noqa: E402
from recctl.models.deepfm import DeepFM  # noqa: E402
from recctl.models.wide_deep import WideDeep  # noqa: E402

N_USERS, N_ITEMS = 7, 11
SMALL = dict(embedding_dim=4, hidden_units=[8, 4], cin_units=[4, 3])
# every interaction block; dcn also in its parallel, low-rank form
VARIANTS = {
    "deepfm": dict(variant="deepfm"),
    "xdeepfm": dict(variant="xdeepfm"),
    "dcn": dict(variant="dcn"),
    "dcn-parallel-lowrank": dict(variant="dcn", structure="parallel", projection_dim=2),
}


def _tables(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "user_categorical": rng.integers(1, 3, size=(N_USERS, 2)).astype(np.int32),
        "item_categorical": rng.integers(1, 4, size=(N_ITEMS, 1)).astype(np.int32),
        "user_numeric": rng.random((N_USERS, 1)).astype(np.float32),
        "item_numeric": rng.integers(0, 2, size=(N_ITEMS, 3)).astype(np.float32),
    }


def _model(**kw) -> DeepFM:
    return DeepFM(
        N_USERS, N_ITEMS, user_categorical=[3, 3], item_categorical=[4], user_numeric=1, item_numeric=3, **kw
    )


@pytest.mark.parametrize("name", list(VARIANTS))
def test_contract_side_features_and_keras_round_trip(name, tmp_path):
    model = _model(**SMALL, **VARIANTS[name])
    tables = _tables()
    model.load_tables(tables)
    users = np.array([0, 3, 6], np.int32)
    scores = np.asarray(model.score_all(users))
    assert scores.shape == (3, N_ITEMS) and np.all(np.isfinite(scores))
    # score_all (whole catalogue, user/item halves split) agrees with the pairs training scores
    items = np.array([[0, 5], [10, 2], [3, 3]], np.int32)
    pairs = np.asarray(model.score_pairs(users, items))
    np.testing.assert_allclose(pairs, np.take_along_axis(scores, items, axis=1), rtol=1e-5, atol=1e-6)

    # the saved file is self-contained: same scores after a safe-mode load
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(loaded.score_all(users)), scores, rtol=1e-6)

    # scores depend on every kind of side feature, user side and item side
    for key, row in (
        ("user_categorical", 0),
        ("user_numeric", 0),
        ("item_categorical", 5),
        ("item_numeric", 5),
    ):
        changed = {k: v.copy() for k, v in tables.items()}
        changed[key][row] = 2 if key.endswith("categorical") else 1 - changed[key][row]
        if np.array_equal(changed[key], tables[key]):
            changed[key][row] = 1
        model.load_tables(changed)
        moved = np.abs(np.asarray(model.score_all(users)) - scores)
        if key.startswith("user"):
            assert moved[0].max() > 1e-7 and moved[1:].max() == 0, key  # only user 0's scores move
        else:
            assert moved[:, 5].max() > 1e-7 and np.delete(moved, 5, axis=1).max() == 0, key
        model.load_tables(tables)


def test_arguments_are_validated_and_tasks_are_wide_deeps():
    assert DeepFM.tasks is WideDeep.tasks  # one list of tasks for the side-feature families
    with pytest.raises(ValueError, match="variant should be one of deepfm, xdeepfm, dcn"):
        _model(variant="fm")
    with pytest.raises(ValueError, match="structure should be one of stacked, parallel"):
        _model(variant="dcn", structure="wide")
    with pytest.raises(ValueError, match="task should be one of"):
        _model(task="pairwise")
    with pytest.raises(ValueError, match="loss=bce"):
        _model(task="ctr", loss="bpr")
    with pytest.raises(ValueError, match="cin_units"):
        _model(variant="xdeepfm", cin_units=[])
    with pytest.raises(ValueError, match="cross_layers should be positive"):
        _model(variant="dcn", cross_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        _model(dropout=1.0)


def _planted(seed: int = 0):
    """Labelled (user, item) rows whose label is an interaction of side features only: 1 when the
    user's category equals the item's (10% of labels flipped). No first-order term can learn it."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_cat = 80, 60, 3
    user_cat = rng.integers(1, n_cat + 1, size=n_users).astype(np.int32)
    item_cat = rng.integers(1, n_cat + 1, size=n_items).astype(np.int32)
    users, items = (a.ravel() for a in np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij"))
    labels = (user_cat[users] == item_cat[items]).astype(np.float32)
    labels = np.where(rng.random(len(labels)) < 0.1, 1 - labels, labels)
    order = rng.permutation(len(users))
    tables = {
        "user_categorical": user_cat[:, None],
        "item_categorical": item_cat[:, None],
        "user_numeric": np.zeros((n_users, 0), np.float32),
        "item_numeric": np.zeros((n_items, 0), np.float32),
    }
    return (
        n_users,
        n_items,
        n_cat,
        tables,
        users[order].astype(np.int32),
        items[order].astype(np.int32),
        labels[order],
    )


@pytest.mark.parametrize(
    "variant",
    [pytest.param("deepfm", marks=pytest.mark.slow), "xdeepfm", pytest.param("dcn", marks=pytest.mark.slow)],
)
def test_learns_a_planted_feature_interaction(variant):
    keras.utils.set_random_seed(0)
    n_users, n_items, n_cat, tables, users, items, labels = _planted()
    model = DeepFM(
        n_users,
        n_items,
        user_categorical=[n_cat + 1],
        item_categorical=[n_cat + 1],
        variant=variant,
        task="ctr",
        embedding_dim=8,
        hidden_units=[16],
        cin_units=[8],
        dropout=0.0,
    )
    model.load_tables(tables)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=model.training_loss())
    cut = int(0.8 * len(users))
    train = {"user": users[:cut], "items": items[:cut, None]}
    model.fit(train, labels[:cut, None], batch_size=256, epochs=6, verbose=0)
    scores = np.asarray(model.score_pairs(users[cut:], items[cut:, None])).ravel()
    assert binary_auc(labels[cut:], scores) > 0.8  # the planted signal caps it near 0.9


@pytest.mark.slow  # CI time: the CTR CLI path is test_ctr.py's; deepfm/xdeepfm/dcn learning is tested above
def test_cli_trains_dcn_on_the_ctr_task_and_exports(tmp_path: Path):
    result = recctl_json(
        "train",
        "model=deepfm",
        "model.variant=dcn",
        "model.task=ctr",
        "dataset.label_threshold=4",
        "dataset.split=random",
        *TINY,
        "trainer.epochs=2",
        "trainer.checkpoint=false",
        "logger=none",
        "optimizer.learning_rate=0.005",
        cwd=tmp_path,
    )
    assert result["status"] == "ok"
    test = result["metrics"]["test"]
    assert set(test) == {"auc", "logloss"} and test["auc"] > 0.55
    exported = recctl_json("export", "run=latest", cwd=tmp_path)
    assert (Path(exported["export_dir"]) / "saved_model.pb").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["deepfm", "xdeepfm", "dcn"])
def test_ctr_bar_on_ml100k(variant, ml100k_dir: Path, tmp_path: Path):
    result = recctl_json(
        "train", f"experiment=ml100k_{variant}_ctr", f"dataset.root={ml100k_dir}", cwd=tmp_path, timeout=1200
    )
    assert result["metrics"]["test"]["auc"] >= 0.785  # wide_deep's experiment=ml100k_ctr: 0.7862
