"""Timestamp ties (issue #15): the csv default `dataset.ties=hash` makes the split independent of the
file's row order; `row` keeps the file's order and warns when that order follows item ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir

from recctl.config import checked_dataset
from recctl.data.prepare import ensure_snapshot


def _coarse_log(n_users: int = 200, n_items: int = 120, per_user: int = 20) -> pd.DataFrame:
    """Interactions whose timestamps have day resolution: most of a user's rows share one."""
    rng = np.random.default_rng(3)
    rows = [
        (f"u{u}", int(i) + 1, int(rng.integers(0, 4)) * 86_400)
        for u in range(n_users)
        for i in rng.choice(n_items, size=per_user, replace=False)
    ]
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


def _dataset(path: Path, *overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "prepare",
            ["dataset=csv", f"dataset.path={path}", "dataset.columns.timestamp=ts", *overrides],
        )
    return checked_dataset(cfg.dataset)


def _split(snapshot) -> dict[str, pd.DataFrame]:
    ids = snapshot.user_ids, snapshot.item_ids
    out = {}
    for name in ("train", "valid", "test"):
        users, items = snapshot.pairs(name)
        out[name] = (
            pd.DataFrame({"user": ids[0][users], "item": ids[1][items]})
            .sort_values(["user", "item"])
            .reset_index(drop=True)
        )
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ties")
    log = _coarse_log()
    # Sorted by user then item id (numeric order of the ids), as many exports are; and shuffled.
    by_item = log.sort_values(["user", "item"])
    shuffled = log.sample(frac=1.0, random_state=7)
    paths = {"by_item": folder / "by_item.csv", "shuffled": folder / "shuffled.csv"}
    by_item.to_csv(paths["by_item"], index=False)
    shuffled.to_csv(paths["shuffled"], index=False)
    return paths


def test_csv_default_gives_the_same_split_in_any_file_order(files, tmp_path):
    snaps = {name: ensure_snapshot(_dataset(path), tmp_path / name, 42)[0] for name, path in files.items()}
    assert snaps["by_item"].stats["ties"] == "hash"
    a, b = _split(snaps["by_item"]), _split(snaps["shuffled"])
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(a[name], b[name])
    tied = snaps["by_item"].stats["tied_targets"]
    assert tied["test"] > 0.5  # most held-out rows share their timestamp: the rule decided them
    protocol = snaps["by_item"].split_description()
    assert "ties by a hash of user and item ids" in protocol and f"{tied['test']:.0%} of test" in protocol


def test_row_rule_follows_the_file_and_warns_when_it_is_in_item_order(files, tmp_path, capsys):
    by_item = ensure_snapshot(_dataset(files["by_item"], "dataset.ties=row"), tmp_path / "a", 42)[0]
    warned = capsys.readouterr().err
    assert "item-id order in the file" in warned and "dataset.ties=hash" in warned
    shuffled = ensure_snapshot(_dataset(files["shuffled"], "dataset.ties=row"), tmp_path / "b", 42)[0]
    assert "item-id order" not in capsys.readouterr().err
    assert not _split(by_item)["test"].equals(_split(shuffled)["test"])
    # Held out by the file's order, the test items of a user sorted by item are the highest ids of
    # the last day: far above the median id.
    test_items = _split(by_item)["test"]["item"].astype(int)
    assert test_items.median() > 80


def test_the_row_rule_keeps_the_fingerprint_of_snapshots_made_before_the_key(files):
    from omegaconf import OmegaConf

    from recctl.data.prepare import fingerprint

    row = _dataset(files["shuffled"], "dataset.ties=row")
    settings = OmegaConf.to_container(row)
    del settings["ties"]  # the settings of a snapshot made before dataset.ties existed
    legacy = OmegaConf.create(settings)
    hashed = _dataset(files["shuffled"])
    files_list = [files["shuffled"]]
    assert fingerprint(row, 42, files_list) == fingerprint(legacy, 42, files_list)
    assert fingerprint(hashed, 42, files_list) != fingerprint(row, 42, files_list)


@pytest.mark.slow
def test_a_sequence_model_scores_the_same_on_any_file_order_under_the_defaults(tmp_path):
    """Coarse timestamps, a file sorted by user then item: under `row` the held-out items follow
    item ids, so the figure depends on the file's order; under the csv default `hash` it does not
    (BENCHMARKS.md, issue #15, has the measured figures)."""
    from conftest import recctl_json

    log = _coarse_log(n_users=1000, n_items=300, per_user=30)
    files = {"by_item": log.sort_values(["user", "item"]), "shuffled": log.sample(frac=1.0, random_state=7)}
    figures = {}
    for name, frame in files.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        for ties in ("hash", "row"):
            result = recctl_json(
                "train",
                "model=lstm",
                "dataset=csv",
                f"dataset.path={path}",
                "dataset.columns.timestamp=ts",
                f"dataset.ties={ties}",
                "trainer.epochs=10",
                "evaluation.bootstrap=0",
                cwd=tmp_path,
                timeout=1200,
            )
            figures[name, ties] = result["metrics"]["test"]["ndcg@10"]
    print(figures)
    hashed = figures["by_item", "hash"], figures["shuffled", "hash"]
    assert abs(hashed[0] - hashed[1]) <= 0.2 * max(hashed), figures
    # Under `row` the file order decides the split, and with it the figure.
    assert figures["by_item", "row"] != figures["shuffled", "row"], figures
