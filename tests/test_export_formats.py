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
    # One multirun: one process (one TensorFlow import) trains them all, a job folder each.
    names = ",".join(models.values())
    result = recctl_json("train", "-m", f"model={names}", *TINY, "trainer.epochs=1", "logger=none", cwd=work)
    assert [job["status"] for job in result["jobs"]] == ["ok"] * len(models), result
    out = {}
    for label, job in zip(models, result["jobs"], strict=True):
        run_dir = Path(job["run_dir"])
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


@pytest.mark.slow  # CI time: the per-format names are the unit test below and the litert CLI test's
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


# Issue #18: exports that serve without surprises.


def test_default_export_names_keep_a_tf_serving_folder_for_saved_models_only():
    from recctl.export.registry import FORMATS, default_name

    assert default_name("mf", "saved_model") == "mf"
    for fmt in set(FORMATS) - {"saved_model"}:
        assert default_name("mf", fmt) == f"mf_{fmt}"


def test_litert_export_gets_its_own_name_and_names_its_runtime_ops(trained_workdir: Path):
    result = recctl_json("export", "run=latest", "export.format=litert", cwd=trained_workdir)
    folder = Path(result["export_dir"])
    assert folder.parent.name == "mf_litert" and (folder / "model.tflite").is_file()
    assert not (trained_workdir / "outputs" / "exports" / "mf" / folder.name / "model.tflite").exists()
    info = json.loads((folder / "export.json").read_text())
    assert info["name"] == "mf_litert"
    # mf converts to LiteRT builtins only: no Select TF op, and the card says so
    assert info["signatures"]["select_tf_ops"] == [] and result["litert"]["select_tf_ops"] == []
    try:
        import ai_edge_litert  # noqa: F401

        runtime = "ai_edge_litert"
    except ImportError:
        runtime = "tf.lite.Interpreter"
    assert info["signatures"]["checked"]["runtime"].startswith(runtime)
    assert "LiteRT builtin ops only" in (folder / "README.md").read_text()


