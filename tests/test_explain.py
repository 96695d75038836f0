"""recommend explain=true (issue #17, part 4): each family's `because`, and the command around it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recctl.tfenv import import_tensorflow

import_tensorflow()


def test_item_item_weights_are_the_exact_contributions_of_the_history():
    import keras

    from recctl.models.ease import EASE
    from recctl.models.explain import ItemWeights, explainer_for

    model = EASE(n_users=2, n_items=5)
    weights = np.zeros((5, 5), np.float32)
    weights[0, 1], weights[2, 1], weights[4, 1] = 0.5, 0.9, -0.3  # row h, column i: what h adds to i
    weights[2, 3], weights[4, 3] = 0.2, 0.7
    model.item_weights.assign(weights)
    assert isinstance(explainer_for(model), ItemWeights)
    history = np.array([4, 0, 2])
    found = explainer_for(model).explain(model, np.array([0]), [history], np.array([[1, 3]]))
    by_item = [[(r.item, round(r.weight, 6)) for r in reasons] for reasons in found.reasons[0]]
    assert by_item == [[(2, 0.9), (0, 0.5)], [(4, 0.7), (2, 0.2)]]  # the negative weight is no reason
    # they add up to the model's own score of the item (for item 3: every history weight is a reason)
    vector = np.zeros((1, 5), np.float32)
    vector[0, history] = 1.0
    scores = keras.ops.convert_to_numpy(model.score_all({"vector": vector}))[0]
    assert scores[3] == pytest.approx(sum(w for _, w in by_item[1]))
    assert scores[1] == pytest.approx(0.9 + 0.5 - 0.3)


def test_embedding_similarity_names_the_nearest_history_items():
    from recctl.models.explain import explainer_for
    from recctl.models.mf import MatrixFactorization

    model = MatrixFactorization(n_users=2, n_items=4, embedding_dim=2)
    model.item_embedding.embeddings.assign(np.array([[1, 0], [0.9, 0.1], [0.1, 1], [-1, 0]], np.float32))
    found = explainer_for(model).explain(model, np.array([0]), [np.array([0, 2, 3])], np.array([[1]]))
    ((reasons,),) = found.reasons
    assert [r.item for r in reasons] == [0, 2] and reasons[0].weight > reasons[1].weight > 0
    assert "cosine" in found.method


def test_attention_weights_name_only_the_items_the_model_read():
    from recctl.models.attention import SASRec
    from recctl.models.explain import explainer_for, rollout

    model = SASRec(
        n_users=3, n_items=12, max_length=4, embedding_dim=8, num_blocks=2, num_heads=2, dropout=0.0
    )
    history = np.array([5, 3, 7, 9, 2])  # the model reads the last 4
    found = explainer_for(model).explain(model, np.array([0]), [history], np.array([[0, 1]]))
    assert "attention" in found.method and "unavailable" not in found.method
    first, second = found.reasons[0]
    assert first == second and 0 < len(first) <= 3  # one weighting of the history per user
    assert {r.item for r in first} <= {3, 7, 9, 2}
    weights = [r.weight for r in first]
    assert weights == sorted(weights, reverse=True)
    scores = np.random.default_rng(0).random((1, 2, 4, 4))
    assert np.allclose(rollout([scores / scores.sum(-1, keepdims=True)]).sum(-1), 1.0)


def test_wide_deep_feature_contributions_name_existing_features():
    import keras

    from recctl.explain import FeatureNames
    from recctl.models.explain import explainer_for, feature_fields
    from recctl.models.wide_deep import WideDeep

    model = WideDeep(
        n_users=4,
        n_items=5,
        user_categorical=[3],
        item_categorical=[3],
        user_numeric=1,
        item_numeric=2,
        hidden_units=[8],
        dropout=0.0,
    )
    model.load_tables(
        {
            "user_categorical": np.array([[1], [2], [1], [2]], np.int32),
            "item_categorical": np.array([[1], [2], [1], [2], [1]], np.int32),
            "user_numeric": np.array([[0.5], [-0.5], [1.0], [0.0]], np.float32),
            "item_numeric": np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], np.float32),
        }
    )
    # user gender F (code 1) adds +3 to every logit, M (code 2) -3: half the users each, mean 0
    model.user_cat_wide[0].embeddings.assign(np.array([[0.0], [3.0], [-3.0]], np.float32))
    before = keras.ops.convert_to_numpy(model.score_all(np.array([0], np.int32)))
    found = explainer_for(model).explain(model, np.array([0]), [np.array([1])], np.array([[0, 3, 2]]))
    after = keras.ops.convert_to_numpy(model.score_all(np.array([0], np.int32)))
    np.testing.assert_array_equal(before, after)  # every ablated weight restored
    fields = set(feature_fields(model))
    for reasons in found.reasons[0]:
        assert reasons and reasons[0].field == ("user", "cat", 0)
        assert reasons[0].weight == pytest.approx(3.0, abs=0.3)
        assert all(r.field in fields for r in reasons)
        assert [r.weight for r in reasons] == sorted((r.weight for r in reasons), reverse=True)
    item_3 = found.reasons[0][1]  # item 3 has no numeric flag set: none is named
    assert not [r for r in item_3 if r.field[:2] == ("item", "num")]

    snapshot = SimpleNamespace(
        users=pd.DataFrame({"user_id": list("abcd"), "cat__gender": [1, 2, 1, 2], "num__age": 0.0}),
        items=pd.DataFrame(
            {"item_id": list("vwxyz"), "cat__decade": [1, 2, 1, 2, 1], "num__Action": 0.0, "num__Drama": 0.0}
        ),
        stats={
            "features": {
                "user": {
                    "categorical": {"gender": ["F", "M"]},
                    "numeric": {"age": {"mean": 30.0, "std": 10.0}},
                },
                "item": {
                    "categorical": {"decade": ["1970s", "1990s"]},
                    "numeric": {"Action": {"mean": 0.0, "std": 1.0}, "Drama": {"mean": 0.0, "std": 1.0}},
                },
            }
        },
        user_ids=np.array(list("abcd")),
        item_ids=np.array(list("vwxyz")),
    )
    names = FeatureNames(snapshot)
    assert names(("user", "cat", 0), 1.0) == ("user.gender", "F")
    assert names(("user", "num", 0), 0.5) == ("user.age", 35.0)
    assert names(("item", "num", 1), 1.0) == ("item.Drama", 1.0)
    assert names(("item", "id", 0), 2.0) == ("item_id", "x")


def test_families_without_an_explanation_are_named_apart():
    from recctl.errors import ConfigError
    from recctl.explain import RunExplanations, families_with_explanations
    from recctl.models.pop import Popularity

    families = families_with_explanations()
    for name in ("mf", "neumf", "lightgcn", "ease", "item_knn", "attention", "wide_deep", "deepfm"):
        assert name in families
    for name in ("pop", "bias", "user_knn", "autoencoder"):
        assert name not in families
    with pytest.raises(
        ConfigError, match="model=pop has no explanation; the families that have one: attention"
    ):
        RunExplanations(Popularity(n_users=2, n_items=3), "pop", None, None)


def _in_process(mp: pytest.MonkeyPatch, cwd: Path, *args: str) -> tuple[int, str, str]:
    """`recctl --json ARGS` through the CLI's own entry point in this process (no second
    TensorFlow start-up); stdout and stderr captured."""
    import contextlib
    import io

    from recctl import console
    from recctl.runner import run_command

    for key, value in (("HYDRA_FULL_ERROR", "1"), ("RECCTL_JSON_MODE", "0"), ("KERAS_BACKEND", "tensorflow")):
        mp.setenv(key, os.environ.get(key, value))
    mp.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_command(args[0], list(args[1:]), json_output=True)
    finally:
        console.set_json_mode(False)  # the module's own flag (the variable is put back by `mp`)
    return code, out.getvalue(), err.getvalue()


def test_recommend_explain_names_items_of_the_users_own_history(trained_workdir: Path, monkeypatch):
    from recctl.runs import load_run

    code, out, err = _in_process(
        monkeypatch, trained_workdir, "recommend", "run=latest", "user=u001", "k=5", "explain=true"
    )
    assert code == 0, err
    result = json.loads(out)
    (entry,) = result["recommendations"]
    assert "cosine" in entry["explained_by"]
    snap = load_run(Path(result["run_dir"]), with_model=False).snapshot
    user = list(snap.user_ids).index("u001")
    _, items = snap.csr("train", "valid", "test").rows(np.array([user]))
    history = {str(snap.item_ids[i]) for i in items}
    titles = dict(zip(snap.item_ids, snap.item_titles(), strict=True))
    named = 0
    for item in entry["items"]:
        because = item["because"]
        assert len(because) <= 3
        assert {b["item_id"] for b in because} <= history
        assert all(b["title"] == titles[b["item_id"]] for b in because)
        weights = [b["weight"] for b in because]
        assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
        named += len(because)
    assert named > 0
    assert err.count("because: ") >= len(entry["items"])


def test_recommend_explain_refuses_an_export_and_an_output_file(tmp_path: Path, monkeypatch):
    code, out, err = _in_process(
        monkeypatch, tmp_path, "recommend", f"export_dir={tmp_path}", "user=u001", "explain=true"
    )
    assert code == 2 and json.loads(out)["status"] == "failed"
    assert "explain=true needs the run" in err and err.strip().count("\n") == 0 and "Traceback" not in err
    code, _, err = _in_process(
        monkeypatch, tmp_path, "recommend", "user=u001", f"output={tmp_path / 'r.parquet'}", "explain=true"
    )
    assert code == 2 and "not with output=" in err
    code, _, err = _in_process(monkeypatch, tmp_path, "recommend", "user=u001", "explain=yes")
    assert code == 2 and "explain must be true or false" in err
