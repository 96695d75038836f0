"""What a model's task decides: which labels it trains on, the figure watched at validation, how a
split is evaluated, and which baseline stands beside it. One table (`TASKS`) keyed by the model's
`task` attribute, so a task of its own (rating regression, issue #16) is one entry here, not a
switch in the pipelines, fit, train and evaluate.

- ranking (implicit feedback): trained on positives with sampled negatives; full ranking over the
  catalogue, history masked; pop beside it.
- ctr (labelled rows): trained on the 0/1 labels; AUC and logloss of predicted probabilities; pop's
  counts as the score.
- rating (rated rows): trained on the rating value (squared error); RMSE and MAE, lower is better;
  the regularised bias model (models/bias.py) beside it.
"""

from __future__ import annotations

from collections.abc import Callable

from recctl.config import COLD_ITEMS_NOT_SAMPLED, CTR_NEEDS_LABELS, RATING_NEEDS_RATINGS
from recctl.data.snapshot import Snapshot
from recctl.errors import ConfigError
from recctl.evaluation.uncertainty import PerUser  # noqa: F401  (named in Evaluated)

Metrics = dict[str, float]
# A split's figures, and each evaluated user's values where the metrics average over users (the
# input of intervals and comparisons; evaluation/uncertainty.py), else None.
Evaluated = tuple[Metrics, "PerUser | None"]


def task_of(model) -> RankingTask | ClickTask | RatingTask:
    return TASKS[getattr(model, "task", "ranking")]


def candidate_sampler(settings, snapshot: Snapshot, split: str, seed: int):
    """The final evaluation's candidates: None (the whole catalogue) unless evaluation.candidates=sampled."""
    if getattr(settings, "candidates", "full") != "sampled":
        return None
    if snapshot.cold_side == "items":
        raise ConfigError(COLD_ITEMS_NOT_SAMPLED)
    from recctl.evaluation.ranking import CandidateSampler

    return CandidateSampler(snapshot, split, settings.sampled.negatives, settings.sampled.by, seed)


def ranking_protocol(snapshot: Snapshot) -> str:
    """The protocol line before a model is known (prepare, a run that has not built its model yet)."""
    return TASKS["ranking"].protocol(snapshot)


class RankingTask:
    name = "ranking"
    lower_is_better = False  # of the monitored figure

    def training_labels(self, snapshot: Snapshot):
        return None  # implicit feedback: positives, with negatives sampled by the pipeline

    def protocol(self, snapshot: Snapshot, settings=None) -> str:
        """`settings`: the evaluation section (None: the default, full ranking)."""
        if settings is not None and settings.candidates == "sampled":
            by = settings.sampled.by
            return (
                f"{snapshot.split_description()}; SAMPLED candidates: each user's targets ranked among "
                f"{settings.sampled.negatives} {by}-sampled unseen items (not comparable with full "
                "ranking); seen: train items at valid, train+valid items at test"
            )
        if snapshot.cold_side == "users":
            return (
                f"{snapshot.split_description()}; full ranking over all {snapshot.n_items} items; "
                "nothing masked (cold users have no history)"
            )
        if snapshot.cold_side == "items":
            counts = {s: len(snapshot.cold_candidates(s)) for s in ("valid", "test")}
            return (
                f"{snapshot.split_description()}; candidates: the split's cold items only ({counts['test']} "
                f"at test, {counts['valid']} at valid, of {snapshot.n_items} items); masked: train items at "
                "valid, train+valid items at test"
            )
        return (
            f"{snapshot.split_description()}; full ranking over all {snapshot.n_items} items; "
            "masked: train items at valid, train+valid items at test"
        )

    def monitor(self, configured: str) -> str:
        return configured  # trainer.monitor, a ranking metric at a cut-off (ndcg@10)

    def validator(self, model, snapshot: Snapshot, monitor: str, batch_size: int) -> Callable[[], Metrics]:
        """The per-epoch validation: only the monitored metric (and ndcg/hr) at its cut-off, no AUC."""
        from recctl.evaluation.ranking import evaluate_split
        from recctl.evaluation.report import score_function

        name, k = monitor.split("@")
        score_fn = score_function(model, snapshot, "valid")
        batch = model.scoring_batch_size(batch_size)
        return lambda: evaluate_split(
            score_fn,
            snapshot,
            "valid",
            [int(k)],
            sorted({name, "ndcg", "hr"}),
            batch,
            with_auc=False,
            ties=model.score_ties,
        )

    def evaluate(self, model, snapshot: Snapshot, settings, seed: int, split: str) -> Evaluated:
        from recctl.evaluation.pointwise import probability_function
        from recctl.evaluation.ranking import evaluate_split_per_user, pointwise_logloss
        from recctl.evaluation.report import score_function

        ks, names = [int(k) for k in settings.ks], [str(n) for n in settings.metrics]
        batch = model.scoring_batch_size(int(settings.batch_size))
        metrics, per_user = evaluate_split_per_user(
            score_function(model, snapshot, split),
            snapshot,
            split,
            ks,
            names,
            batch,
            ties=model.score_ties,
            candidates=candidate_sampler(settings, snapshot, split, seed),
        )
        if model.emits_probabilities:
            negatives = settings.logloss_negatives or getattr(model, "num_negatives", 1)
            metrics["logloss"] = pointwise_logloss(
                probability_function(model), snapshot, split, int(negatives), seed
            )
        return metrics, per_user

    def baseline(self, snapshot: Snapshot, settings, split: str, seed: int) -> Evaluated:
        from recctl.evaluation.ranking import evaluate_split_per_user
        from recctl.evaluation.report import popularity_score_function

        ks, names = [int(k) for k in settings.ks], [str(n) for n in settings.metrics]
        return evaluate_split_per_user(
            popularity_score_function(snapshot),
            snapshot,
            split,
            ks,
            names,
            int(settings.batch_size),
            ties="index",  # pop's definition (models/pop.py)
            candidates=candidate_sampler(settings, snapshot, split, seed),
        )

    def feature_baseline(self, snapshot: Snapshot, settings, split: str, seed: int) -> Evaluated:
        """feature_pop: items ranked by the training popularity of their side-feature values (the
        baseline of dataset.split=cold_items, where pop's counts are all zero)."""
        from recctl.evaluation.ranking import evaluate_split_per_user
        from recctl.evaluation.report import feature_popularity_score_function

        ks, names = [int(k) for k in settings.ks], [str(n) for n in settings.metrics]
        return evaluate_split_per_user(
            feature_popularity_score_function(snapshot),
            snapshot,
            split,
            ks,
            names,
            int(settings.batch_size),
            ties="index",
            candidates=candidate_sampler(settings, snapshot, split, seed),
        )


