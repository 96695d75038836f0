"""A sweep job's link to its Optuna trial: per-epoch validation figures go to the trial, and the
trial's pruner may stop the job early (recctl/optuna_search.py sets the link up).

Outside an Optuna sweep (no RECCTL_OPTUNA_* variables) nothing here runs and Optuna is not imported.
"""

from __future__ import annotations

import os

import keras

from recctl import console
from recctl.optuna_search import ENV_PRUNER, ENV_STORAGE, ENV_STUDY, ENV_TRIAL


class ReportToTrial(keras.callbacks.Callback):
    """After each validated epoch: report `val_<monitor>` to the trial; stop when it is pruned.

    Runs after RankingValidation (which writes the figure into the epoch logs). A pruned job keeps
    its best weights and is evaluated like any other; `pruned_at_epoch` says where it stopped.
    """

    def __init__(self, trial, monitor: str):
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.pruned_at_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(f"val_{self.monitor}")
        if value is None:  # not a validation epoch (trainer.validate_every)
            return
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_at_epoch = epoch + 1
            self.model.stop_training = True
            console.info(
                f"optuna: trial {self.trial.number} pruned after epoch {epoch + 1} "
                f"({self.monitor}={float(value):.4f} is behind the earlier trials at this epoch)"
            )


def trial_callback(monitor: str) -> ReportToTrial | None:
    """The callback of this job's trial, or None outside an Optuna sweep with a reachable study."""
    storage, study_name, trial_id = (os.environ.get(k) for k in (ENV_STORAGE, ENV_STUDY, ENV_TRIAL))
    if not (storage and study_name and trial_id):
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name, storage=storage, pruner=_pruner(os.environ.get(ENV_PRUNER))
    )
    return ReportToTrial(optuna.trial.Trial(study, int(trial_id)), monitor)


def _pruner(spec: str | None):
    import optuna

    if not spec or spec == "none":
        return optuna.pruners.NopPruner()
    _, startup, warmup = (spec.split(":") + ["5", "1"])[:3]
    # steps are epoch numbers from 1, and Optuna prunes from step == n_warmup_steps on
    return optuna.pruners.MedianPruner(n_startup_trials=int(startup), n_warmup_steps=int(warmup) + 1)
