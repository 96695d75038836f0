"""The SavedModel export: a TensorFlow Serving version folder that speaks original ids.

Signatures (docs/interface.md), over the context the model's `export_input()` names:
  by user (id models): `user_id` string[B]; the user's seen items (train, valid and test) are left
      out of the top-K and an unknown user gets the most popular items; with
      `export.include_history=false` the seen lists are not in the SavedModel at all, nothing is
      left out of `serving_default`, and a client passes the items to leave out to `serving_exclude`;
  by history (sequence, user-vector models): `history` string[B, H], original item ids, most
      recent last ('' pads; unknown ids are dropped before the model takes its latest items); the
      history's items are left out of the top-K.
  serving_default(context) -> item_ids: string[B, k], scores: float32[B, k]
  serving_exclude(context, exclude_item_ids: string[B, E]) -> the same, with the listed items left
      out too ('' pads; unknown ids are ignored). A signature of its own because a SavedModel
      signature has no optional inputs: TF Serving requires every input it declares.
  score(context, item_ids: string[B, C]) -> scores: float32[B, C]
      the model's scores of the given items.
  serving_features(<one string[B] input per user feature column>) -> item_ids, scores (top-K)
      only for models that score a user they never saw from side features (wide_deep and deepfm
      trained with model.user_dropout > 0): raw values, encoded as recctl/data/features.py
      encodes them ('' or an unknown category = unknown; a numeric value that is not a number =
      missing). Nothing is left out: the user has no history.
No output is ever -inf or NaN: an item left out of the top-K (and an unknown item in `score`)
scores EXCLUDED_SCORE, -1e30, the same value the ONNX and LiteRT exports give an excluded item
(TF Serving's REST API would write -inf as `-Infinity`, which strict JSON parsers reject).
`assets.extra/tf_serving_warmup_requests` holds one `serving_default` request (a TFRecord of
PredictionLog protos), which TF Serving replays before the version takes traffic.
The Keras model, the id maps and the seen-items lists (unless include_history=false) are all
inside the SavedModel, so it loads with plain `tf.saved_model.load` (or TF Serving) in a process
that never imports recctl. docs/security.md lists what it holds about users.
"""

from __future__ import annotations

import json
import re

import numpy as np
import tensorflow as tf

from recctl.export.portable import EXCLUDED
from recctl.export.registry import ExportJob

DESCRIPTION = "TensorFlow SavedModel (TF Serving version folder)"
# The score of an excluded or unknown item in every format: finite, so every output is valid JSON.
# In float32, a score below 1e22 in magnitude minus 1e30 rounds to -1e30 itself: ONNX and LiteRT,
# which subtract EXCLUDED from an excluded item's score, return this very value.
EXCLUDED_SCORE = np.float32(-EXCLUDED)
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


