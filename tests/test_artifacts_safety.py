"""Artifacts are atomic and never clobbered; recctl writes no pickle and builds only allowed targets.

Issue #7 ("Reliability"):
- a `prepare` or `export` killed with SIGKILL midway leaves no visible snapshot or version, and the
  next command builds a complete one instead of reusing the partial folder (which it removes);
- concurrent writers never share a folder: two `prepare`s of one dataset, two `export`s of one run,
  a 4-job parallel multirun, and (in-process, many threads) version allocation itself;
- hygiene: no pickle in any file of a run, snapshot or export (nested zip members included), every
  `.keras` loads in safe mode, names cannot escape their folders, `_target_` is limited to
  recctl models and Keras optimizers.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, recctl, recctl_in_process, recctl_json

# Large enough that a prepare spends ~0.1 s writing its staging folder's files (polled every ms).
BIG = ["dataset.synthetic.n_users=10000", "dataset.synthetic.n_items=1000"]
MEDIUM = ["dataset.synthetic.n_users=3000", "dataset.synthetic.n_items=1000"]
TINY_DATA = [a for a in TINY if a.startswith("dataset.")]  # what `prepare` accepts
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


# ----------------------------------------------------------------------------------------- helpers


def _popen(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """`recctl --json ARGS` started in the background, as conftest.recctl runs it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "recctl", "--json", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err[-3000:]}"
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def _staging(parent: Path) -> list[Path]:
    return sorted(p for p in parent.glob(".tmp-*") if p.is_dir()) if parent.is_dir() else []