def test_select_tf_ops_are_read_back_from_the_converted_file():
    import tensorflow as tf

    from recctl.export.litert import select_tf_ops

    def convert(fn):
        function = tf.function(fn, input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [function.get_concrete_function()], function
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        return converter.convert()

    # (a file of builtins only gives []: the mf export above)
    assert select_tf_ops(convert(lambda x: {"y": tf.math.erf(x)})) == ["Erf"]  # no LiteRT builtin for erf
    from types import SimpleNamespace

    from recctl.export import litert

    export_input = SimpleNamespace(index_name="user_index", index_sample="np.array([0], np.int32)")
    job = SimpleNamespace(model=SimpleNamespace(export_input=lambda: export_input))
    sig = {"inputs": ["user_index: int32[batch]"], "outputs": [], "id_maps": ["item_ids.txt"]}
    signature, usage = litert.card(
        job, {"k": 10, "quantize": "none", "signatures": {**sig, "select_tf_ops": ["Erf"]}}
    )
    assert "Select TF ops (Flex delegate) `Erf`" in signature and "tf.lite.Interpreter" in usage


def _run_dir(work: Path) -> Path:
    return sorted(p for p in (work / "outputs" / "runs").iterdir() if (p / "model.keras").is_file())[0]


def _wire_fields(buffer: bytes) -> list[tuple[int, bytes | int]]:
    """Decode one protobuf message's fields (varint and length-delimited wire types) by hand."""

    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = buffer[pos]
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if not byte & 0x80:
                return value, pos

    fields, pos = [], 0
    while pos < len(buffer):
        tag, pos = varint(pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = varint(pos)
        else:
            assert wire == 2, f"unexpected wire type {wire}"
            length, pos = varint(pos)
            value, pos = buffer[pos : pos + length], pos + length
        fields.append((number, value))
    assert pos == len(buffer)
    return fields


def _warmup_requests(path: Path) -> list[tuple[str, str, dict]]:
    """(model name, signature name, {input: TensorProto}) of every PredictionLog in a warmup file."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    out = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        ((number, predict_log),) = _wire_fields(record)
        assert number == 6  # PredictionLog.predict_log
        ((number, request),) = _wire_fields(predict_log)
        assert number == 1  # PredictLog.request
        spec, inputs = {}, {}
        for number, value in _wire_fields(request):
            if number == 1:  # PredictRequest.model_spec
                spec = dict(_wire_fields(value))
            else:
                assert number == 2  # PredictRequest.inputs: map entries {key = 1, value = 2}
                entry = dict(_wire_fields(value))
                inputs[entry[1].decode()] = tensor_pb2.TensorProto.FromString(entry[2])
        out.append((spec.get(1, b"").decode(), spec[3].decode(), inputs))
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        return out
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():  # the real protos agree
        log = prediction_log_pb2.PredictionLog.FromString(record)
        assert log.predict_log.request.model_spec.signature_name == "serving_default"
    return out


def test_saved_model_outputs_are_finite_and_it_carries_a_warmup_request(
    trained_workdir: Path, tmp_path: Path
):
    import tensorflow as tf

    from recctl.export import saved_model
    from recctl.export.registry import ExportJob
    from recctl.runs import load_run

    run_dir = _run_dir(trained_workdir)
    loaded = load_run(run_dir)
    snapshot = loaded.snapshot
    k = snapshot.n_items  # every item: the top-K reaches the seen (left-out) items
    job = ExportJob(loaded.model, snapshot, run_dir, tmp_path / "sm", k, name="recs")
    job.folder.mkdir()
    saved_model.write(job)
    served = tf.saved_model.load(str(job.folder))
    users = tf.constant([str(snapshot.user_ids[0]), str(snapshot.user_ids[1]), "no-such-user"])
    items = tf.constant([[str(snapshot.item_ids[0]), "not-an-item"]] * 3)
    outputs = {
        "serving_default": served.signatures["serving_default"](user_id=users),
        "serving_exclude": served.signatures["serving_exclude"](user_id=users, exclude_item_ids=items),
        "score": served.signatures["score"](user_id=users, item_ids=items),
    }
    for name, out in outputs.items():
        for key, value in out.items():
            if value.dtype.is_floating:
                assert np.isfinite(value.numpy()).all(), (name, key)
    sentinel = np.float32(-1e30)
    assert saved_model.EXCLUDED_SCORE == sentinel
    scores = outputs["serving_default"]["scores"].numpy()
    n_seen = int(np.diff(snapshot.csr("train", "valid", "test").indptr)[0])
    assert (scores[0] == sentinel).sum() == n_seen  # user 0's seen items close the top-K at the sentinel
    assert (outputs["score"]["scores"].numpy()[:, 1] == sentinel).all()  # the unknown item

    # The ONNX/LiteRT function leaves items out at the very same finite value.
    from recctl.export import portable

    function = portable.top_k_function(loaded.model, snapshot.n_items, k)
    context, exclude = portable.sample_inputs(loaded.model, snapshot, 4)
    got = function(tf.constant(context), tf.constant(exclude))["scores"].numpy()
    assert np.isfinite(got).all() and (got[0] == sentinel).sum() == n_seen

    # assets.extra/tf_serving_warmup_requests: one serving_default request TF Serving can replay
    (request,) = _warmup_requests(job.folder / saved_model.WARMUP_FILE)
    model_name, signature_name, inputs = request
    assert (model_name, signature_name) == ("recs", "serving_default")
    signature = served.signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    assert set(inputs) == set(specs) == {"user_id"}
    proto = inputs["user_id"]
    assert tf.as_dtype(proto.dtype) == specs["user_id"].dtype == tf.string
    value = tf.make_ndarray(proto)
    assert specs["user_id"].shape.is_compatible_with(value.shape) and value.shape == (1,)
    assert value[0].decode() == str(snapshot.user_ids[0])
    assert signature(user_id=tf.constant(value))["item_ids"].shape == (1, k)


def test_warmup_request_of_a_history_signature_round_trips(tmp_path: Path):
    from recctl.export.saved_model import write_warmup

    history = np.array([["i001", "i007", "i003"]], dtype=object)
    write_warmup(tmp_path / "assets.extra" / "tf_serving_warmup_requests", "", "history", history)
    ((name, signature, inputs),) = _warmup_requests(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    assert (name, signature) == ("", "serving_default")
    import tensorflow as tf

    assert tf.as_dtype(inputs["history"].dtype) == tf.string
    value = tf.make_ndarray(inputs["history"])
    assert value.shape == (1, 3) and value.astype(str).tolist() == [["i001", "i007", "i003"]]


# Issue #17 part 6: export.include_history=false leaves every user's seen items out of the SavedModel.


def _saved_model_contents(folder: Path) -> tuple[list[np.ndarray], list[bytes]]:
    """Every checkpointed variable, every constant of saved_model.pb's graphs (its functions
    included) and the bytes of every asset file: all that a reader of the folder can get at."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    prefix = str(folder / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    tensors = [np.asarray(reader.get_tensor(name)) for name, _ in tf.train.list_variables(prefix)]
    proto = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    for graph in proto.meta_graphs:
        nodes = list(graph.graph_def.node)
        for function in graph.graph_def.library.function:
            nodes.extend(function.node_def)
        tensors += [tf.make_ndarray(n.attr["value"].tensor) for n in nodes if n.op == "Const"]
    assets = [
        p.read_bytes() for sub in ("assets", "assets.extra") for p in (folder / sub).rglob("*") if p.is_file()
    ]
    return tensors, assets


def _holds_history(tensors: list[np.ndarray], assets: list[bytes], seen) -> bool:
    n_pairs = len(seen.indices)
    for value in tensors:
        if value.dtype.kind in "iu" and value.size in (n_pairs, len(seen.indptr)):
            flat = value.ravel().astype(np.int64)
            if np.array_equal(flat, seen.indices) or np.array_equal(flat, seen.indptr):
                return True
        if value.dtype.kind in "iu" and value.size == n_pairs:  # any int tensor of one entry per interaction
            return True
    return any(seen.indices.astype(np.int64).tobytes() in blob for blob in assets)


def test_include_history_false_leaves_no_seen_items_in_the_saved_model(trained_workdir: Path, tmp_path: Path):
    import tensorflow as tf

    from recctl.export import saved_model
    from recctl.export.card import user_data
    from recctl.export.registry import ExportJob
    from recctl.runs import load_run

    run_dir = _run_dir(trained_workdir)
    loaded = load_run(run_dir)
    snapshot, model = loaded.snapshot, loaded.model
    seen = snapshot.csr("train", "valid", "test")
    folders = {}
    for include in (True, False):  # every item in the top-K: the seen ones show where they land
        job = ExportJob(
            model, snapshot, run_dir, tmp_path / f"sm-{include}", snapshot.n_items, include_history=include
        )
        job.folder.mkdir()
        saved_model.write(job)
        folders[include] = job.folder
        card = saved_model.card(job, {"k": K, "model": "mf"})[0]
        assert ("include_history=false" in card) is (not include)
    assert _holds_history(*_saved_model_contents(folders[True]), seen)  # the scan finds them by default
    assert not _holds_history(*_saved_model_contents(folders[False]), seen)

    # serving_default no longer leaves the seen items out; serving_exclude does, with the client's list
    users = tf.constant([str(snapshot.user_ids[0])])
    mine = {str(snapshot.item_ids[i]) for i in seen.indices[seen.indptr[0] : seen.indptr[1]]}
    served = tf.saved_model.load(str(folders[False]))
    out = served.signatures["serving_default"](user_id=users)
    assert mine <= set(out["item_ids"].numpy().astype(str)[0]) and np.all(out["scores"].numpy() > -1e29)
    excluded = served.signatures["serving_exclude"](
        user_id=users, exclude_item_ids=tf.constant([sorted(mine)])
    )
    assert (excluded["scores"].numpy() == saved_model.EXCLUDED_SCORE).sum() == len(mine)
    assert "no seen-item lists" in user_data(model, "saved_model", False)
    assert "every user's seen items" in user_data(model, "saved_model", True)
    assert "user_ids.txt" in user_data(model, "onnx", False)
    assert "`user_embedding/embeddings`" in user_data(model, "onnx", False)  # one row per user

    # the families whose weights are the interactions themselves are refused by `recctl export`
    from recctl.models.knn import UserKNN
    from recctl.models.lightgcn import LightGCN

    assert UserKNN.interaction_tables == ("train_matrix",) and "edge_items" in LightGCN.interaction_tables

    # a history model's warmup request and card sample then hold no user's items, only popular ones
    from types import SimpleNamespace

    from recctl.models.base import _HISTORY_OF_IDS

    history_model = SimpleNamespace(export_input=lambda: _HISTORY_OF_IDS)
    job = ExportJob(history_model, snapshot, run_dir, tmp_path, K, include_history=False)
    popular = np.argsort(-snapshot.item_popularity(), kind="stable")[:3]
    assert saved_model.sample_input(job).tolist() == [[str(snapshot.item_ids[i]) for i in popular]]
