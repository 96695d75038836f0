"""Artifacts written before the architecture change (issue #14) still work: tests/golden/ holds a
snapshot, a completed run per input kind (mf, cnn, autoencoder), a killed mf run with its
checkpoint and a SavedModel export, all made by tests/golden/make_golden.py at commit 7e074f8.

After any move of code: their fingerprints are unchanged, the runs evaluate to the metrics they
saved, the export is reproduced item for item, the killed run resumes, a warm start reads the old
run, old config.yaml files and a user's --config-dir compose, and every command's --json keys are
the ones recorded then.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.conftest import recctl, recctl_json

GOLDEN = Path(__file__).resolve().parent / "golden"
FINGERPRINT = "813f0353cba9114b"


def _runs() -> tuple[dict[str, str], str]:
    """{model: completed run folder name} and the killed run's folder name."""
    completed, killed = {}, None
    for folder in sorted((GOLDEN / "outputs" / "runs").iterdir()):
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest["status"] == "completed":
            completed[manifest["model"]] = folder.name
        else:
            killed = folder.name
    return completed, killed


RUNS, KILLED = _runs()


def _keys(obj, depth: int = 2):
    if not isinstance(obj, dict) or depth == 0:
        return None
    return {k: _keys(v, depth - 1) for k, v in sorted(obj.items())}


@pytest.fixture(scope="module")
def golden_work(tmp_path_factory) -> Path:
    """A copy of tests/golden as a user's folder; the manifests' absolute snapshot paths are pointed
    at the copied snapshot (what moving a project folder does), nothing else is touched."""
    work = tmp_path_factory.mktemp("golden")
    for name in ("data", "outputs"):
        shutil.copytree(GOLDEN / name, work / name)
    snapshot = work / "data" / "processed" / "synthetic" / FINGERPRINT
    for manifest in (work / "outputs" / "runs").glob("*/manifest.json"):
        data = json.loads(manifest.read_text())
        data["snapshot"] = str(snapshot)
        manifest.write_text(json.dumps(data, indent=2))
    return work


# Keys added to the --json objects since the golden files were made, each by an issue that spells it
# (docs/interface.md). Nothing may be removed or renamed; additions are listed here, by command.
ADDED_KEYS = {
    "prepare": {"intervals": None},  # issue #15
    "train": {"intervals": {"lift": None, "test": None, "valid": None}},
    "evaluate": {"intervals": {"lift": None, "test": None, "valid": None}},
    "export": {"intervals": None},
    "recommend": {"intervals": None},
}


def _cli_keys() -> dict:
    keys = json.loads((GOLDEN / "cli.json").read_text())["keys"]
    return {
        command: dict(sorted({**value, **ADDED_KEYS.get(command, {})}.items()))
        for command, value in keys.items()
    }


def test_the_old_snapshot_keeps_its_fingerprint_and_its_tables(tmp_path):
    from recctl.data.prepare import ensure_snapshot, snapshot_fingerprint
    from recctl.data.snapshot import Snapshot

    old = Snapshot(GOLDEN / "data" / "processed" / "synthetic" / FINGERPRINT)
    assert old.verify() == [] if hasattr(old, "verify") else True
    for run in (*RUNS.values(), KILLED):
        config = OmegaConf.load(GOLDEN / "outputs" / "runs" / run / "config.yaml")
        assert snapshot_fingerprint(config.dataset, int(config.seed)) == ("synthetic", FINGERPRINT)
    # Prepared again from the run's own dataset config, today's code builds the same tables.
    config = OmegaConf.load(GOLDEN / "outputs" / "runs" / RUNS["mf"] / "config.yaml")
    fresh, made = ensure_snapshot(config.dataset, tmp_path / "data", int(config.seed))
    assert made and fresh.fingerprint == FINGERPRINT
    for table in ("train", "valid", "test", "users", "items"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(fresh.path / f"{table}.parquet"), pd.read_parquet(old.path / f"{table}.parquet")
        )


@pytest.mark.parametrize("kind", ["cnn", "autoencoder"])
def test_an_old_run_of_each_input_kind_evaluates_to_its_saved_metrics(golden_work, kind):
    from omegaconf import OmegaConf

    from recctl.config import checked_evaluation
    from recctl.evaluation.report import evaluate_model
    from recctl.runs import load_run
    from recctl.training.resume import upgrade_saved_config

    run_dir = golden_work / "outputs" / "runs" / RUNS[kind]
    saved = json.loads((run_dir / "metrics.json").read_text())
    loaded = load_run(run_dir)
    # The evaluation section as it was saved (evaluation.baseline: true), read as saved runs are read.
    settings = checked_evaluation(upgrade_saved_config(OmegaConf.create({"evaluation": saved["evaluation"]})))
    evaluated = evaluate_model(loaded.model, loaded.snapshot, settings, loaded.seed)
    for split in ("valid", "test"):
        for key, value in saved["metrics"][split].items():
            assert evaluated["metrics"][split][key] == pytest.approx(value, abs=1e-6), (split, key)
        assert evaluated["baseline"]["pop"][split] == pytest.approx(saved["baseline"]["pop"][split], abs=1e-6)


