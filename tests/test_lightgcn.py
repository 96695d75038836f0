"""model=lightgcn (issue #16): LightGCN and NGCF over the training split's normalised user-item graph.

The contract (shapes, pairwise scores = score_all), the graph (the train pairs only, symmetric
normalisation), learning on tiny data, the `.keras` round trip in safe mode, and, through the CLI,
train -> export and a warm start whose graph is rebuilt from the new data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, recctl_json

from recctl.tfenv import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from recctl.models.lightgcn import LightGCN, normalised_edges  # noqa: E402

N_USERS, N_ITEMS = 7, 11
VARIANTS = ("lightgcn", "ngcf")


def _pairs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = np.concatenate([np.arange(N_USERS), rng.integers(0, N_USERS, 30)])
    items = np.concatenate([rng.integers(0, N_ITEMS, N_USERS), rng.integers(0, N_ITEMS, 30)])
    return users.astype(np.int32), items.astype(np.int32)


def _model(variant: str, **kw) -> LightGCN:
    model = LightGCN(N_USERS, N_ITEMS, variant=variant, embedding_dim=4, num_layers=2, **kw)
    model.load_tables({"train_pairs": _pairs()})
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_contract_and_safe_mode_round_trip(variant, tmp_path):
    model = _model(variant, message_dropout=0.1 if variant == "ngcf" else 0.0)
    users = np.array([0, 3, 6], np.int32)
    scores = np.asarray(model.score_all(users))
    width = 4 if variant == "lightgcn" else 4 * 3  # ngcf concatenates layers 0..2
    assert scores.shape == (3, N_ITEMS)
    assert np.asarray(model.propagate()[1]).shape == (N_ITEMS, width)
    items = np.array([[0, 5], [10, 2], [3, 3]], np.int32)
    pairs = np.asarray(model.score_pairs(users, items))
    np.testing.assert_allclose(pairs, np.take_along_axis(scores, items, axis=1), rtol=1e-5, atol=1e-6)

    path = tmp_path / "m.keras"
    model.save(path)
    import recctl.models.registry  # noqa: F401

    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert loaded.n_edges == model.n_edges and loaded.variant == variant
    np.testing.assert_array_equal(np.asarray(loaded.score_all(users)), scores)


def test_graph_is_the_normalised_train_pairs_only():
    train_users, train_items = _pairs()
    valid = (2, int(np.setdiff1d(np.arange(N_ITEMS), train_items[train_users == 2])[0]))  # not in train
    model = _model("lightgcn")
    edges = set(
        zip(np.asarray(model.edge_users).tolist(), np.asarray(model.edge_items).tolist(), strict=True)
    )
    assert edges == set(zip(train_users.tolist(), train_items.tolist(), strict=True))  # duplicates once
    assert valid not in edges
    # symmetric normalisation: w_ui = 1 / sqrt(deg(u) deg(i)) over the distinct pairs
    eu, ei, w = (np.asarray(t) for t in (model.edge_users, model.edge_items, model.edge_weights))
    deg_u, deg_i = np.bincount(eu, minlength=N_USERS), np.bincount(ei, minlength=N_ITEMS)
    np.testing.assert_allclose(w, 1 / np.sqrt(deg_u[eu] * deg_i[ei]), rtol=1e-6)
    # one propagation step equals the dense normalised adjacency times the embeddings
    dense = np.zeros((N_USERS, N_ITEMS), np.float32)
    dense[eu, ei] = w
    one = LightGCN(N_USERS, N_ITEMS, embedding_dim=4, num_layers=1)
    one.load_tables({"train_pairs": (train_users, train_items)})
    p, q = np.asarray(one.user_embedding.embeddings), np.asarray(one.item_embedding.embeddings)
    users, items = (np.asarray(t) for t in one.propagate())
    np.testing.assert_allclose(users, (p + dense @ q) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(items, (q + dense.T @ p) / 2, rtol=1e-5, atol=1e-6)


def test_arguments_and_tables_are_checked():
    with pytest.raises(ValueError, match="variant should be one of lightgcn, ngcf"):
        LightGCN(N_USERS, N_ITEMS, variant="gcn")
    with pytest.raises(ValueError, match="num_layers should be a non-negative integer"):
        LightGCN(N_USERS, N_ITEMS, num_layers=-1)
    with pytest.raises(ValueError, match="loss should be one of bpr, softmax"):
        LightGCN(N_USERS, N_ITEMS, loss="bce")
    with pytest.raises(ValueError, match="graph is not loaded"):
        LightGCN(N_USERS, N_ITEMS).score_all(np.array([0], np.int32))
    with pytest.raises(ValueError, match="graph has 3 edges and the data"):
        LightGCN(N_USERS, N_ITEMS, n_edges=3).load_tables({"train_pairs": _pairs()})
    with pytest.raises(ValueError, match="outside the catalogue"):
        normalised_edges(np.array([0]), np.array([N_ITEMS]), N_USERS, N_ITEMS)


@pytest.mark.parametrize("variant,loss", [("lightgcn", "softmax"), ("ngcf", "bpr")])
def test_learns_two_communities(variant, loss):
    """Two user groups, each with its own items: after a few epochs a user's held-out item (from its
    group) ranks far above random, and the training loss has fallen."""
    from recctl.data.pipelines import EpochClock, id_training_dataset

    rng = np.random.default_rng(1)
    n_users, n_items = 60, 40
    group = np.arange(n_users) % 2
    users, items, held = [], [], []
    for u in range(n_users):
        own = rng.permutation(np.arange(group[u], n_items, 2))[:9]  # the group's items: even or odd
        users += [u] * 8
        items += own[:8].tolist()
        held.append(own[8])
    users, items = np.array(users, np.int32), np.array(items, np.int32)
    keras.utils.set_random_seed(0)
    model = LightGCN(
        n_users, n_items, variant=variant, embedding_dim=8, num_layers=2, loss=loss, num_negatives=4
    )
    model.load_tables({"train_pairs": (users, items)})
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=model.training_loss(), jit_compile=False)
    data = id_training_dataset(users, items, n_items, 64, model.num_negatives, 0, EpochClock())
    history = model.fit(data, epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0], history

    scores = np.array(model.score_all(np.arange(n_users, dtype=np.int32)))
    scores[users, items] = -np.inf  # the training items are masked, as evaluation does
    rank = (scores > scores[np.arange(n_users), held][:, None]).sum(axis=1)
    assert np.mean(rank < 10) > 0.6  # random: about 10 / 32 of the unmasked items


def _run_dir(result: dict, cwd: Path) -> Path:
    path = Path(result["run_dir"])
    return path if path.is_absolute() else cwd / path


@pytest.fixture(scope="module")
def lightgcn_run(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("lightgcn")
    result = recctl_json(
        "train",
        "model=lightgcn",
        *TINY,
        "trainer.epochs=2",
        "logger=none",
        "model.embedding_dim=16",
        cwd=work,
    )
    assert result["status"] == "ok" and result["model"] == "lightgcn"
    return work, _run_dir(result, work)


def test_train_then_export_through_the_cli(lightgcn_run):
    from recctl.runs import load_run

    work, run_dir = lightgcn_run
    loaded = load_run(run_dir)
    model, snapshot = loaded.model, loaded.snapshot
    # the saved graph is the snapshot's training split: no validation or test pair in it
    edges = set(
        zip(np.asarray(model.edge_users).tolist(), np.asarray(model.edge_items).tolist(), strict=True)
    )
    train = set(zip(*(a.tolist() for a in snapshot.pairs("train")), strict=True))
    assert edges == train
    for split in ("valid", "test"):
        held_out = set(zip(*(a.tolist() for a in snapshot.pairs(split)), strict=True)) - train
        assert held_out and not held_out & edges

    exported = recctl_json("export", "run=latest", "export.k=5", cwd=work)
    folder = Path(exported["export_dir"])
    assert exported["format"] == "saved_model" and (folder / "saved_model.pb").is_file()
    served = tf.saved_model.load(str(folder)).signatures["serving_default"]
    user_ids = [str(u) for u in snapshot.user_ids[:3]]
    out = served(user_id=tf.constant(user_ids))
    scores = np.array(model.score_all(np.arange(3, dtype=np.int32)))
    seen = snapshot.csr("train", "valid", "test")
    for row in range(3):
        scores[row, seen.indices[seen.indptr[row] : seen.indptr[row + 1]]] = -np.inf
    np.testing.assert_allclose(out["scores"].numpy(), -np.sort(-scores, axis=1)[:, :5], rtol=1e-5, atol=1e-5)


def test_init_from_remaps_embeddings_and_rebuilds_the_graph(lightgcn_run):
    """Warm start (what `train init_from=RUN` runs) onto data with 20 fewer users: the kept users'
    and items' rows are carried over, the edge tables (another size) come from the new training split."""
    from omegaconf import OmegaConf

    from recctl.data.prepare import ensure_snapshot
    from recctl.runs import load_run
    from recctl.training.factory import build_model
    from recctl.training.warm_start import carry_over

    work, old_run = lightgcn_run
    old = load_run(old_run)
    dataset = OmegaConf.merge(old.config.dataset, {"synthetic": {"n_users": 280}})
    snapshot, _ = ensure_snapshot(dataset, work / old.config.paths.data_dir, int(old.config.seed))
    model = build_model(old.config.model, snapshot)
    report = carry_over(model, old_run, snapshot)
    assert report["remapped"] == 2 and report["copied"] == 0
    assert sorted(report["rebuilt_from_data"]) == ["edge_items", "edge_users", "edge_weights"]
    assert report["ids"]["user"]["kept"] > 200 and report["ids"]["user"]["dropped"] >= 20

    train = set(zip(*(a.tolist() for a in snapshot.pairs("train")), strict=True))
    assert model.n_edges == len(train) != old.model.n_edges
    for table, ids, old_ids in (
        ("user_embedding", snapshot.user_ids, old.snapshot.user_ids),
        ("item_embedding", snapshot.item_ids, old.snapshot.item_ids),
    ):
        before = dict(zip(old_ids, np.asarray(old.model.get_layer(table).embeddings), strict=True))
        after = dict(zip(ids, np.asarray(model.get_layer(table).embeddings), strict=True))
        kept = [k for k in after if k in before]
        assert len(kept) == report["ids"][table.split("_")[0]]["kept"]
        assert all(np.array_equal(after[k], before[k]) for k in kept)


@pytest.mark.slow
def test_onnx_and_litert_exports_check_themselves(tmp_path):
    """Both variants through ONNX and LiteRT: each format's own runtime check (its top-10 against
    the TensorFlow function it was converted from) finds the same items. Dynamic-range LiteRT does
    not shrink these models: the propagated matrices are computed, not constant weights."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from recctl.export.registry import FORMATS, ExportJob
    from recctl.runs import load_run

    work = tmp_path / "runs"
    work.mkdir()
    for variant in VARIANTS:
        args = (
            "train",
            "model=lightgcn",
            f"model.variant={variant}",
            *TINY,
            "trainer.epochs=1",
            "logger=none",
        )
        run_dir = _run_dir(recctl_json(*args, cwd=work), work)
        loaded = load_run(run_dir)
        for fmt in ("onnx", "litert"):
            folder = tmp_path / f"{variant}-{fmt}"
            folder.mkdir()
            info = FORMATS[fmt].load().write(ExportJob(loaded.model, loaded.snapshot, run_dir, folder, 10))
            assert (folder / info["file"]).is_file()
            assert info["checked"]["top_k_overlap"] == 1.0, (variant, fmt, info["checked"])