def _visible(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if not p.name.startswith(".")) if parent.is_dir() else []


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _kill_when_staged(
    proc: subprocess.Popen, parent: Path, timeout: float = 120
) -> tuple[Path, list[str]] | None:
    """Poll every millisecond until a staging folder under `parent` holds a file, then SIGKILL the
    process (and reap it, so its pid is really gone). Returns (that folder, its files after the
    kill), or None when the process finished before it could be caught."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in _staging(parent):
            try:
                has_file = any(p.is_file() for p in folder.rglob("*"))
            except OSError:
                continue
            if has_file:
                proc.kill()
                proc.communicate()
                return folder, _files(folder) if folder.is_dir() else []
        if proc.poll() is not None:
            proc.communicate()
            return None
        time.sleep(0.001)
    proc.kill()
    proc.communicate()
    pytest.fail(f"no staging folder appeared under {parent} within {timeout} s")


def _export_digests_ok(version: Path) -> None:
    """export.json lists every other file of the version with its sha256; they all match."""
    from recctl.artifacts import verify_digests

    info = json.loads((version / "export.json").read_text())
    assert info["kind"] == "export" and info["files"], info
    assert set(info["files"]) == set(_files(version)) - {"export.json"}
    assert verify_digests(version, info["files"]) == []


def _is_pickle(data: bytes) -> bool:
    """A protocol 2-5 pickle stream: the PROTO header and a full parse ending at STOP."""
    if len(data) < 3 or data[0] != 0x80 or not 2 <= data[1] <= 5:
        return False
    try:
        ops = list(pickletools.genops(io.BytesIO(data)))
    except Exception:
        return False
    return bool(ops) and ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1


def _pickle_findings(name: str, data: bytes) -> list[str]:
    """Pickle in one file: by name, by content, as a NumPy object array, or inside a zip member."""
    found = []
    suffix = Path(name).suffix.lower()
    if suffix in (".pkl", ".pickle", ".joblib", ".dill"):
        found.append(f"{name}: a pickle file name")
    if _is_pickle(data):
        found.append(f"{name}: a pickle stream")
    if suffix == ".npy":
        try:
            np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            found.append(f"{name}: {exc}")
    if data[:4] == b"PK\x03\x04":  # .keras, .npz, .zip: look inside
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                found += _pickle_findings(f"{name}!{member}", zf.read(member))
    return found


def _scan_for_pickle(root: Path) -> tuple[int, list[str]]:
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    found = [f for p in paths for f in _pickle_findings(str(p.relative_to(root)), p.read_bytes())]
    return len(paths), found


def _run_dir(work: Path) -> Path:
    from recctl.runs import completed_runs

    runs = completed_runs(work / "outputs")
    assert runs, f"no completed run under {work}/outputs"
    return runs[0].resolve()


# ------------------------------------------------------------------------------------ killed writers


def test_killed_prepare_leaves_no_snapshot_and_the_rerun_builds_a_complete_one(tmp_path: Path):
    from recctl.data.snapshot import Snapshot

    parent = tmp_path / "data" / "processed" / "synthetic"
    caught = None
    for seed in (1, 2, 3):  # a new fingerprint each try, in case one prepare outran the poll
        before = _visible(parent)
        caught = _kill_when_staged(_popen("prepare", *BIG, f"seed={seed}", cwd=tmp_path), parent)
        if caught is not None:
            break
    assert caught is not None, "prepare finished every time before its staging folder could be caught"
    partial, partial_files = caught
    assert partial.is_dir() and partial_files, "the kill left a partial staging folder (SIGKILL cannot clean)"
    assert _visible(parent) == before, "a killed prepare made a snapshot folder visible"

    result = recctl_json("prepare", *BIG, f"seed={seed}", cwd=tmp_path)
    snapshot = tmp_path / result["dataset"]["path"]
    assert result["dataset"]["created"] is True  # built anew, not found half-made
    assert snapshot.parent == parent and _visible(parent) == sorted([*before, snapshot.name])
    assert not partial.exists(), "the dead writer's staging folder was not removed"
    assert _staging(parent) == []
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert set(manifest["files"]) == set(_files(snapshot)) - {"manifest.json"}
    assert Snapshot(snapshot).verify() == []  # every file matches its recorded sha256


@pytest.fixture(scope="module")
def exports(trained_workdir: Path) -> dict:
    """One export killed midway, then two exports of the same run at once, all named `safety`."""
    run = _run_dir(trained_workdir)
    parent = trained_workdir / "outputs" / "exports" / "safety"
    caught, before = None, []
    for _ in range(3):
        before = _visible(parent)
        proc = _popen("export", f"run={run}", "export.name=safety", cwd=trained_workdir, env=ONE_THREAD)
        caught = _kill_when_staged(proc, parent)
        if caught is not None:
            break
    assert caught is not None, "export finished every time before its staging folder could be caught"
    after_kill = _visible(parent)
    pair = [
        _popen("export", f"run={run}", "export.name=safety", cwd=trained_workdir, env=ONE_THREAD)
        for _ in range(2)
    ]
    results = [_finish(p) for p in pair]
    return {
        "run": run,
        "parent": parent,
        "partial": caught[0],
        "partial_files": caught[1],
        "before": before,
        "after_kill": after_kill,
        "results": results,
    }


def test_killed_export_leaves_no_version_and_the_next_exports_are_complete(exports: dict):
    assert exports["partial_files"], "the export was killed while its staging folder had files"
    assert exports["after_kill"] == exports["before"], "a killed export made a version visible"
    assert not exports["partial"].exists(), "the dead writer's staging folder was not removed"
    assert _staging(exports["parent"]) == []
    version = Path(exports["results"][0]["export_dir"])
    _export_digests_ok(version)

    import tensorflow as tf

    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    from recctl.data.snapshot import Snapshot

    snapshot = Snapshot(json.loads((exports["run"] / "manifest.json").read_text())["snapshot"])
    out = served(user_id=tf.constant([str(snapshot.user_ids[0])]))
    assert out["item_ids"].shape == (1, 10) and set(out["item_ids"].numpy()[0].astype(str)) <= set(
        snapshot.item_ids
    )


def test_two_exports_of_one_run_at_once_get_two_distinct_complete_versions(exports: dict):
    dirs = [Path(r["export_dir"]) for r in exports["results"]]
    first = max((int(v) for v in exports["after_kill"]), default=0) + 1
    assert sorted(int(d.name) for d in dirs) == [first, first + 1]
    assert _visible(exports["parent"]) == sorted([*exports["after_kill"], *(d.name for d in dirs)])
    for d in dirs:
        _export_digests_ok(d)
        assert json.loads((d / "export.json").read_text())["run"] == str(exports["run"])


# ------------------------------------------------------------------------------- concurrent writers


def test_two_prepares_of_one_dataset_at_once_share_one_complete_snapshot(tmp_path: Path):
    from recctl.data.snapshot import Snapshot

    results = [_finish(p) for p in [_popen("prepare", *MEDIUM, cwd=tmp_path) for _ in range(2)]]
    paths = {r["dataset"]["path"] for r in results}
    assert len(paths) == 1, paths
    assert sorted(r["dataset"]["created"] for r in results) == [False, True]  # one published, one reused
    parent = tmp_path / "data" / "processed" / "synthetic"
    assert _visible(parent) == [Path(paths.pop()).name] and _staging(parent) == []
    assert Snapshot(parent / _visible(parent)[0]).verify() == []


def test_parallel_multirun_jobs_write_distinct_complete_run_folders(tmp_path: Path):
    rates = ["0.01", "0.02", "0.03", "0.04"]
    proc = recctl(
        "--json",
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "model=pop",
        f"optimizer.learning_rate={','.join(rates)}",
        *TINY,
        "trainer.epochs=1",
        "logger=none",
        cwd=tmp_path,
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    jobs = [tmp_path / j["run_dir"] for j in result["jobs"]]
    assert [j["status"] for j in result["jobs"]] == ["ok"] * 4
    assert len(set(jobs)) == 4
    seen = []
    for job in jobs:
        manifest = json.loads((job / "manifest.json").read_text())
        assert manifest["status"] == "completed" and (job / "model.keras").is_file()
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        rate = next(r for r in rates if f"optimizer.learning_rate={r}\n" in overrides)
        assert f"learning_rate: {rate}\n" in (job / "config.yaml").read_text()  # its own config, no other's
        seen.append(rate)
    assert sorted(seen) == rates
    # The four jobs prepared the same dataset at once: one snapshot, no staging folder left.
    parent = tmp_path / "data" / "processed" / "synthetic"
    assert len(_visible(parent)) == 1 and _staging(parent) == []


def test_version_allocation_and_publish_once_under_many_threads(tmp_path: Path):
    """16 writers racing on one parent: 16 distinct versions, each holding its own writer's file;
    16 writers racing on one snapshot name: exactly one wins, the others' folders are discarded."""
    from recctl.artifacts import MANIFEST, publish_once, publish_version, staging_dir

    parent = tmp_path / "exports" / "m"
    barrier = threading.Barrier(16)
    got: dict[int, Path] = {}

    def export(i: int) -> None:
        staged = staging_dir(parent)
        (staged / "who").write_text(str(i))
        barrier.wait()
        got[i] = publish_version(staged, parent)

    threads = [threading.Thread(target=export, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(int(p.name) for p in got.values()) == list(range(1, 17))
    assert all((p / "who").read_text() == str(i) for i, p in got.items())

    target = tmp_path / "processed" / "d" / "fp"
    won: list[bool] = []

    def prepare(i: int) -> None:
        staged = staging_dir(target.parent)
        (staged / MANIFEST).write_text(json.dumps({"writer": i}))
        barrier.wait()
        won.append(publish_once(staged, target))

    threads = [threading.Thread(target=prepare, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(won) == [False] * 15 + [True]
    assert _visible(target.parent) == ["fp"] and _staging(target.parent) == []


def test_stale_staging_folders_are_removed_only_when_their_writer_is_gone(tmp_path: Path):
    from recctl.artifacts import STAGING_PREFIX, _writer_token, clean_stale_staging

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = _writer_token()
    folders = {
        "dead writer": tmp_path / f"{STAGING_PREFIX}{'a' * 12}-{dead.pid}-{token}",
        "this process": tmp_path / f"{STAGING_PREFIX}{'b' * 12}-{os.getpid()}-{token}",
        "other machine, fresh": tmp_path / f"{STAGING_PREFIX}{'c' * 12}-1-{'0' * 10}",
        "other machine, old": tmp_path / f"{STAGING_PREFIX}{'d' * 12}-1-{'1' * 10}",
        "not staging": tmp_path / ".hidden",
        "a version": tmp_path / "1",
    }
    for folder in folders.values():
        folder.mkdir()
        (folder / "f").write_text("x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(folders["other machine, old"], (two_days_ago, two_days_ago))
    removed = clean_stale_staging(tmp_path)
    assert sorted(removed) == sorted([folders["dead writer"], folders["other machine, old"]])
    assert {k for k, f in folders.items() if f.exists()} == {
        "this process",
        "other machine, fresh",
        "not staging",
        "a version",
    }


# ------------------------------------------------------------------------------------------ hygiene


def test_no_pickle_anywhere_and_keras_files_load_in_safe_mode(trained_workdir: Path, exports: dict):
    from recctl.data.snapshot import Snapshot

    run = exports["run"]
    snapshot = Path(json.loads((run / "manifest.json").read_text())["snapshot"])
    assert Snapshot(snapshot).verify() == []
    scanned = 0
    for root in [run, snapshot, *(Path(r["export_dir"]) for r in exports["results"])]:
        n, found = _scan_for_pickle(root)
        assert found == [], f"pickle in {root}: {found}"
        scanned += n
    assert scanned >= 20
    assert _is_pickle(__import__("pickle").dumps({"a": 1}))  # the detector itself works

    import keras

    import recctl.models.registry  # noqa: F401  (registers recctl's classes, as recctl does)

    keras_files = sorted(run.rglob("*.keras"))
    assert run / "model.keras" in keras_files
    for path in keras_files:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        assert model.__class__.__module__.startswith("recctl.models.")


def test_dataset_and_export_names_cannot_escape_their_folders(tmp_path: Path):
    from omegaconf import OmegaConf

    from recctl.commands.export import _export_parent
    from recctl.config import check_dataset_name, checked_export
    from recctl.errors import ConfigError

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    outside = tmp_path / "abs-evil"
    for name in ("../../evil", str(outside)):
        proc = recctl("prepare", f"dataset.name={name}", *TINY_DATA, cwd=work)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            "recctl: error: dataset.name must be a plain folder name (letters, digits, '.', '_', '-'; "
            f"no '/' or '..'). Received: '{name}'"
        ]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/b"]
    for bad in ("..", ".", "a/b", "/etc", "x/../../y", ".hidden", "", "a\\b", "a\0b"):
        with pytest.raises(ConfigError):
            check_dataset_name(bad)
    for good in ("synthetic", "ml_100k", "shop-2024.v2"):
        check_dataset_name(good)

    # export.name: refused by the config check, and again where the export folder is made
    for bad in ("../escaped", "/tmp/x", "..", ".hidden"):
        with pytest.raises(ConfigError) as info:
            checked_export(OmegaConf.create({"export": {"name": bad}}))
        assert info.value.exit_code == 2 and "export.name" in str(info.value)
    for bad in ("../escaped", "..", "a/../../b", str(tmp_path)):
        with pytest.raises(ConfigError):
            _export_parent(tmp_path / "outputs", bad)
    assert _export_parent(tmp_path / "outputs", "mf") == tmp_path / "outputs" / "exports" / "mf"
    assert not (tmp_path / "outputs").exists()


def test_only_recctl_models_and_keras_optimizers_are_instantiated(tmp_path: Path, monkeypatch, capsys):
    from omegaconf import OmegaConf

    from recctl.errors import ConfigError
    from recctl.training.factory import check_optimizer, model_class

    monkeypatch.chdir(tmp_path)
    code, _, err = recctl_in_process(monkeypatch, capsys, "train", "model._target_=os.system", *TINY)
    assert code == 2, err
    assert err.strip().splitlines() == [
        "recctl: error: model._target_ must name a class in recctl.models (configs are code: only recctl's "
        "models are instantiated). Received: 'os.system'"
    ]
    assert not (tmp_path / "data").exists()  # refused before any data was read
    runs = tmp_path / "outputs" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []  # and no run folder left behind

    def refused(check, cfg: dict) -> str:
        with pytest.raises(ConfigError) as info:
            check(OmegaConf.create(cfg))
        assert info.value.exit_code == 2
        return str(info.value)

    assert "Recommender" in refused(model_class, {"_target_": "recctl.models.base.MultinomialLikelihood"})
    assert "cannot be imported" in refused(model_class, {"_target_": "recctl.models.base.keras.layers.Dense"})
    assert "cannot be imported" in refused(model_class, {"_target_": "recctl.models.mf.os.system"})
    assert "nested" in refused(
        model_class, {"_target_": "recctl.models.mf.MatrixFactorization", "x": [{"_target_": "os.getcwd"}]}
    )
    assert "keras.optimizers class" in refused(check_optimizer, {"_target_": "os.system"})
    assert "not a class" in refused(check_optimizer, {"_target_": "keras.optimizers.deserialize"})
    assert "keras.optimizers class" in refused(
        check_optimizer, {"_target_": "keras.optimizers.schedules.ExponentialDecay"}
    )
    assert "nested" in refused(
        check_optimizer, {"_target_": "keras.optimizers.Adam", "learning_rate": {"_target_": "os.getcwd"}}
    )
    assert model_class(OmegaConf.create({"_target_": "recctl.models.mf.MatrixFactorization"})).__name__ == (
        "MatrixFactorization"
    )
    check_optimizer(OmegaConf.create({"_target_": "keras.optimizers.AdamW", "learning_rate": 0.001}))
