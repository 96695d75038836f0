"""Importing this module registers every recctl model class with Keras (for safe-mode loading).

Every module of recctl.models is imported, so a new family file needs no edit here.
"""

import importlib
import pkgutil

import keras_rs  # noqa: F401  (its losses are referenced by compiled checkpoints)

import recctl.models as _models

for _info in pkgutil.iter_modules(_models.__path__):
    if _info.name not in ("registry",):
        importlib.import_module(f"recctl.models.{_info.name}")
