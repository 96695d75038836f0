"""Build a model from its config group and a dataset snapshot.

The config gives the family (`_target_`) and its hyperparameters; the snapshot gives catalogue
sizes, side-feature vocabularies and tables. Only the data arguments the model's constructor
declares are passed, so models never see files and data never knows about models.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from hydra.utils import instantiate
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
        "item_titles": snapshot.item_titles(),  # model=content: the words of each item's title
        "item_popularity": snapshot.item_popularity(),
        "train_pairs": snapshot.pairs("train"),  # (users, items): models fitted in closed form
        "train_ratings": snapshot.ratings("train") if snapshot.has_ratings else None,  # task=rating
    }


def model_class(model_cfg) -> type:
    """The model class a config names, refusing anything but a recctl model (configs are code).

    The dotted-prefix test alone is not enough: `recctl.models.base.keras.layers.Dense` starts with
    it, so the class found must also be a `Recommender` defined in recctl.models; and no nested
    `_target_` may hide in the arguments (instantiate would build it before the model).
    """
    target = model_cfg.get("_target_") if model_cfg is not None else None
    if not target or not str(target).startswith(ALLOWED_PREFIXES):
        raise ConfigError(
            f"model._target_ must name a class in recctl.models (configs are code: only recctl's models "
            f"are instantiated). Received: {target!r}"
        )
    _refuse_nested_targets(model_cfg, "model")
    cls = _locate_class(str(target), "model")
    from recctl.models.base import Recommender

    if not (issubclass(cls, Recommender) and cls.__module__.startswith(ALLOWED_PREFIXES)):
        raise ConfigError(
            f"model._target_ must name a recctl model class (a Recommender in recctl.models). Received: {target!r}"
        )
    return cls


def _locate_class(target: str, section: str) -> type:
    """`package.module.Class` -> the class: the module is imported by name and the class read from
    it, with no attribute walk through other modules (unlike Hydra's locate), and no logging."""
    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{section}._target_={target}: cannot be imported ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(obj, type):
        raise ConfigError(f"{section}._target_={target}: not a class")
    return obj


def _refuse_nested_targets(cfg, section: str) -> None:
    """Only a section's own `_target_` is instantiated: one inside its arguments is refused."""
    container = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_" and where != section:
                    raise ConfigError(
                        f"{where}._target_: nested instantiation is not allowed (configs are code: only "
                        f"the {section} itself is built). Received: {value!r}"
                    )
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(container, section)


# Stand-in data arguments: enough for a constructor to check its hyperparameters.
_PLACEHOLDER_DATA = {
    "n_users": 3,
    "n_items": 3,
    "user_categorical": [],
    "item_categorical": [],
    "user_numeric": 0,
    "item_numeric": 0,
}


def check_model(model_cfg) -> None:
    """Build the model once on a 3x3 stand-in catalogue, so a bad hyperparameter (embedding_dim=0)
    is refused before any data is read, with the constructor's own message."""
    import keras

    cls = model_class(model_cfg)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in _PLACEHOLDER_DATA.items() if k in accepted}
    _instantiate(model_cfg, kwargs)
    keras.backend.clear_session()  # the real model gets the names a first model gets


def _instantiate(model_cfg, kwargs: dict):
    clashes = set(kwargs) & set(OmegaConf.to_container(model_cfg).keys())
    if clashes:
        raise ConfigError(
            f"model.{sorted(clashes)[0]} comes from the dataset and cannot be set in the config"
        )
    try:
        return instantiate(model_cfg, **kwargs, _convert_="all")
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(f"model ({model_cfg._target_}): {str(cause).splitlines()[0]}") from None


def build_model(model_cfg, snapshot: Snapshot):
    cls = model_class(model_cfg)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in data_arguments(snapshot).items() if k in accepted}
    model = _instantiate(model_cfg, kwargs)
    model.load_tables(data_tables(snapshot))
    return model


def check_optimizer(optimizer_cfg) -> None:
    """Reject anything but a Keras optimizer class, nested targets, or a non-positive learning rate,
    before any work starts."""
    target = str(optimizer_cfg.get("_target_", ""))
    if not target.startswith("keras.optimizers."):
        raise ConfigError(f"optimizer._target_ must be a keras.optimizers class. Received: {target!r}")
    _refuse_nested_targets(optimizer_cfg, "optimizer")
    import keras

    cls = _locate_class(target, "optimizer")
    if not issubclass(cls, keras.optimizers.Optimizer):
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
