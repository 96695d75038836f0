"""End to end, as a user runs it: `recctl` subprocesses in a temporary folder on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, recctl, recctl_in_process, recctl_json, recctl_json_in_process

SCHEMA_KEYS = {
    "command",
    "status",
    "run_dir",
    "export_dir",
    "dataset",
    "model",
    "metrics",
    "baseline",
    "protocol",
    "seconds",
}


def test_train_writes_a_complete_run(trained_workdir: Path):
    runs = list((trained_workdir / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in ("config.yaml", "model.keras", "history.csv", "curves.png", "metrics.json", "manifest.json"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    lines = (trained_workdir / "train.stderr").read_text().splitlines()
    started = next(i for i, line in enumerate(lines) if line.startswith("run folder: "))
    assert str(run.name) in lines[started] and "tensorboard --logdir" in lines[started]
    assert started < next(i for i, line in enumerate(lines) if line.startswith("epoch 1/4"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["kind"] == "run"
    assert manifest["environment"]["tensorflow"] and manifest["fingerprint"]
    with open(run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and "val_ndcg@10" in rows[0]
    snapshot = Path(manifest["snapshot"])
    assert snapshot.parent.name == "synthetic" and (snapshot / "manifest.json").is_file()


def test_tensorboard_hparams_hold_the_runs_settings_and_final_metrics(trained_workdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    (run,) = (trained_workdir / "outputs" / "runs").iterdir()
    events = EventAccumulator(str(run / "tensorboard" / "hparams"))
    events.Reload()
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["trainer.epochs"].number_value == 4
    assert hparams["optimizer.learning_rate"].number_value == pytest.approx(0.01)
    assert hparams["dataset.name"].string_value == "synthetic"
    metrics = json.loads((run / "metrics.json").read_text())
    for tag, expected in (
        ("test/ndcg@10", metrics["metrics"]["test"]["ndcg@10"]),
        ("pop/valid/recall@20", metrics["baseline"]["pop"]["valid"]["recall@20"]),
    ):
        (event,) = events.Tensors(tag)
        assert event.step == 4
        assert float(tensor_util.make_ndarray(event.tensor_proto)) == pytest.approx(expected, rel=1e-6)


def test_evaluate_latest_json_and_table(trained_workdir: Path):
    result = recctl_json("evaluate", "run=latest", cwd=trained_workdir)
    assert SCHEMA_KEYS <= set(result)
    assert result["status"] == "ok" and result["command"] == "evaluate"
    test = result["metrics"]["test"]
    for k in (5, 10, 20):
        for name in ("hr", "ndcg", "recall", "mrr"):
            assert 0.0 <= test[f"{name}@{k}"] <= 1.0
    assert set(result["baseline"]["pop"]["test"]) == set(test)
    assert "full ranking" in result["protocol"] and "masked" in result["protocol"]
    # the tiny model learned something a popularity ranking cannot. On 300 test users the test
    # figures of the two are within noise of each other (1.10x and 0.99x for two shuffles), so
    # the check reads validation, where the run sits at about 1.6x pop.
    valid, pop_valid = result["metrics"]["valid"]["ndcg@10"], result["baseline"]["pop"]["valid"]["ndcg@10"]
    assert valid > 1.2 * pop_valid


def test_evaluate_prints_the_table_beside_pop_and_the_protocol(trained_workdir: Path, monkeypatch, capsys):
    monkeypatch.chdir(trained_workdir)
    code, out, err = recctl_in_process(monkeypatch, capsys, "evaluate", "run=latest")
    assert code == 0, err
    assert "pop test" in out and "ndcg@10" in out and "protocol:" in out


def test_quality_gate_exit_code(trained_workdir: Path, monkeypatch, capsys):
    monkeypatch.chdir(trained_workdir)  # in process: the exit codes are run_command's, as main() returns them
    gate = ("evaluate", "run=latest", "gate.metric=ndcg@10")
    code, out, _ = recctl_in_process(monkeypatch, capsys, *gate, "gate.min_lift=1000", json_output=True)
    failed = json.loads(out)
    assert code == 3 and failed["status"] == "gate_failed" and "gate" in failed["error"]
    code, out, _ = recctl_in_process(monkeypatch, capsys, *gate, "gate.min=0.0")
    assert code == 0 and "quality gate passed" in out


@pytest.mark.slow  # CI time: covered in make test-all
def test_export_serves_the_same_top_k_in_a_fresh_process(trained_workdir: Path, tmp_path: Path):
    first = recctl_json("export", "run=latest", cwd=trained_workdir)
    second = recctl_json("export", "run=latest", "export.k=5", cwd=trained_workdir)
    export_dir = Path(first["export_dir"])
    assert export_dir.name == "1" and Path(second["export_dir"]).name == "2"
    assert (export_dir / "saved_model.pb").is_file() and (export_dir / "README.md").is_file()

    # The trained model's own top-10 (seen items masked), computed through recctl.
    expected_file = tmp_path / "expected.json"
    subprocess.run(
        [sys.executable, "-c", _EXPECTED_TOPK, first["run_dir"], str(expected_file)],
        cwd=trained_workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    expected = json.loads(expected_file.read_text())
    # A fresh process that never imports recctl loads the SavedModel and asks for the same users.
    served = subprocess.run(
        [sys.executable, "-c", _SERVE, str(export_dir), json.dumps(expected["users"])],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(served.stdout.strip().splitlines()[-1])
    assert not got["recctl_imported"]
    for user, exp_items, exp_scores, items, scores in zip(
        expected["users"], expected["items"], expected["scores"], got["items"], got["scores"], strict=True
    ):
        # same items; order may differ only among equal scores
        assert sorted(items) == sorted(exp_items) or _equal_up_to_ties(
            items, scores, exp_items, exp_scores
        ), user
        assert abs(scores[0] - exp_scores[0]) < 1e-4


def _equal_up_to_ties(items, scores, exp_items, exp_scores) -> bool:
    cut = scores[-1]
    return [i for i, s in zip(items, scores, strict=True) if s > cut + 1e-6] == [
        i for i, s in zip(exp_items, exp_scores, strict=True) if s > cut + 1e-6
    ]


_EXPECTED_TOPK = r"""
import json, sys
from pathlib import Path
import numpy as np
from recctl.tfenv import import_tensorflow
tf = import_tensorflow()
from recctl.runs import load_run
from recctl.evaluation.report import score_function
from recctl.evaluation.ranking import _mask_and_topk
run = load_run(Path(sys.argv[1]))
snap = run.snapshot
users = np.arange(min(snap.n_users, 50), dtype=np.int32)
seen = snap.csr("train", "valid", "test")
rows, items = seen.rows(users)
masked, top = _mask_and_topk(score_function(run.model, snap, "all")(users), rows.astype(np.int32), items.astype(np.int32), 10)
top = top.numpy()
scores = np.take_along_axis(masked.numpy(), top, axis=1)
Path(sys.argv[2]).write_text(json.dumps({
    "users": [str(snap.user_ids[u]) for u in users],
    "items": [[str(snap.item_ids[i]) for i in row] for row in top],
    "scores": scores.tolist()}))