def _id_table(ids: np.ndarray) -> tf.lookup.StaticHashTable:
    """Original id -> index (int64; -1 for an unknown id or '' padding)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids.astype(str)), tf.range(len(ids), dtype=tf.int64)),
        default_value=-1,
    )


class ServingModule(tf.Module):
    """The three signatures around one context input; subclasses turn the context into scores."""

    def __init__(self, model, item_ids: np.ndarray, k: int, context: tf.TensorSpec):
        super().__init__()
        self.model = model
        self.k = int(min(k, len(item_ids)))
        self.n_items = len(item_ids)
        self.item_table = _id_table(item_ids)
        self.item_ids = tf.Variable(item_ids.astype(str), trainable=False, dtype=tf.string)
        exclude = tf.TensorSpec([None, None], tf.string, name="exclude_item_ids")
        items = tf.TensorSpec([None, None], tf.string, name="item_ids")
        self.serve = tf.function(self._serve, input_signature=[context])
        self.serve_excluding = tf.function(self._top_k, input_signature=[context, exclude])
        self.score = tf.function(self._score, input_signature=[context, items])

    def _scores(self, context):
        """(scores float32 [B, n_items], (row, item index) int64 pairs left out of the top-K)."""
        raise NotImplementedError

    def _serve(self, context):
        return self._top_k(context, tf.fill([tf.shape(context)[0], 0], ""))

    def _top_k(self, context, exclude_item_ids):
        scores, seen = self._scores(context)
        scores = _leave_out(scores, seen)
        scores = _leave_out(scores, _pairs(self.item_table.lookup(exclude_item_ids)))
        top = tf.math.top_k(scores, k=self.k, sorted=True)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}

    def _score(self, context, item_ids):
        scores, _ = self._scores(context)
        item_index = self.item_table.lookup(item_ids)
        picked = tf.gather(scores, tf.cast(tf.maximum(item_index, 0), tf.int32), batch_dims=1)
        return {"scores": tf.where(item_index >= 0, picked, EXCLUDED_SCORE)}

    def _model_scores(self, history, users):
        context = self.model.context_from_history(history, users)
        return tf.cast(self.model.score_all(context), tf.float32)


class UserServingModule(ServingModule):
    """Serving by user id: the seen lists (unless include_history=False) and the popularity
    fallback live in the SavedModel."""

    def __init__(self, model, snapshot, k: int, include_history: bool = True):
        super().__init__(model, snapshot.item_ids, k, tf.TensorSpec([None], tf.string, name="user_id"))
        self.include_history = bool(include_history)
        self.user_table = _id_table(snapshot.user_ids)
        if self.include_history:
            seen = snapshot.csr("train", "valid", "test")
            self.seen_indptr = tf.Variable(seen.indptr.astype(np.int64), trainable=False)
            self.seen_items = tf.Variable(seen.indices.astype(np.int64), trainable=False)
        self.popularity = tf.Variable(snapshot.item_popularity().astype(np.float32), trainable=False)
        # not a signature: lets `recommend export_dir=` tell a new user (scored from features) from a known one
        self.known_users = tf.function(
            lambda user_id: self.user_table.lookup(user_id) >= 0,
            input_signature=[tf.TensorSpec([None], tf.string, name="user_id")],
        )

    def _scores(self, user_id):
        index = self.user_table.lookup(user_id)
        known = index >= 0
        # an unknown user is scored as user 0, then replaced by popularity (id models have no
        # "unknown user" row); the model needs no history
        safe = tf.cast(tf.maximum(index, 0), tf.int32)
        no_history = tf.zeros([tf.shape(user_id)[0], 0], tf.int32)
        scores = tf.where(known[:, None], self._model_scores(no_history, safe), self.popularity[None, :])
        if not self.include_history:  # nothing to leave out: the client's exclusions only
            return scores, tf.zeros([0, 2], tf.int64)
        starts = tf.gather(self.seen_indptr, tf.cast(safe, tf.int64))
        ends = tf.gather(self.seen_indptr, tf.cast(safe, tf.int64) + 1)
        lengths = tf.where(known, ends - starts, tf.zeros_like(starts))
        rows = tf.repeat(tf.range(tf.shape(user_id)[0], dtype=tf.int64), lengths)
        items = tf.gather(self.seen_items, tf.ragged.range(starts, starts + lengths).flat_values)
        return scores, tf.stack([rows, items], axis=1)


class HistoryServingModule(ServingModule):
    """Serving by history: the context is the user's items themselves, the user is unknown (-1)."""

    def __init__(self, model, snapshot, k: int, include_history: bool = True):
        super().__init__(model, snapshot.item_ids, k, tf.TensorSpec([None, None], tf.string, name="history"))

    def _scores(self, history):
        index = self.item_table.lookup(history)  # int64 [B, H]; -1 for unknown ids and '' padding
        known = tf.ragged.boolean_mask(index, index >= 0)  # ragged [B, None], order kept
        # the known ids compacted, left-padded with -1 (most recent last): what the model's
        # context_from_history takes; it keeps the latest items it needs
        padded = tf.reverse(tf.reverse(known, axis=[1]).to_tensor(default_value=-1), axis=[1])
        users = tf.fill([tf.shape(history)[0]], tf.constant(-1, tf.int32))  # serving knows the history only
        return self._model_scores(tf.cast(padded, tf.int32), users), _pairs(index)


class FeatureServing(tf.Module):
    """`serving_features`: the top-K of users the model never saw, from raw feature strings, one
    input per user feature column (named after it). The same codes as FeatureEncoder.encode."""

    def __init__(self, model, encoder, item_ids: np.ndarray, k: int):
        super().__init__()
        self.model = model
        self.k = int(min(k, len(item_ids)))
        self.item_ids = tf.Variable(item_ids.astype(str), trainable=False, dtype=tf.string)
        self.tables = [
            tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocab or [""], tf.string), tf.range(1, max(len(vocab), 1) + 1, dtype=tf.int32)
                ),
                default_value=0,
            )
            for vocab in encoder.categorical.values()
        ]
        self.n_categorical = len(encoder.categorical)
        self.means = tf.constant([m for m, _ in encoder.numeric.values()] or [0.0], tf.float32)
        self.stds = tf.constant([s for _, s in encoder.numeric.values()] or [1.0], tf.float32)
        self.n_numeric = len(encoder.numeric)
        specs = [tf.TensorSpec([None], tf.string, name=name) for name in feature_inputs(encoder)]
        self.serve = tf.function(self._serve, input_signature=specs)

    def _serve(self, *columns):
        batch = tf.shape(columns[0])[:1]
        text = [tf.strings.strip(c) for c in columns]
        codes = [table.lookup(t) for table, t in zip(self.tables, text[: self.n_categorical], strict=True)]
        codes = tf.stack(codes, axis=1) if codes else tf.zeros(tf.concat([batch, [0]], 0), tf.int32)
        numeric = []
        for j, t in enumerate(text[self.n_categorical :]):
            number = tf.strings.regex_full_match(t, r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
            value = tf.strings.to_number(tf.where(number, t, "0"), tf.float32)
            numeric.append(tf.where(number, (value - self.means[j]) / self.stds[j], 0.0))
        numeric = tf.stack(numeric, axis=1) if numeric else tf.zeros(tf.concat([batch, [0]], 0), tf.float32)
        scores = tf.cast(self.model.score_all_from_features(codes, numeric), tf.float32)
        top = tf.math.top_k(scores, k=self.k, sorted=True)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}


