"""recctl export: a finished run -> outputs/exports/<name>/<N>/ (TensorFlow Serving layout + model card);
<name> is export.name, else the model's name (SavedModel) or `<model>_<format>` (the others).

The format is picked from `recctl.export.registry.FORMATS`; each format's module writes it and
describes it for the model card (`recctl/export/card.py` holds the card around that)."""

from __future__ import annotations

import shutil
from pathlib import Path

from recctl import console
from recctl.artifacts import (
    atomic_write_json,
    atomic_write_text,
    environment,
    file_digests,
    now_iso,
    publish_version,
    staging_dir,
)
from recctl.errors import ConfigError, output_error
from recctl.export.registry import FORMATS, ExportJob, default_name


def run(cfg, result: dict) -> dict:
    from recctl.plan import export_plan
    from recctl.runs import load_model, open_finished_run

    plan = export_plan(cfg)
    export, output_dir = plan.export, Path(plan.paths.output_dir)
    loaded = open_finished_run(cfg, "export", with_model=False, result=result)
    run_dir = loaded.path

    # The export folder is made before the model is loaded: an unwritable output folder fails at once.
    name = export.name or default_name(loaded.model_name, export.format)
    parent = _export_parent(output_dir, name)
    target = f"the export under {parent}"
    try:
        staged = staging_dir(parent)
    except OSError as exc:
        raise output_error(exc, target, "paths.output_dir", output_dir) or exc from None
    writing = False
    try:
        from recctl.evaluation.tasks import task_of
        from recctl.export.card import model_card, user_data

        loaded.model = load_model(loaded.folder.model)
        if not export.include_history and loaded.model.interaction_tables:
            raise ConfigError(
                f"export.include_history=false: {loaded.model_name}'s weights hold the training interactions "
                f"({', '.join(loaded.model.interaction_tables)}), so every export of it carries each user's items"
            )
        snapshot = loaded.snapshot
        result["model"] = loaded.model_name
        result["dataset"] = {"name": snapshot.name, "fingerprint": snapshot.fingerprint}
        metrics = loaded.folder.read_metrics()
        # The protocol the run's figures were measured under (sampled candidates say so), else the task's.
        result["protocol"] = metrics.get("protocol") or task_of(loaded.model).protocol(snapshot)
        result["metrics"] = metrics.get("metrics") or result["metrics"]
        result["baseline"] = metrics.get("baseline") or result["baseline"]

        writing = True
        fmt = FORMATS[export.format]
        writer = fmt.load()
        job = ExportJob(
            loaded.model, snapshot, run_dir, staged, export.k, export.quantize, name, export.include_history
        )
        signatures = writer.write(job)
        items = snapshot.items[[c for c in ("item", "item_id", "title") if c in snapshot.items.columns]]
        items.to_parquet(staged / "items.parquet", index=False)
        info = {
            "kind": "export",
            "format": export.format,
            "name": name,
            "k": min(export.k, snapshot.n_items),
            "run": str(run_dir.resolve()),
            "model": loaded.model_name,
            "dataset": result["dataset"],
            "created_at": now_iso(),
            "signatures": signatures,
            "quantize": export.quantize if fmt.quantizes else None,
            "include_history": export.include_history,
            "user_data": user_data(loaded.model, export.format, export.include_history),
            "environment": environment(),
        }
        sections = writer.card(job, info)
        card = model_card(info, metrics, result["protocol"], writer.DESCRIPTION, sections)
        atomic_write_text(staged / "README.md", card)
        # Written last, with the digest of every other file: export.json present = export complete,
        # and a copied or served version can be checked against it.
        info["files"] = file_digests(staged, exclude=("export.json",))
        atomic_write_json(staged / "export.json", info)
        final = publish_version(staged, parent)
    except BaseException as exc:
        shutil.rmtree(staged, ignore_errors=True)
        if writing and isinstance(exc, OSError):
            raise output_error(exc, target, "paths.output_dir", output_dir) or exc from None
        raise
    result["export_dir"] = str(final.resolve())
    result["format"] = export.format
    if hasattr(writer, "summary"):
        result.update(writer.summary(signatures))
    console.info(f"exported {loaded.model_name} ({export.format}, top-{info['k']}) to {final}")
    return result


def _export_parent(output_dir: Path, name: str) -> Path:
    """outputs/exports/<name>/, refusing a name (export.name, or the run's model) that would leave it."""
    exports = output_dir / "exports"
    parent = exports / name
    if name in ("", ".", "..") or not parent.resolve().is_relative_to(exports.resolve()):
        raise ConfigError(f"export.name must be a folder name inside {exports}/. Received: {name!r}")
    return parent
