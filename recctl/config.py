"""Structured-config schemas: Hydra validates every composed config against these before any work.

Types are checked by OmegaConf at composition (``trainer.epochs=abc`` fails there); ranges and
cross-field rules are checked by :func:`validate` before any data is read. Model, optimizer and
logger sections are ``_target_`` configs whose arguments are checked by the constructors they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from recctl.errors import ConfigError


@dataclass
class Columns:
    user: str | None = "user"
    item: str | None = "item"
    rating: str | None = None
    timestamp: str | None = None


@dataclass
class FeatureTable:
    """An optional side-feature file for users or items (csv datasets)."""

    path: str | None = None
    id_column: str | None = None
    sep: str | None = None
    header: bool = True
    columns: list[str] | None = None  # feature columns to use; null = every other column


@dataclass
class SyntheticSpec:
    n_users: int = 2000
    n_items: int = 1000
    mean_interactions: float = 50.0
    min_interactions: int = 5
    n_categories: int = 20
    latent_dim: int = 16
    popularity_exponent: float = 1.0
    popularity_weight: float = 1.0
    category_weight: float = 1.5
    individual_weight: float = 1.0
    sequence_prob: float = 0.4
    temperature: float = 1.0
    chunk_users: int = 2000


@dataclass
class DatasetConfig:
    name: str = MISSING
    source: str = MISSING  # synthetic | movielens_100k | table
    root: str | None = None  # folder of the raw files (ml_100k)
    download: bool = True  # ml_100k: fetch the official zip when root is empty and online
    path: str | None = None  # csv: interactions file (csv/tsv/parquet)
    format: str = "auto"  # auto | csv | parquet
    sep: str = ","
    header: bool = True
    encoding: str = "utf-8"
    columns: Columns = field(default_factory=Columns)
    user_features: FeatureTable = field(default_factory=FeatureTable)
    item_features: FeatureTable = field(default_factory=FeatureTable)
    rating_threshold: float | None = None  # implicit conversion; null = every row a positive
    label_threshold: float | None = None  # CTR labels: keep every row, label = rating >= threshold
    duplicates: str = "keep_first"  # keep_first | keep_last | keep_all | error
    min_user_interactions: int = 0  # iterative k-core; 0 = off
    min_item_interactions: int = 0
    split: str = "loo"  # loo | temporal | random
    split_ratio: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    # No timestamp column, but the file's rows are in time order: sequence models may use that order.
    row_order_is_time: bool = False
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)


@dataclass
class Paths:
    data_dir: str = "data"
    output_dir: str = "outputs"


@dataclass
class TrainerConfig:
    epochs: int = 30
    batch_size: int = 1024
    deterministic: bool = False
    early_stopping: bool = True
    patience: int = 4
    min_updates: int = 1000  # early stopping waits for this many optimizer updates
    monitor: str = "ndcg@10"
    min_delta: float = 0.0
    restore_best: bool = True
    validate_every: int = 1
    evaluate_test: bool = True
    jit_compile: Any = "auto"  # true | false | auto (the model family's measured preference)
    steps_per_execution: Any = "auto"  # auto: 32 on one device, 1 under mirrored/multi_worker
    lr_schedule: Any | None = None
    checkpoint: bool = True
    verbose: str = "auto"  # auto | progress | lines | quiet


@dataclass
class EvaluationConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    metrics: list[str] = field(
        default_factory=lambda: ["hr", "ndcg", "recall", "mrr", "precision", "map", "coverage"]
    )
    batch_size: int = 512
    baseline: bool = True
    logloss_negatives: int | None = None  # null: the model's own num_negatives (its training ratio)


@dataclass
class GateConfig:
    metric: str | None = None  # e.g. ndcg@10
    split: str = "test"
    min: float | None = None
    min_lift: float | None = None


@dataclass
class StrategyConfig:
    name: str = "auto"  # auto | cpu | one_device | mirrored | multi_worker | tpu (docs/distributed.md)
    device: str | None = None  # one_device: e.g. /gpu:1 (default: /gpu:0 if there is one, else /cpu:0)
    devices: list[str] | None = None  # mirrored: e.g. [/gpu:0, /gpu:1]; null = every local GPU
    logical_cpus: int = 0  # mirrored: split the CPU into N logical devices (correctness checks)
    cluster_resolver: str = "tf_config"  # multi_worker: tf_config | slurm
    communication: str = "auto"  # multi_worker collectives: auto | ring | nccl
    timeout_seconds: float = 300.0  # multi_worker: a collective waiting longer fails the job
    tpu: str | None = None  # tpu: name or grpc:// address for TPUClusterResolver; null = local
    mixed_precision: str | None = None  # null | mixed_float16 | mixed_bfloat16


@dataclass
class ExportConfig:
    format: str = "saved_model"  # saved_model | keras | onnx | litert
    k: int = 10
    name: str | None = None
    quantize: str = "none"  # litert only: none | dynamic | float16


_cs = ConfigStore.instance()
_cs.store(group="dataset", name="schema", node=DatasetConfig)
_cs.store(group="paths", name="schema", node=Paths)
_cs.store(group="trainer", name="schema", node=TrainerConfig)
_cs.store(group="evaluation", name="schema", node=EvaluationConfig)
_cs.store(group="gate", name="schema", node=GateConfig)
_cs.store(group="strategy", name="schema", node=StrategyConfig)
_cs.store(group="export", name="schema", node=ExportConfig)


SOURCES = ("synthetic", "movielens_100k", "table")
SPLITS = ("loo", "temporal", "random")
DUPLICATES = ("keep_first", "keep_last", "keep_all", "error")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate_dataset(d: Any) -> None:
    """Range and cross-field checks for the dataset section (before any file is read)."""
    _check(d.source in SOURCES, f"dataset.source must be one of {', '.join(SOURCES)}. Received: {d.source!r}")
    _check(d.split in SPLITS, f"dataset.split must be one of {', '.join(SPLITS)}. Received: {d.split!r}")
    _check(
        d.duplicates in DUPLICATES,
        f"dataset.duplicates must be one of {', '.join(DUPLICATES)}. Received: {d.duplicates!r}",
    )
    _check(
        d.format in ("auto", "csv", "parquet"),
        f"dataset.format must be auto, csv or parquet. Received: {d.format!r}",
    )
    ratio = list(d.split_ratio)
    _check(
        len(ratio) == 3 and all(r >= 0 for r in ratio) and abs(sum(ratio) - 1.0) < 1e-6 and ratio[0] > 0,
        f"dataset.split_ratio must be three non-negative fractions summing to 1. Received: {ratio}",
    )
    _check(
        d.split == "loo" or ratio[1] + ratio[2] > 0,
        f"dataset.split_ratio={ratio} leaves nothing to validate or test on: give valid or test a share",
    )
    _check(
        d.min_user_interactions >= 0,
        f"dataset.min_user_interactions must be >= 0. Received: {d.min_user_interactions}",
    )
    _check(
        d.min_item_interactions >= 0,
        f"dataset.min_item_interactions must be >= 0. Received: {d.min_item_interactions}",
    )
    if d.source == "table":
        _check(bool(d.path), "dataset.path is required for dataset=csv (the interactions file)")
        _check(bool(d.columns.user), "dataset.columns.user is required (the user id column)")
        _check(bool(d.columns.item), "dataset.columns.item is required (the item id column)")
        _check(len(d.sep) >= 1, "dataset.sep must not be empty")
    if d.source == "synthetic":
        s = d.synthetic
        _check(s.n_users >= 3, f"dataset.synthetic.n_users must be >= 3. Received: {s.n_users}")
        _check(s.n_items >= 3, f"dataset.synthetic.n_items must be >= 3. Received: {s.n_items}")
        _check(
            s.mean_interactions >= 3,
            f"dataset.synthetic.mean_interactions must be >= 3. Received: {s.mean_interactions}",
        )
        _check(
            0 <= s.sequence_prob <= 1,
            f"dataset.synthetic.sequence_prob must be in [0, 1]. Received: {s.sequence_prob}",
        )
        _check(
            s.n_categories >= 1, f"dataset.synthetic.n_categories must be >= 1. Received: {s.n_categories}"
        )
        _check(s.latent_dim >= 1, f"dataset.synthetic.latent_dim must be >= 1. Received: {s.latent_dim}")