def feature_inputs(encoder) -> list[str]:
    """The `serving_features` input names: the feature columns, with characters a signature input
    cannot have turned into '_'."""
    return [_SIGNATURE_NAME.sub("_", name) for name in encoder.columns]


_SIGNATURE_NAME = re.compile(r"[^A-Za-z0-9_.\-/]")


def _pairs(index):
    """(row, item index) int64 pairs of the known entries of an item index matrix [B, E] (-1 = none)."""
    rows = tf.repeat(tf.range(tf.shape(index)[0], dtype=tf.int64)[:, None], tf.shape(index)[1], axis=1)
    keep = index >= 0
    return tf.stack([tf.boolean_mask(rows, keep), tf.boolean_mask(index, keep)], axis=1)


def _leave_out(scores, pairs):
    """Set the scores at the given (row, item index) pairs to EXCLUDED_SCORE."""
    return tf.tensor_scatter_nd_update(scores, pairs, tf.fill(tf.shape(pairs)[:1], EXCLUDED_SCORE))


def write(job: ExportJob) -> dict:
    """Write the SavedModel into the staging folder; returns the signature description."""
    export = job.model.export_input()
    kind = UserServingModule if export.by_user else HistoryServingModule
    module = kind(job.model, job.snapshot, job.k, job.include_history)
    signatures = {
        "serving_default": module.serve,
        "serving_exclude": module.serve_excluding,
        "score": module.score,
    }
    encoder = _feature_encoder(job)
    if encoder is not None:
        module.features = FeatureServing(job.model, encoder, job.snapshot.item_ids, job.k)
        signatures["serving_features"] = module.features.serve
    tf.saved_model.save(module, str(job.folder), signatures=signatures)
    write_warmup(job.folder / WARMUP_FILE, job.name, export.id_name, sample_input(job))
    context = {export.id_name: export.id_type}
    top_k = {"item_ids": f"string[batch, {module.k}]", "scores": f"float32[batch, {module.k}]"}
    described = {}
    if encoder is not None:
        described["serving_features"] = {
            "inputs": {name: "string[batch] (raw value; '' = unknown)" for name in feature_inputs(encoder)},
            "outputs": top_k,
        }
    return {
        "serving_default": {"inputs": {export.id_name: export.id_description}, "outputs": top_k},
        "serving_exclude": {
            "inputs": {**context, "exclude_item_ids": "string[batch, m] ('' pads)"},
            "outputs": top_k,
        },
        "score": {
            "inputs": {**context, "item_ids": "string[batch, m]"},
            "outputs": {"scores": "float32[batch, m]"},
        },
        **described,
    }


def _feature_encoder(job: ExportJob):
    """The user features' encoder when the model scores unseen users from them, else None."""
    from recctl.data.features import FeatureEncoder

    if not (job.model.export_input().by_user and job.model.serves_features()):
        return None
    encoder = FeatureEncoder.of(job.snapshot, "user")
    return encoder if encoder.columns else None


def sample_input(job: ExportJob) -> np.ndarray:
    """One client's `serving_default` input: the first user's id (string[1]), or that user's
    latest three items as a history (string[1, 3]); with include_history=False, the three most
    popular items instead (no user's own items). The model card's request and the warmup."""
    export, snapshot = job.model.export_input(), job.snapshot
    if export.by_user:
        return np.array([str(snapshot.user_ids[0])], dtype=object)
    if not job.include_history:
        top = np.argsort(-snapshot.item_popularity(), kind="stable")[:3]
        return np.array([[str(snapshot.item_ids[i]) for i in top]], dtype=object)
    seen = snapshot.csr("train", "valid", "test")
    history = [str(snapshot.item_ids[i]) for i in seen.indices[seen.indptr[0] : seen.indptr[1]][-3:]]
    return np.array([history or [""]], dtype=object)


