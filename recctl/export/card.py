"""The model card (README.md of every export): one template, the format's own sections inside it."""

from __future__ import annotations

import json
import shlex
import sys

from recctl import __version__

METRICS = ("ndcg@10", "hr@10", "recall@10", "mrr@10", "auc")
VERSIONS = ("recctl", "tensorflow", "keras", "python")


def model_card(info: dict, metrics: dict, protocol: str, description: str, sections: tuple[str, str]) -> str:
    """`info` is export.json's content, `metrics` the run's metrics.json, `protocol` the snapshot's
    protocol (used when metrics.json names none), `description` the format's DESCRIPTION and
    `sections` its card's (signature, usage)."""
    test = (metrics.get("metrics") or {}).get("test") or {}
    pop = ((metrics.get("baseline") or {}).get("pop") or {}).get("test") or {}
    rows = "\n".join(
        f"| {k} | {test[k]:.4f} | {pop.get(k, float('nan')):.4f} |" for k in METRICS if k in test
    )
    signature, usage = sections
    command = "recctl export " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    versions = {k: v for k, v in info["environment"].items() if k in VERSIONS}
    return f"""# {info["model"]} on {info["dataset"]["name"]} ({info["format"]})

Exported by recctl {__version__} on {info["created_at"]} from run `{info["run"]}` with `{command}`.

- Dataset: `{info["dataset"]["name"]}`, snapshot fingerprint `{info["dataset"]["fingerprint"]}`
- Model config: see `{info["run"]}/config.yaml`
- Format: {description}; top-{info["k"]} baked in.
- About users: {info.get("user_data", "see docs/security.md")}

## Metrics (test, full ranking)

Protocol: {metrics.get("protocol", protocol)}

| metric | model | pop |
|---|---|---|
{rows}

## Input signature

{signature}

## Use it

{usage}

Versions: {json.dumps(versions)}
"""


def index_signature(info: dict) -> str:
    """The signature section of the integer-index formats (ONNX, LiteRT)."""
    sig = info["signatures"]
    return "\n".join(
        [f"- input `{x}`" for x in sig["inputs"]]
        + [f"- output `{x}`" for x in sig["outputs"]]
        + [f"- id maps: {', '.join(f'`{m}`' for m in sig['id_maps'])} (line i = index i)"]
    )


def user_data(model, fmt: str, include_history: bool) -> str:
    """The card's "About users" line and export.json's `user_data`: what the export holds about
    the training users (docs/security.md spells it out per setting)."""
    by_user = model.export_input().by_user
    held = []
    if by_user:
        held.append(
            "the list of user ids (" + ("the id table" if fmt == "saved_model" else "`user_ids.txt`") + ")"
        )
    if by_user and fmt == "saved_model":
        held.append(
            "every user's seen items (train, valid and test; left out of `serving_default`)"
            if include_history
            else "no seen-item lists (`export.include_history=false`: `serving_default` leaves nothing out)"
        )
    per_user = sorted(
        {key for key, axis in model.id_axes().items() if axis.space == "user"}
        | {name for name in model.data_tables if name.startswith("user")}
    )
    if per_user:
        held.append("weights with one row per user: " + ", ".join(f"`{w}`" for w in per_user))
    if model.interaction_tables:
        held.append(
            "the training interactions in the weights: "
            + ", ".join(f"`{w}`" for w in model.interaction_tables)
        )
    return "; ".join(held) or "nothing per user (the client sends the history)"