"""

_SERVE = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
users = json.loads(sys.argv[2])
out = model.signatures["serving_default"](user_id=tf.constant(users))
print(json.dumps({
    "items": [[i.decode() for i in row] for row in out["item_ids"].numpy()],
    "scores": out["scores"].numpy().tolist(),
    "recctl_imported": any(m == "recctl" or m.startswith("recctl.") for m in sys.modules)}))
"""


def test_prepare_is_content_addressed(tmp_path: Path):
    first = recctl("prepare", *TINY[:3], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "prepared" in first.stdout
    second = recctl("prepare", *TINY[:3], cwd=tmp_path)
    assert second.returncode == 0 and "nothing to do" in second.stdout
    snapshots = list((tmp_path / "data" / "processed" / "synthetic").iterdir())
    assert len(snapshots) == 1
    for name in (
        "train.parquet",
        "valid.parquet",
        "test.parquet",
        "users.parquet",
        "items.parquet",
        "stats.json",
        "manifest.json",
    ):
        assert (snapshots[0] / name).is_file()
    other = recctl("prepare", *TINY[:3], "seed=7", cwd=tmp_path)
    assert other.returncode == 0
    assert len(list((tmp_path / "data" / "processed" / "synthetic").iterdir())) == 2


def test_csv_dataset_with_tabs_crlf_and_string_ids(tmp_path: Path):
    lines = ["userId\tmovieId\trating\tts"]
    for u in range(40):
        for j in range(8):
            lines.append(f"user-{u:03d}\tm{(u * 3 + j * 7) % 60:02d}\t{1 + (u + j) % 5}\t{1000 + j * 10 + u}")
    (tmp_path / "ratings.tsv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    result = recctl_json(
        "train",
        "dataset=csv",
        "dataset.path=ratings.tsv",
        "dataset.sep=\\t",
        "dataset.columns.user=userId",
        "dataset.columns.item=movieId",
        "dataset.columns.rating=rating",
        "dataset.columns.timestamp=ts",
        "model=pop",
        cwd=tmp_path,
    )
    assert result["status"] == "ok" and result["dataset"]["name"] == "csv"
    snapshot = next((tmp_path / "data" / "processed" / "csv").iterdir())
    stats = json.loads((snapshot / "stats.json").read_text())
    assert stats["n_users"] == 40 and stats["test"] == 40 and stats["valid"] == 40


def test_recommend_from_run_and_from_export(trained_workdir: Path, monkeypatch, capsys):
    # export and the export's recommend run as a shell runs them; the run's recommend in process
    result = recctl_json_in_process(
        monkeypatch, capsys, "recommend", "run=latest", "user=u001", "k=5", cwd=trained_workdir
    )
    (entry,) = result["recommendations"]
    assert entry["user"] == "u001" and len(entry["items"]) == 5
    assert all(item["title"].startswith("Item ") for item in entry["items"])
    scores = [item["score"] for item in entry["items"]]
    assert scores == sorted(scores, reverse=True)
    exported = recctl_json("export", "run=latest", cwd=trained_workdir)
    served = recctl_json(
        "recommend", f"export_dir={exported['export_dir']}", "user=u001", "k=5", cwd=trained_workdir
    )
    assert [i["item_id"] for i in served["recommendations"][0]["items"]] == [
        i["item_id"] for i in entry["items"]
    ]
    code, _, err = recctl_in_process(monkeypatch, capsys, "recommend", "run=latest", "user=nobody")
    assert code == 2 and "unknown user id 'nobody'" in err


def test_recommend_users_all_writes_every_users_top_k_like_one_user_at_a_time(
    trained_workdir: Path, tmp_path: Path, monkeypatch, capsys
):
    import numpy as np
    import pandas as pd

    monkeypatch.chdir(
        trained_workdir
    )  # in process; test_recommend_from_run_and_from_export is the shell's path

    def recommend(*args: str) -> tuple[int, dict | None, str]:
        code, out, err = recctl_in_process(
            monkeypatch, capsys, "recommend", "run=latest", *args, json_output=True
        )
        return code, json.loads(out) if code == 0 else None, err

    output = tmp_path / "recs.parquet"
    code, result, err = recommend("users=all", f"output={output}", "k=5")
    assert code == 0, err
    recs = pd.read_parquet(output)
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score"]
    assert result["output"] == str(output.resolve()) and result["recommendations"] is None
    assert result["users"] == recs["user_id"].nunique() == 300 and result["rows"] == len(recs) == 300 * 5
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    assert not list(tmp_path.glob(".*.tmp"))

    # the same items, order and scores as recommend for one user at a time (here two, by users_file)
    (tmp_path / "two.txt").write_text("u001\nu123\n")
    code, each, err = recommend(f"users_file={tmp_path / 'two.txt'}", "k=5")
    assert code == 0, err
    for entry in each["recommendations"]:
        rows = recs[recs["user_id"] == entry["user"]].sort_values("rank")
        assert rows["item_id"].tolist() == [i["item_id"] for i in entry["items"]], entry["user"]
        np.testing.assert_allclose(rows["score"], [i["score"] for i in entry["items"]], rtol=1e-6)

    # an existing file is never overwritten: one line, exit 2, the file untouched
    before = output.read_bytes()
    code, _, err = recommend("users=all", f"output={output}")
    assert code == 2 and "the file exists" in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert output.read_bytes() == before


def test_recommend_user_selections_exclude_each_other():
    from omegaconf import OmegaConf

    from recctl.commands import recommend
    from recctl.errors import EXIT_USAGE, ConfigError

    def error(**keys) -> str:
        cfg = OmegaConf.create({"user": None, "users_file": None, "users": None, "output": None, **keys})
        try:
            recommend._checked_output(cfg, recommend._requested_users(cfg)[0])
        except ConfigError as exc:
            assert exc.exit_code == EXIT_USAGE
            return str(exc)
        raise AssertionError(f"accepted {keys}")

    assert "user= and users= exclude each other" in error(user="u001", users="all")
    assert "users_file= and users= exclude each other" in error(
        users_file="x.txt", users="all", output="r.parquet"
    )
    assert "user= and users_file= exclude each other" in error(user="u001", users_file="x.txt")
    assert "users must be 'all'" in error(users="some")
    assert "give output=PATH.parquet" in error(users="all")
    assert "output must be a .parquet file" in error(users="all", output="recs.csv")
    assert "needs user=ID, users_file=PATH or users=all" in error()