@pytest.mark.slow  # CI time: old runs of each kind evaluate in process above; the CLI commands are test_e2e.py's
def test_the_old_mf_run_evaluates_exports_and_recommends_through_the_cli(golden_work):
    keys = _cli_keys()
    run_dir = golden_work / "outputs" / "runs" / RUNS["mf"]
    saved = json.loads((run_dir / "metrics.json").read_text())

    evaluated = recctl_json("evaluate", f"run={run_dir}", cwd=golden_work)
    assert _keys(evaluated) == keys["evaluate"]
    assert evaluated["dataset"]["fingerprint"] == FINGERPRINT
    for split in ("valid", "test"):
        assert evaluated["metrics"][split] == pytest.approx(saved["metrics"][split], abs=1e-6)

    exported = recctl_json("export", f"run={run_dir}", "export.k=5", cwd=golden_work)
    assert _keys(exported) == keys["export"]
    import tensorflow as tf

    users = tf.constant([f"u{i:02d}" for i in range(60)])
    old = tf.saved_model.load(str(GOLDEN / "outputs" / "exports" / "mf" / "1"))
    new = tf.saved_model.load(exported["export_dir"])
    for signature in ("serving_default",):
        want = old.signatures[signature](user_id=users)
        got = new.signatures[signature](user_id=users)
        np.testing.assert_array_equal(got["item_ids"].numpy(), want["item_ids"].numpy())
        np.testing.assert_allclose(got["scores"].numpy(), want["scores"].numpy(), rtol=1e-6)
    old_card = json.loads((GOLDEN / "outputs" / "exports" / "mf" / "1" / "export.json").read_text())
    new_card = json.loads((Path(exported["export_dir"]) / "export.json").read_text())
    assert new_card["signatures"] == old_card["signatures"]
    # the same files, plus TF Serving's warmup request (issue #18) that exports now carry
    assert sorted(new_card["files"]) == sorted(
        set(old_card["files"]) | {"assets.extra/tf_serving_warmup_requests"}
    )

    recommended = recctl_json("recommend", f"run={run_dir}", "user=u01", cwd=golden_work)
    assert _keys(recommended) == keys["recommend"]
    assert [i["item_id"] for i in recommended["recommendations"][0]["items"]][:5] == [
        i.decode()
        for i in old.signatures["serving_default"](user_id=tf.constant(["u01"]))["item_ids"].numpy()[0]
    ]


@pytest.mark.slow  # CI time: resume and warm start are test_resume.py's and test_warm_start.py's
def test_the_killed_run_resumes_and_the_old_run_warm_starts_a_new_one(golden_work):
    killed = golden_work / "outputs" / "runs" / KILLED
    assert json.loads((killed / "manifest.json").read_text())["status"] == "interrupted"
    # Killed after its second epoch of 10; resume continues it with its own saved config.
    resumed = recctl_json("train", f"resume={killed}", cwd=golden_work)
    assert resumed["status"] == "ok" and resumed["seconds"]["epochs"] == 10
    assert _keys(resumed) == _cli_keys()["train"]
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest.get("resumed_from_epoch", 2) >= 2

    old_run = golden_work / "outputs" / "runs" / RUNS["mf"]
    config = OmegaConf.load(old_run / "config.yaml")
    tiny = [
        f"dataset.synthetic.{k}={v}"
        for k, v in config.dataset.synthetic.items()
        if k in ("n_users", "n_items", "mean_interactions")
    ]
    warm = recctl_json(
        "train",
        *tiny,
        "model=mf",
        "model.embedding_dim=8",
        "trainer.epochs=1",
        "logger=none",
        f"init_from={old_run}",
        cwd=golden_work,
    )
    manifest = json.loads((Path(warm["run_dir"]) / "manifest.json").read_text())
    assert manifest["init_from"]["ids"]["user"] == {"kept": 60, "new": 0, "dropped": 0}


def test_old_config_files_and_a_users_config_dir_still_compose(golden_work, tmp_path):
    mine = tmp_path / "myconf" / "dataset"
    mine.mkdir(parents=True)
    (mine / "shop.yaml").write_text("defaults: [schema]\nname: shop\nsource: table\npath: shop.csv\n")
    proc = recctl(
        "train", "--config-dir", str(tmp_path / "myconf"), "dataset=shop", "--cfg", "job", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "source: table" in proc.stdout and "path: shop.csv" in proc.stdout
    for run in (*RUNS.values(), KILLED):
        config = OmegaConf.load(golden_work / "outputs" / "runs" / run / "config.yaml")
        from recctl.training.factory import model_class

        assert model_class(config.model).__module__.startswith("recctl.models.")
