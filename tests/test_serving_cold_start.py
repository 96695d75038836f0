"""Serving cold start (issue #17 part 3): a user the run has never seen, scored from raw feature
values: `recommend features.*`, a users_file CSV, and the SavedModel's `serving_features`
signature in a fresh process that never imports recctl."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, recctl_in_process, recctl_json_in_process

from recctl.data.features import FeatureEncoder
from recctl.errors import ConfigError


def _raw_features(encoder: FeatureEncoder, snap, user: int) -> dict[str, str]:
    """A snapshot user's feature values as a client would send them (decoded from the snapshot)."""
    cat, _, num = snap.side_features("user")
    raw = {
        name: vocab[cat[user, j] - 1]
        for j, (name, vocab) in enumerate(encoder.categorical.items())
        if cat[user, j]
    }
    for j, (name, (mean, std)) in enumerate(encoder.numeric.items()):
        raw[name] = repr(float(num[user, j]) * std + mean)
    return raw


def test_encoder_gives_a_new_user_the_codes_the_snapshot_gave_its_own():
    import tempfile

    from test_cold_start import _model, _synthetic

    from recctl.data.prepare import ensure_snapshot
    from recctl.models.wide_deep import WideDeep

    with tempfile.TemporaryDirectory() as tmp:
        snap = ensure_snapshot(_synthetic("cold_users"), Path(tmp), 7)[0]
        encoder = FeatureEncoder.of(snap, "user")
        assert encoder.columns, "the synthetic dataset has user features"
        cold = np.unique(snap.split("test")["user"].to_numpy())[:5]
        rows = [_raw_features(encoder, snap, u) for u in cold]
        codes, numeric = encoder.encode(rows, "features")
        cat, _, num = snap.side_features("user")
        assert (codes == cat[cold]).all()
        assert np.allclose(numeric, num[cold], atol=1e-5)
        # a user the run never saw, with a cold user's features, gets that user's scores
        model = _model(WideDeep, snap, user_dropout=0.2)
        assert model.serves_features() and not _model(WideDeep, snap).serves_features()
        new = np.asarray(model.score_all_from_features(codes, numeric))
        assert np.allclose(new, np.asarray(model.score_all(cold.astype(np.int32))), atol=1e-5)
        # unknown and missing values
        name = next(iter(encoder.categorical))
        codes, numeric = encoder.encode([{name: "no such value"}, {}], "features")
        assert (codes == 0).all() and (numeric == 0).all()
        with pytest.raises(
            ConfigError, match="unknown user feature 'shoe_size'; the run's user features are: "
        ):
            encoder.encode([{"shoe_size": "9"}], "features")
        if encoder.numeric:
            number = next(iter(encoder.numeric))
            with pytest.raises(ConfigError, match=f"user feature '{number}' is numeric. Received: 'old'"):
                encoder.encode([{number: "old"}], "features")


FRESH = """
import json, sys
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
features = json.loads(sys.argv[2])
signature = m.signatures["serving_features"]
names = sorted(signature.structured_input_signature[1])
out = signature(**{n: tf.constant([features.get(n, "")]) for n in names})
print(json.dumps({"names": names, "items": [x.decode() for x in out["item_ids"].numpy()[0]],
                  "scores": out["scores"].numpy()[0].tolist()}))
"""


