"""Export formats (issue #6): for one model per input kind, every format gives the trained model's top-K
in a fresh process (no recctl import for ONNX and LiteRT), and quantised LiteRT stays close."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, recctl_json

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
KINDS = {"id": "mf", "sequence": "lstm", "user_vector": "autoencoder"}
K = 10

LOADER = r"""
import json, sys
import numpy as np
spec = json.load(open(sys.argv[1]))
out = {}
for name, job in sorted(spec.items(), key=lambda kv: kv[1]["format"] == "keras"):  # keras last
    data = np.load(job["inputs"])
    context, exclude = data["context"], data["exclude"]
    first = job["first_input"]
    if job["format"] == "onnx":
        import onnxruntime as ort
        session = ort.InferenceSession(job["file"], providers=["CPUExecutionProvider"])
        items, scores = session.run(["item_indexes", "scores"], {first: context, "exclude_items": exclude})
    elif job["format"] == "litert":
        import tensorflow as tf
        runner = tf.lite.Interpreter(model_path=job["file"]).get_signature_runner("serving_default")
        result = runner(**{first: context, "exclude_items": exclude})
        items, scores = result["item_indexes"], result["scores"]
    else:  # keras: the only format that needs recctl (its registered layers)
        import keras, recctl.models.registry  # noqa: F401
        model = keras.saving.load_model(job["file"], safe_mode=True, compile=False)
        full = np.asarray(keras.ops.convert_to_numpy(model.score_all(job_context(model, data))))
        items, scores = None, full
    np.save(job["result"] + ".items.npy", np.asarray(items) if items is not None else np.zeros(0))
    np.save(job["result"] + ".scores.npy", np.asarray(scores))
    out[name] = "recctl" in sys.modules
print(json.dumps(out))
"""

KERAS_CONTEXT = r"""
def job_context(model, data):
    if model.input_kind == "id":
        return data["context"]
    if model.input_kind == "sequence":
        c = data["context"]
        return {"history": np.where(c >= 0, c + 1, 0).astype("int32"), "user": np.full(len(c), -1, "int32")}
    vector = np.zeros((len(data["context"]), int(data["n_items"])), "float32")
    for row, items in enumerate(data["context"]):
        vector[row, items[items >= 0]] = 1.0
    return {"vector": vector}
"""


def _train(models: dict[str, str], work: Path) -> dict[str, Path]:
    """Train each model for one epoch on TINY data; {label: run folder}."""
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for label, model in models.items():
        result = recctl_json("train", f"model={model}", *TINY, "trainer.epochs=1", "logger=none", cwd=work)
        run_dir = Path(result["run_dir"])
        out[label] = run_dir if run_dir.is_absolute() else work / run_dir
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return _train(KINDS, tmp_path_factory.mktemp("formats"))


def _reference(model, snapshot, context, exclude) -> np.ndarray:
    """The trained model's scores over all items for the same clients, exclusions at -inf (numpy)."""
    import tensorflow as tf

    from recctl.export.portable import multi_hot  # the only shared piece: building the multi-hot

    if model.input_kind == "id":
        scores = model.score_all(tf.constant(context))
        masked = multi_hot(tf.constant(exclude), snapshot.n_items).numpy()
    elif model.input_kind == "sequence":
        tokens = np.where(context >= 0, context + 1, 0).astype(np.int32)
        scores = model.score_all({"history": tf.constant(tokens), "user": tf.fill([len(context)], -1)})
        masked = multi_hot(tf.constant(context), snapshot.n_items).numpy()
    else:
        vector = multi_hot(tf.constant(context), snapshot.n_items)
        scores = model.score_all({"vector": vector})
        masked = vector.numpy()
    scores = np.asarray(scores, np.float64)
    return np.where(masked > 0, -np.inf, scores)


def _assert_same_top_k(items: np.ndarray, scores: np.ndarray, reference: np.ndarray, k: int) -> None:
    """Same items as the reference top-K; only items tied at the K-th score may differ."""
    for row in range(len(reference)):
        order = np.argsort(-reference[row], kind="stable")[:k]
        kth = reference[row, order[-1]]
        got, want = set(items[row].tolist()), set(order.tolist())
        for item in got ^ want:
            assert np.isclose(reference[row, item], kth, rtol=1e-5, atol=1e-6), (
                row,
                sorted(got),
                sorted(want),
            )
        np.testing.assert_allclose(scores[row], reference[row, items[row]], rtol=1e-4, atol=1e-5)


def test_every_format_reproduces_the_trained_top_k_in_a_fresh_process(runs, tmp_path):
    _prove_formats(runs, tmp_path)


@pytest.mark.slow
def test_every_family_in_every_format(tmp_path):
    """The full matrix (make test-all): every model family, every format."""
    families = ["pop", "mf", "wide_deep", "neumf", "cnn", "lstm", "attention", "autoencoder"]
    families += ["ease", "item_knn", "user_knn"]
    _prove_formats(_train({f: f for f in families}, tmp_path / "runs"), tmp_path)


