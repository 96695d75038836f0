"""recctl's Optuna sweeper for Hydra (`hydra/sweeper=optuna`), on current Optuna.

Hydra finds sweepers only under the `hydra_plugins` namespace package; this one is a thin shell
around recctl/optuna_search.py, where the search itself lives. Nothing here imports Optuna: Hydra
imports every plugin module on every start.
"""
