"""`train init_from=RUN` (issue #6): known users and items keep their trained rows through changed
id maps, new ones start fresh, data tables come from the new data, and the model config must match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recctl.errors import ConfigError
from recctl.models.base import IdAxis
from recctl.training.warm_start import _remap
from tests.conftest import recctl, recctl_json


def _interactions(users: list[str], items: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in users:
        for t, i in enumerate(rng.choice(items, size=12, replace=False)):
            rows.append((u, i, t))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


def _rows(run_dir: Path, layer: str) -> dict[str, np.ndarray]:
    """Original id -> that id's row of an mf embedding table, read from the saved model."""
    import keras

    import recctl.models.registry  # noqa: F401

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True, compile=False)
    table = np.asarray(model.get_layer(layer).embeddings)
    snapshot = Path(json.loads((run_dir / "manifest.json").read_text())["snapshot"])
    ids = pd.read_parquet(snapshot / ("users.parquet" if "user" in layer else "items.parquet"))
    column = "user_id" if "user" in layer else "item_id"
    return dict(zip(ids[column].astype(str), table, strict=True))


@pytest.mark.slow  # CI time: covered in make test-all
def test_init_from_carries_known_ids_through_changed_id_maps(tmp_path):
    old_users = [f"u{n}" for n in range(120)]
    old_items = [f"i{n}" for n in range(60)]
    _interactions(old_users, old_items, 0).to_csv(tmp_path / "old.csv", index=False)
    # the fresh data: 20 users gone, 30 new ones, 10 new items (every index after them shifts)
    new_users = old_users[20:] + [f"n{n}" for n in range(30)]
    new_items = old_items + [f"j{n}" for n in range(10)]
    _interactions(new_users, new_items, 1).to_csv(tmp_path / "new.csv", index=False)
    common = [
        "dataset=csv",
        "dataset.columns.timestamp=timestamp",
        "logger=none",
        "trainer.early_stopping=false",
    ]

    first = recctl_json("train", *common, "dataset.path=old.csv", "trainer.epochs=3", cwd=tmp_path)
    old_run = Path(first["run_dir"])

    bad = recctl(
        "train",
        *common,
        "dataset.path=new.csv",
        f"init_from={old_run}",
        "model.embedding_dim=16",
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "model.embedding_dim is 16 here but 64 in that run" in bad.stderr

    # a learning rate of ~0 keeps the starting point visible after one epoch
    second = recctl_json(
        "train",
        *common,
        "dataset.path=new.csv",
        f"init_from={old_run}",
        "trainer.epochs=1",
        "optimizer.learning_rate=1e-12",
        cwd=tmp_path,
    )
    new_run = Path(second["run_dir"])
    report = json.loads((new_run / "manifest.json").read_text())["init_from"]
    assert report["ids"]["user"] == {"kept": 100, "new": 30, "dropped": 20}
    assert report["ids"]["item"] == {"kept": 60, "new": 10, "dropped": 0}
    assert report["remapped"] == 3 and report["copied"] == 0

    for layer in ("user_embedding", "item_embedding"):
        before, after = _rows(old_run, layer), _rows(new_run, layer)
        kept = [k for k in after if k in before]
        assert kept and all(np.allclose(after[k], before[k], atol=1e-6) for k in kept)
        fresh = [k for k in after if k not in before]
        assert fresh and not any(np.allclose(after[k], v, atol=1e-6) for k in fresh for v in before.values())

    # trainer.carry_optimizer=true (issue #17): the optimizer state comes along, remapped like the weights
    from recctl.training.warm_start import saved_optimizer_state

    refused = recctl(
        "train", *common, "dataset.path=new.csv", f"init_from={old_run}", "trainer.carry_optimizer=true",
        "optimizer=sgd", cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 2 and "an optimizer state only carries to the same class" in refused.stderr
    third = recctl_json(
        "train", *common, "dataset.path=new.csv", f"init_from={old_run}", "trainer.epochs=1",
        "trainer.carry_optimizer=true", cwd=tmp_path,
    )  # fmt: skip
    carried = json.loads((Path(third["run_dir"]) / "manifest.json").read_text())["init_from"]["optimizer"]
    steps = int(saved_optimizer_state(old_run)[1][0])
    assert carried["iterations"] == steps and carried["remapped"] == 6 and carried["from"] == "model.keras"
    assert int(saved_optimizer_state(Path(third["run_dir"]))[1][0]) > steps  # and it counted on


def test_remap_moves_rows_by_id_and_keeps_special_rows():
    # old ids a, b, c (+ a padding row first and an "unknown" row last); new ids c, x, a
    old = np.array([[0.0], [1.0], [2.0], [3.0], [9.0]])
    fresh = np.full((5, 1), -1.0)
    positions = pd.Index(["a", "b", "c"]).get_indexer(["c", "x", "a"])
    out = _remap(old, fresh, IdAxis("item", leading=1, trailing=1), positions, "t", "run")
    assert out[:, 0].tolist() == [0.0, 3.0, -1.0, 1.0, 9.0]
    # ids along axis 1 (an output layer's kernel)
    kernel = np.arange(6.0).reshape(2, 3)
    out = _remap(kernel, np.zeros((2, 3)), IdAxis("item", axis=1), positions, "k", "run")
    assert out.tolist() == [[2.0, 0.0, 0.0], [5.0, 0.0, 3.0]]
    with pytest.raises(ConfigError, match="one row per item id"):
        _remap(old, np.zeros((4, 1)), IdAxis("item", leading=1, trailing=1), positions, "t", "run")


def test_a_sequence_run_saved_before_model_softmax_reads_as_sampled(tmp_path):
    from omegaconf import OmegaConf

    from recctl.training.warm_start import check_same_model

    old = {"_target_": "recctl.models.lstm.RecurrentRecommender", "max_length": 10, "num_negatives": 128}
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml({"model": old}))
    check_same_model(tmp_path, OmegaConf.create({**old, "softmax": "sampled"}))
    with pytest.raises(ConfigError, match=r"model.softmax is 'auto' here but 'sampled' in that run"):
        check_same_model(tmp_path, OmegaConf.create({**old, "softmax": "auto"}))


# Issue #17 part 5: trainer.carry_optimizer=true keeps the optimizer state across a warm start.


def _source_run(work: Path) -> Path:
    return sorted(p for p in (work / "outputs" / "runs").iterdir() if (p / "model.keras").is_file())[0]


def _warm_started(run_dir: Path, carry: bool):
    """What `fit` does for `train init_from=run_dir` on the run's own snapshot (every id unchanged)."""
    from omegaconf import OmegaConf

    from recctl.runs import load_run
    from recctl.training.factory import build_model, build_optimizer
    from recctl.training.warm_start import carry_over

    cfg = OmegaConf.load(run_dir / "config.yaml")
    snapshot = load_run(run_dir, with_model=False).snapshot
    model = build_model(cfg.model, snapshot)
    model.compile(optimizer=build_optimizer(cfg.optimizer), loss=model.training_loss(), jit_compile=False)
    return model, snapshot, carry_over(model, run_dir, snapshot, carry_optimizer=carry)


def test_carry_optimizer_continues_the_source_runs_optimizer_state(trained_workdir: Path, tmp_path: Path):
    from omegaconf import OmegaConf

    from recctl.data.pipelines import EpochClock, training_dataset
    from recctl.training.warm_start import check_same_optimizer, saved_optimizer_state, warm_start_run

    run_dir = _source_run(trained_workdir)
    source, saved = saved_optimizer_state(run_dir)
    assert source == "model.keras" and int(saved[0]) > 0  # iterations: the source run's steps

    model, snapshot, report = _warm_started(run_dir, carry=True)
    optimizer = model.optimizer
    assert int(optimizer.iterations) == int(saved[0]) == report["optimizer"]["iterations"]
    assert report["optimizer"]["remapped"] == 6  # m and v of the three id-indexed weights
    for variable, value in zip(optimizer.variables, saved, strict=True):
        if variable.name != "learning_rate":  # the learning rate is this run's config
            np.testing.assert_array_equal(np.asarray(variable), value)  # every id is unchanged here
    dataset = training_dataset(model, snapshot, 256, 0, 1, EpochClock(0)).take(2)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert int(optimizer.iterations) == int(saved[0]) + 2  # the step count continues

    fresh, _, report = _warm_started(run_dir, carry=False)
    assert int(fresh.optimizer.iterations) == 0 and "optimizer" not in report

    # refusals, before any data is read: another optimizer class, a run with no optimizer state
    with pytest.raises(
        ConfigError, match="trained with keras.optimizers.Adam, this run uses keras.optimizers.SGD"
    ):
        check_same_optimizer(run_dir, OmegaConf.create({"_target_": "keras.optimizers.SGD"}))
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "manifest.json"):
        (bare / name).write_bytes((run_dir / name).read_bytes())
    plain = model.__class__.from_config(model.get_config())  # never compiled: saved without an optimizer
    plain.set_weights(model.get_weights())
    plain.save(bare / "model.keras")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    with pytest.raises(ConfigError, match="has no optimizer state saved"):
        warm_start_run(str(bare), tmp_path, cfg.model, cfg.optimizer, carry_optimizer=True)
    assert warm_start_run(str(bare), tmp_path, cfg.model, cfg.optimizer) == bare  # without carrying: fine
