"""Build a model from its config group and a dataset snapshot.

The config gives the family (`_target_`) and its hyperparameters; the snapshot gives catalogue
sizes, side-feature vocabularies and tables. Only the data arguments the model's constructor
declares are passed, so models never see files and data never knows about models.
"""

from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from recctl.data.snapshot import Snapshot
from recctl.errors import ConfigError

ALLOWED_PREFIXES = ("recctl.models.",)


def data_arguments(snapshot: Snapshot) -> dict[str, Any]:
    user_cat, user_vocab, user_num = snapshot.side_features("user")
    item_cat, item_vocab, item_num = snapshot.side_features("item")
    return {
        "n_users": snapshot.n_users,
        "n_items": snapshot.n_items,
        "user_categorical": user_vocab,
        "item_categorical": item_vocab,
        "user_numeric": user_num.shape[1],
        "item_numeric": item_num.shape[1],
    }


def data_tables(snapshot: Snapshot) -> dict[str, Any]:
    user_cat, _, user_num = snapshot.side_features("user")
    item_cat, _, item_num = snapshot.side_features("item")
    return {
        "user_categorical": user_cat,
        "item_categorical": item_cat,
        "user_numeric": user_num,
        "item_numeric": item_num,
        "item_popularity": snapshot.item_popularity(),
    }


def model_class(model_cfg) -> type:
    target = model_cfg.get("_target_") if model_cfg is not None else None
    if not target or not str(target).startswith(ALLOWED_PREFIXES):
        raise ConfigError(
            f"model._target_ must name a class in recctl.models (configs are code: only recctl's models "
            f"are instantiated). Received: {target!r}"
        )
    try:
        return get_class(target)
    except Exception as exc:
        raise ConfigError(f"model._target_={target}: {exc}") from None


def build_model(model_cfg, snapshot: Snapshot):
    cls = model_class(model_cfg)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in data_arguments(snapshot).items() if k in accepted}
    clashes = set(kwargs) & set(OmegaConf.to_container(model_cfg).keys())
    if clashes:
        raise ConfigError(
            f"model.{sorted(clashes)[0]} comes from the dataset and cannot be set in the config"
        )
    try:
        model = instantiate(model_cfg, **kwargs, _convert_="all")
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(f"model ({model_cfg._target_}): {str(cause).splitlines()[0]}") from None
    model.load_tables(data_tables(snapshot))
    return model


def check_optimizer(optimizer_cfg) -> None:
    """Reject a non-Keras target or a non-positive learning rate before any work starts."""
    target = str(optimizer_cfg.get("_target_", ""))
    if not target.startswith("keras.optimizers."):
        raise ConfigError(f"optimizer._target_ must be a keras.optimizers class. Received: {target!r}")
    lr = optimizer_cfg.get("learning_rate")
    if lr is not None and (not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"optimizer.learning_rate must be a positive number. Received: {lr!r}")


def build_optimizer(optimizer_cfg):
    check_optimizer(optimizer_cfg)
    target = str(optimizer_cfg.get("_target_", ""))
    try:
        return instantiate(optimizer_cfg)
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(f"optimizer ({target}): {str(cause).splitlines()[0]}") from None