def _prove_formats(runs: dict[str, Path], tmp_path: Path) -> None:
    """Export every run in every portable format and check each in a fresh process."""
    from recctl.export.portable import sample_inputs
    from recctl.export.registry import FORMATS, ExportJob
    from recctl.runs import load_run

    spec, expected = {}, {}
    for kind, run_dir in runs.items():
        loaded = load_run(run_dir)
        model, snapshot = loaded.model, loaded.snapshot
        context, exclude = sample_inputs(model, snapshot, 64)
        inputs = tmp_path / f"{kind}.npz"
        np.savez(inputs, context=context, exclude=exclude, n_items=snapshot.n_items)
        expected[kind] = (_reference(model, snapshot, context, exclude), model, snapshot)
        for fmt in ("keras", "onnx", "litert", "litert_dynamic"):
            folder = tmp_path / f"{kind}-{fmt}"
            folder.mkdir()
            quantize = "dynamic" if fmt == "litert_dynamic" else "none"
            job = ExportJob(model, snapshot, run_dir, folder, K, quantize)
            info = FORMATS[fmt.split("_")[0]].load().write(job)
            if quantize == "dynamic":
                assert info["size_bytes"] <= info["float32_size_bytes"]
                if model.trainable_weights:  # pop holds counts only: nothing to quantise
                    assert info["size_bytes"] < info["float32_size_bytes"]
                assert info["checked"]["top_k_overlap"] >= 0.9, info  # the floor
            assert (folder / "item_ids.txt").read_text().split("\n")[: snapshot.n_items] == list(
                snapshot.item_ids
            )
            spec[f"{kind}-{fmt}"] = {
                "format": fmt.split("_")[0],
                "file": str(folder / info["file"]),
                "inputs": str(inputs),
                "result": str(tmp_path / f"{kind}-{fmt}"),
                "first_input": "user_index" if model.input_kind == "id" else "history",
            }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    script = tmp_path / "load.py"
    script.write_text(KERAS_CONTEXT + LOADER)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, job in spec.items():
        kind, fmt = name.rsplit("-", 1)
        reference, model, snapshot = expected[kind]
        items = np.load(job["result"] + ".items.npy")
        scores = np.load(job["result"] + ".scores.npy")
        if fmt == "keras":  # full scores from the reloaded .keras model: identical to the trained one
            masked = np.where(np.isinf(reference), -np.inf, scores.astype(np.float64))
            np.testing.assert_allclose(masked, reference, rtol=1e-5, atol=1e-6)
            continue
        assert not imported[name], f"{name}: loading it imported recctl"
        if fmt == "litert_dynamic":
            overlap = np.mean(
                [len(set(a) & set(np.argsort(-r)[:K])) / K for a, r in zip(items, reference, strict=True)]
            )
            assert overlap >= 0.9, (name, overlap)
            continue
        _assert_same_top_k(items, scores, reference, K)


def test_export_command_writes_each_format_in_its_own_version_folder(trained_workdir: Path):
    first = recctl_json(
        "export", "run=latest", "export.format=onnx", "export.name=formats", cwd=trained_workdir
    )
    second = recctl_json(
        "export",
        "run=latest",
        "export.format=litert",
        "export.quantize=float16",
        "export.name=formats",
        cwd=trained_workdir,
    )
    one, two = Path(first["export_dir"]), Path(second["export_dir"])
    assert one.parent == two.parent and {one.name, two.name} == {"1", "2"}
    assert (one / "model.onnx").is_file() and (two / "model.tflite").is_file()
    assert second["litert"]["size_ratio"] < 1.0 and second["litert"]["checked"]["top_k_overlap"] >= 0.9
    card = (two / "README.md").read_text()
    assert "quantisation `float16`" in card and "get_signature_runner" in card
    bad = recctl_json(
        "export", "run=latest", "export.format=onnx", "export.quantize=dynamic", cwd=trained_workdir, expect=2
    )
    assert "applies to export.format=litert only" in bad["error"]


def test_saved_model_serving_exclude_leaves_out_the_listed_items(trained_workdir: Path):
    import tensorflow as tf

    exported = recctl_json("export", "run=latest", "export.name=exclude", cwd=trained_workdir)
    served = tf.saved_model.load(exported["export_dir"])
    users = tf.constant(["u0001", "no-such-user"])
    plain = served.signatures["serving_default"](user_id=users)["item_ids"].numpy().astype(str)
    drop = [plain[0][0], plain[0][3]]
    out = (
        served.signatures["serving_exclude"](
            user_id=users, exclude_item_ids=tf.constant([drop, ["", "not-an-item"]])
        )["item_ids"]
        .numpy()
        .astype(str)
    )
    assert not set(drop) & set(out[0])
    assert list(out[0][:2]) == [plain[0][1], plain[0][2]]  # the rest keep their order
    assert list(out[1]) == list(plain[1])  # padding and unknown ids change nothing
    info = json.loads((Path(exported["export_dir"]) / "export.json").read_text())
    assert set(info["signatures"]) == {"serving_default", "serving_exclude", "score"}
