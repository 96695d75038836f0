"""recctl evaluate: full-ranking metrics of a finished run beside its baselines, with intervals,
written to its metrics.json (and per_user.parquet)."""

from __future__ import annotations

from recctl import console
from recctl.plan import evaluate_plan


def run(cfg, result: dict) -> dict:
    from omegaconf import OmegaConf

    from recctl.config import check_cutoffs
    from recctl.evaluation.gate import check_gate
    from recctl.evaluation.report import evaluate_model
    from recctl.evaluation.tables import metrics_table
    from recctl.evaluation.tasks import task_of
    from recctl.runs import open_finished_run

    plan = evaluate_plan(cfg)
    loaded = open_finished_run(cfg, "evaluate", result=result)
    if task_of(loaded.model).name == "ranking":
        check_cutoffs(plan.evaluation, loaded.snapshot.n_items, f"run {loaded.path}")
    result["model"] = loaded.model_name
    result["dataset"] = {"name": loaded.snapshot.name, "fingerprint": loaded.snapshot.fingerprint}
    result["protocol"] = task_of(loaded.model).protocol(loaded.snapshot, plan.evaluation)

    evaluated = evaluate_model(loaded.model, loaded.snapshot, plan.evaluation, loaded.seed)
    result["metrics"], result["baseline"] = evaluated["metrics"], evaluated["baseline"]
    result["intervals"] = evaluated["intervals"]
    previous = loaded.folder.read_metrics()
    result["seconds"].update({k: previous.get("seconds", {}).get(k) for k in ("fit", "per_epoch", "epochs")})
    previous.update(
        model=loaded.model_name,
        dataset=result["dataset"],
        protocol=result["protocol"],
        metrics=evaluated["metrics"],
        baseline=evaluated["baseline"],
        intervals=evaluated["intervals"],
        evaluation_digests=evaluated["digests"],
        evaluation=OmegaConf.to_container(plan.evaluation),
    )
    loaded.folder.write_evaluation(previous, evaluated["per_user"])
    console.info(metrics_table(evaluated, result["protocol"], loaded.model_name))
    console.info(f"run: {loaded.path}")
    verdict = check_gate(plan.gate, evaluated["metrics"], evaluated["baseline"], evaluated["task"])
    if verdict:
        console.info(verdict)
    return result