def write_warmup(path, model_name: str, input_name: str, value: np.ndarray) -> None:
    """TF Serving's SavedModel warmup file: a TFRecord holding one PredictionLog whose
    PredictRequest asks `serving_default` for `value`. Built with tensorflow_serving's protos when
    that package is installed, else encoded by hand (the same bytes: proto3 wire format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor = tf.make_tensor_proto(value.astype(bytes) if value.dtype == object else value)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(prediction_log_bytes(model_name, "serving_default", {input_name: tensor}))


def prediction_log_bytes(model_name: str, signature_name: str, inputs: dict) -> bytes:
    """A serialized tensorflow.serving.PredictionLog{predict_log: PredictLog{request: PredictRequest{
    model_spec: ModelSpec{name, signature_name}, inputs}}} (tensorflow_serving/apis/*.proto)."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        pass
    else:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
        )
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        return log.SerializeToString()
    # Field numbers: ModelSpec.name = 1, .signature_name = 3; PredictRequest.model_spec = 1,
    # .inputs = 2 (a map: repeated entries {key = 1, value = 2}); PredictLog.request = 1;
    # PredictionLog.predict_log = 6.
    spec = (_field(1, model_name.encode()) if model_name else b"") + _field(3, signature_name.encode())
    entries = b"".join(
        _field(2, _field(1, name.encode()) + _field(2, tensor.SerializeToString()))
        for name, tensor in inputs.items()
    )
    return _field(6, _field(1, _field(1, spec) + entries))


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def card(job: ExportJob, info: dict) -> tuple[str, str]:
    export, k = job.model.export_input(), info["k"]
    sample = sample_input(job)
    if export.by_user:
        instance, call = {export.id_name: sample[0]}, f'user_id=tf.constant(["{sample[0]}"])'
    else:
        history = [str(x) for x in sample[0]]
        instance, call = {export.id_name: history}, f"history=tf.constant([{history!r}])"
    request = json.dumps({"signature_name": "serving_default", "instances": [instance]})
    name = job.name or info["model"]  # TF Serving's model name: the export's folder name
    note = export.card_note
    if export.by_user and not job.include_history:
        note = (
            "This export holds no user's seen items (`export.include_history=false`): nothing is left out, so the "
            "top-K may repeat items the user already has; pass them to `serving_exclude`. An unknown user gets "
            "the most popular items."
        )
    signature = (
        f"- `serving_default`: {export.card_input} -> `item_ids` (string[batch, {k}]), `scores` (float32[batch, {k}]). "
        f"{note}\n- `serving_exclude`: the same input plus `exclude_item_ids` (string[batch, m], '' pads): "
        "those items are left out too.\n- `score`: the same input plus `item_ids` (string[batch, n]) -> `scores` (float32[batch, n]); "
        f"unknown items score {EXCLUDED_SCORE:.0e}.\n- Every output is finite: when fewer than k items are left to recommend, "
        f"the top-K ends with left-out items scored {EXCLUDED_SCORE:.0e}, never -inf (REST responses stay valid JSON)."
    )
    encoder = _feature_encoder(job)
    if encoder is not None:
        names = ", ".join(f"`{n}`" for n in feature_inputs(encoder))
        signature += (
            f"\n- `serving_features`: a user this model has never seen, from their features: one string[batch] input "
            f"per feature ({names}; '' = unknown, a category the training data did not have = unknown) -> "
            "`item_ids`, `scores` as `serving_default`. Nothing is left out (a new user has no history). Only "
            "wide_deep and deepfm trained with `model.user_dropout` > 0 have it (they learn the unknown-user row)."
        )
    else:
        signature += (
            "\n- No `serving_features`: this model does not score a user it never saw from features "
            "(wide_deep and deepfm trained with `model.user_dropout` > 0 do)."
        )
    usage = f"""TensorFlow Serving REST (`tensorflow_model_server --rest_api_port=8501 --model_name={name} --model_base_path=PARENT_OF_THIS_FOLDER`):

```
curl -d '{request}' http://localhost:8501/v1/models/{name}:predict
```

`{WARMUP_FILE}` holds one `serving_default` request for that input: TF Serving replays it
(`--enable_model_warmup`, on by default) before the version takes traffic.

In Python, without recctl:

```python
import tensorflow as tf
m = tf.saved_model.load("THIS_FOLDER")
out = m.signatures["serving_default"]({call})
print(out["item_ids"].numpy(), out["scores"].numpy())
```"""
    return signature, usage
