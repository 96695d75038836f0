"""recctl evaluate: full-ranking metrics of a finished run beside pop, written to its metrics.json."""

from __future__ import annotations

from pathlib import Path

from recctl import console, settings
from recctl.artifacts import atomic_write_json, read_json, read_manifest, resolve_run
from recctl.data.prepare import check_run_dataset


def run(cfg, result: dict) -> dict:
    from omegaconf import OmegaConf

    from recctl.evaluation.gate import check_gate, gate_settings

    evaluation = settings.evaluation(cfg)
    gate = gate_settings(cfg.get("gate"))
    run_dir = resolve_run(cfg.get("run"), Path(settings.paths(cfg).output_dir))
    result["run_dir"] = str(run_dir.resolve())
    check_run_dataset(cfg.get("dataset"), read_manifest(run_dir), str(run_dir), "evaluate")

    from recctl.runs import load_run

    loaded = load_run(run_dir)
    result["model"] = loaded.model_name
    result["dataset"] = {"name": loaded.snapshot.name, "fingerprint": loaded.snapshot.fingerprint}
    result["protocol"] = loaded.snapshot.protocol(getattr(loaded.model, "task", "ranking"))

    from recctl.evaluation.report import evaluate_model, metrics_table

    evaluated = evaluate_model(loaded.model, loaded.snapshot, evaluation, loaded.seed)
    result["metrics"], result["baseline"] = evaluated["metrics"], evaluated["baseline"]
    previous = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    result["seconds"].update({k: previous.get("seconds", {}).get(k) for k in ("fit", "per_epoch", "epochs")})
    previous.update(
        model=loaded.model_name,
        dataset=result["dataset"],
        protocol=result["protocol"],
        metrics=evaluated["metrics"],
        baseline=evaluated["baseline"],
        evaluation=OmegaConf.to_container(evaluation),
    )
    atomic_write_json(run_dir / "metrics.json", previous)
    console.info(metrics_table(evaluated, result["protocol"], loaded.model_name))
    console.info(f"run: {run_dir}")
    verdict = check_gate(gate, evaluated["metrics"], evaluated["baseline"])
    if verdict:
        console.info(verdict)
    return result
