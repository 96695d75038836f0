"""recctl: a config-driven training CLI for deep-learning recommender models."""

__version__ = "0.1.0"