class ClickTask:
    name = "ctr"
    lower_is_better = False

    def training_labels(self, snapshot: Snapshot):
        """The training rows' 0/1 labels (dataset.label_threshold made them)."""
        if not snapshot.has_labels:
            raise ConfigError(CTR_NEEDS_LABELS)
        return snapshot.labels("train")

    def protocol(self, snapshot: Snapshot, settings=None) -> str:
        return (
            f"CTR: label = rating >= {snapshot.stats.get('label_threshold')} (lower ratings kept as "
            f"negatives), {snapshot.stats['split']} split; AUC and logloss over the split's labelled rows"
        )

    def monitor(self, configured: str) -> str:
        return "auc"  # labelled rows: validated on AUC whatever trainer.monitor says

    def validator(self, model, snapshot: Snapshot, monitor: str, batch_size: int) -> Callable[[], Metrics]:
        from recctl.evaluation.pointwise import pointwise_metrics, probability_function

        prob_fn = probability_function(model)
        return lambda: pointwise_metrics(prob_fn, snapshot, "valid")

    def evaluate(self, model, snapshot: Snapshot, settings, seed: int, split: str) -> Evaluated:
        """AUC and logloss over labelled rows: row-level figures, so no per-user values (no intervals)."""
        from recctl.evaluation.pointwise import pointwise_metrics, probability_function

        return pointwise_metrics(probability_function(model), snapshot, split), None

    def baseline(self, snapshot: Snapshot, settings, split: str, seed: int) -> Evaluated:
        from recctl.evaluation.pointwise import popularity_pointwise

        return popularity_pointwise(snapshot, split), None


class RatingTask:
    """Regression on the rating of each labelled row; the split is the dataset's, as configured."""

    name = "rating"
    lower_is_better = True

    def training_labels(self, snapshot: Snapshot):
        if not snapshot.has_ratings:
            raise ConfigError(RATING_NEEDS_RATINGS)
        return snapshot.ratings("train")

    def protocol(self, snapshot: Snapshot, settings=None) -> str:
        return (
            f"RATING: predicted vs. actual rating of every row, {snapshot.stats['split']} split "
            f"({snapshot.stats['train']}/{snapshot.stats['valid']}/{snapshot.stats['test']} rows); "
            "RMSE and MAE over the split's rated rows, lower is better (no ranking)"
        )

    def monitor(self, configured: str) -> str:
        return "rmse"  # rated rows: validated on RMSE whatever trainer.monitor says

    def validator(self, model, snapshot: Snapshot, monitor: str, batch_size: int) -> Callable[[], Metrics]:
        from recctl.evaluation.pointwise import rating_function, rating_metrics

        predict = rating_function(model)
        return lambda: rating_metrics(predict, snapshot, "valid")

    def evaluate(self, model, snapshot: Snapshot, settings, seed: int, split: str) -> Evaluated:
        """Row-level figures: no per-user values, so no intervals (docs/evaluation.md)."""
        from recctl.evaluation.pointwise import rating_function, rating_metrics

        if not snapshot.has_ratings:
            raise ConfigError(RATING_NEEDS_RATINGS)
        return rating_metrics(rating_function(model), snapshot, split), None

    def baseline(self, snapshot: Snapshot, settings, split: str, seed: int) -> Evaluated:
        raise ConfigError("pop does not apply to model.task=rating: its baseline is bias")


TASKS = {"ranking": RankingTask(), "ctr": ClickTask(), "rating": RatingTask()}