def test_recommend_and_the_saved_model_score_a_new_user_from_features(tmp_path: Path, monkeypatch, capsys):
    args = [
        *TINY,
        "model=wide_deep",
        "dataset.split=cold_users",
        "model.user_dropout=0.2",
        "trainer.epochs=1",
    ]
    train = recctl_json_in_process(monkeypatch, capsys, "train", *args, cwd=tmp_path)
    run = train["run_dir"]
    from recctl.data.snapshot import Snapshot

    snap = Snapshot(json.loads((Path(run) / "manifest.json").read_text())["snapshot"])
    encoder = FeatureEncoder.of(snap, "user")
    cold = int(np.unique(snap.split("test")["user"].to_numpy())[0])
    raw = _raw_features(encoder, snap, cold)
    overrides = [f"features.{name}={value}" for name, value in raw.items()]

    result = recctl_json_in_process(
        monkeypatch, capsys, "recommend", f"run={run}", "user=NEW-1", *overrides, "k=5", cwd=tmp_path
    )
    (entry,) = result["recommendations"]
    by_run = [i["item_id"] for i in entry["items"]]
    assert entry["user"] == "NEW-1" and len(by_run) == 5

    # a CSV with a header: known and new users in one file, the order kept
    known = str(snap.user_ids[int(np.unique(snap.split("train")["user"].to_numpy())[0])])
    csv = tmp_path / "users.csv"
    header = ["user_id", *raw]
    csv.write_text(
        ",".join(header)
        + "\n"
        + f"{known},"
        + ",".join("" for _ in raw)
        + "\n"
        + "NEW-1,"
        + ",".join(raw.values())
        + "\n"
    )
    both = recctl_json_in_process(
        monkeypatch, capsys, "recommend", f"run={run}", f"users_file={csv}", "k=5", cwd=tmp_path
    )
    assert [e["user"] for e in both["recommendations"]] == [known, "NEW-1"]
    assert [i["item_id"] for i in both["recommendations"][1]["items"]] == by_run

    exported = recctl_json_in_process(monkeypatch, capsys, "export", f"run={run}", cwd=tmp_path)
    folder = exported["export_dir"]
    fresh = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH), folder, json.dumps(raw)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert fresh.returncode == 0, fresh.stderr
    served = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert served["names"] == sorted(encoder.columns)
    assert served["items"][:5] == by_run  # the export's k is export.k (10)
    assert np.allclose(served["scores"][:5], [i["score"] for i in entry["items"]], atol=1e-4)
    card = (Path(folder) / "README.md").read_text()
    assert "`serving_features`: a user this model has never seen" in card
    # recommend from the export: the new user through serving_features too
    from_export = recctl_json_in_process(
        monkeypatch,
        capsys,
        "recommend",
        f"export_dir={folder}",
        "user=NEW-1",
        *overrides,
        "k=5",
        cwd=tmp_path,
    )
    assert [i["item_id"] for i in from_export["recommendations"][0]["items"]] == by_run

    # bad input: one line, exit 2
    code, _, err = recctl_in_process(
        monkeypatch, capsys, "recommend", f"run={run}", "user=NEW-2", "features.shoe_size=9"
    )
    assert code == 2 and "unknown user feature 'shoe_size'" in err and "Traceback" not in err
    code, _, err = recctl_in_process(monkeypatch, capsys, "recommend", f"run={run}", "user=NEW-2")
    assert code == 2 and "unknown user id 'NEW-2'" in err and "needs features" in err
    code, _, err = recctl_in_process(
        monkeypatch, capsys, "recommend", f"run={run}", "user=NEW-1", *overrides, "explain=true"
    )
    assert code == 2 and "new to the run" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,segment\nu1,a,b\n")
    code, _, err = recctl_in_process(monkeypatch, capsys, "recommend", f"run={run}", f"users_file={bad}")
    assert code == 2 and f"{bad}: line 2: 3 columns, the header has 2" in err


def test_movielens_raw_user_columns_become_the_snapshot_columns():
    from recctl.data import sources

    source = sources.get("movielens_100k")
    derived = source.user_features_from_raw({"age": "25", "zip": "02139", "gender": "F"})
    assert derived == {"gender": "F", "age_group": "25-34", "zip_prefix": "0"}
    assert source.user_features_from_raw({"zip": "T8H1N"})["zip_prefix"] == "other"
    with pytest.raises(ConfigError, match="features.age is a number of years. Received: 'old'"):
        source.user_features_from_raw({"age": "old"})
    assert sources.get("table").user_features_from_raw({"age": "25"}) == {"age": "25"}
