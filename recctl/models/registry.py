"""Importing this module registers every recctl model class with Keras (for safe-mode loading)."""

import keras_rs  # noqa: F401  (its losses are referenced by compiled checkpoints)

from recctl.models import mf, pop, wide_deep  # noqa: F401
