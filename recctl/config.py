"""The checked config: structured-config schemas, and the checks each section gets before any work.

Types are checked by OmegaConf at composition (``trainer.epochs=abc`` fails there), and again by
:func:`merge_section` for a section a user's own config files supply; ranges and cross-field rules
are checked by the ``checked_*`` / ``check_*`` functions (``validate_dataset`` for the dataset)
before any data is read. ``recctl.plan`` assembles them into one plan per command. Model, optimizer
and logger sections are ``_target_`` configs whose arguments are checked by the constructors they
name (training/factory.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from recctl.data import sources
from recctl.errors import ConfigError
from recctl.training import strategies


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
    split: str = "loo"  # loo | temporal | random | time | cold_users | cold_items
    # split=time: [valid_from, test_from] in the timestamp column's units: rows before valid_from
    # train, up to test_from valid, the rest test (one clock for every user; docs/evaluation.md).
    time_cutoffs: list[float] | None = None
    # cold_users / cold_items: the share of users (items) held out of training for test, and the
    # same share again for validation (docs/evaluation.md).
    cold_share: float = 0.1
    # Rows of one user with the same timestamp, in time order: "row" (the file's order) or "hash" (a
    # hash of the user and item ids: independent of the file's row order and of item ids).
    ties: str = "row"
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
    carry_optimizer: bool = False  # init_from=: keep the source run's optimizer state (docs/resume.md)


@dataclass
class SampledCandidates:
    negatives: int = 100
    by: str = "uniform"  # uniform | popularity


@dataclass
class EvaluationConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    metrics: list[str] = field(
        default_factory=lambda: ["hr", "ndcg", "recall", "mrr", "precision", "map", "coverage"]
    )
    batch_size: int = 512
    baselines: list[str] = field(default_factory=lambda: ["pop"])  # evaluation/baselines.py
    bootstrap: int = 1000  # resamples for 95% intervals over users; 0 turns them off
    candidates: str = "full"  # full | sampled (paper comparability only: docs/evaluation.md)
    sampled: SampledCandidates = field(default_factory=SampledCandidates)
    logloss_negatives: int | None = None  # null: the model's own num_negatives (its training ratio)


@dataclass
class GateConfig:
    metric: str | None = None  # e.g. ndcg@10
    split: str = "test"
    min: float | None = None
    max: float | None = None  # the ceiling of a lower-is-better metric (rmse, mae, logloss)
    min_lift: float | None = None
    baseline: str = "pop"  # which of evaluation.baselines gate.min_lift is measured against


@dataclass
class CompareGateConfig:
    metric: str | None = None  # e.g. ndcg@10: exit 3 when run is significantly worse than base
    split: str = "test"


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
    include_history: bool = True  # false: no user's seen items in the export (docs/security.md)


_cs = ConfigStore.instance()
_cs.store(group="dataset", name="schema", node=DatasetConfig)
_cs.store(group="paths", name="schema", node=Paths)
_cs.store(group="trainer", name="schema", node=TrainerConfig)
_cs.store(group="evaluation", name="schema", node=EvaluationConfig)
_cs.store(group="gate", name="schema", node=GateConfig)


def sweep_direction(task: str) -> str:
    """The Optuna direction of a model.task's monitored figure: `${recctl_direction:...}` in the
    hparams_search presets, so a rating sweep minimises RMSE without another preset."""
    return "minimize" if task == "rating" else "maximize"


OmegaConf.register_new_resolver("recctl_direction", sweep_direction, replace=True)
_cs.store(group="strategy", name="schema", node=StrategyConfig)
_cs.store(group="export", name="schema", node=ExportConfig)


SOURCES = sources.NAMES  # the dataset.source values: the registry's names
SPLITS = ("loo", "temporal", "random", "time", "cold_users", "cold_items")
# The cold-start splits: which side they hold out of training (data/transform.COLD_SPLITS).
COLD_SPLITS = {"cold_users": "users", "cold_items": "items"}
TIES = ("row", "hash")
DUPLICATES = ("keep_first", "keep_last", "keep_all", "error")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate_dataset(d: Any) -> None:
    """Range and cross-field checks for the dataset section (before any file is read); the source
    checks its own settings last."""
    source = sources.get(d.source)  # an unknown name fails first, listing the registry's names
    _check(d.split in SPLITS, f"dataset.split must be one of {', '.join(SPLITS)}. Received: {d.split!r}")
    _check(
        d.duplicates in DUPLICATES,
        f"dataset.duplicates must be one of {', '.join(DUPLICATES)}. Received: {d.duplicates!r}",
    )
    _check(d.ties in TIES, f"dataset.ties must be one of {', '.join(TIES)}. Received: {d.ties!r}")
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
        0 < d.cold_share < 0.5,
        f"dataset.cold_share must be above 0 and below 0.5 (that share is test, as many again "
        f"validation). Received: {d.cold_share}",
    )
    _check(
        d.split in ("loo", *COLD_SPLITS) or ratio[1] + ratio[2] > 0,
        f"dataset.split_ratio={ratio} leaves nothing to validate or test on: give valid or test a share",
    )
    cutoffs = None if d.get("time_cutoffs") is None else list(d.time_cutoffs)
    _check(
        d.split != "time" or (cutoffs is not None and len(cutoffs) == 2 and cutoffs[0] < cutoffs[1]),
        "dataset.split=time needs dataset.time_cutoffs=[VALID_FROM,TEST_FROM], two increasing timestamps. "
        f"Received: {cutoffs}",
    )
    _check(
        d.min_user_interactions >= 0,
        f"dataset.min_user_interactions must be >= 0. Received: {d.min_user_interactions}",
    )
    _check(
        d.min_item_interactions >= 0,
        f"dataset.min_item_interactions must be >= 0. Received: {d.min_item_interactions}",
    )
    source.check(d)


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_dataset_name(name: Any) -> None:
    """`dataset.name` becomes the folder data/processed/<name>/: one plain path component only,
    so a name such as `../../x` or `/etc` cannot place a snapshot outside the data folder."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            "dataset.name must be a plain folder name (letters, digits, '.', '_', '-'; no '/' or '..'). "
            f"Received: {name!r}"
        )


def checked_dataset(section: Any) -> DatasetConfig:
    """The dataset section merged onto its schema and checked: typos, wrong types, ranges, the
    source's own settings and the folder name all fail here, before any file is read."""
    merged = merge_section(DatasetConfig, _resolved(section, "dataset"), "dataset")
    validate_dataset(merged)
    check_dataset_name(merged.name)
    return merged


# ------------------------------------------------------------------------- the other sections
# One merge onto a schema and one `_check` serve every section: a user's own `--config-dir` files
# get the checks Hydra's composition gave the packaged ones, and a range or cross-field error is one
# line before any data is read. recctl.plan calls these in the order each command needs them.


def _resolved(section: Any, name: str) -> Any:
    """A section still attached to the composed config, its interpolations resolved there: a merged
    copy is detached, so `${paths.data_dir}` (ml_100k's default root) would no longer resolve."""
    from omegaconf import DictConfig

    if not isinstance(section, DictConfig) or section._get_parent() is None:
        return section
    try:
        return OmegaConf.to_container(section, resolve=True)
    except Exception as exc:  # omegaconf.InterpolationResolutionError and its kind
        raise ConfigError(f"{name}: {str(exc).splitlines()[0]}") from None


def merge_section(schema: type, section: Any, name: str) -> Any:
    """`section` (None: empty) merged onto `schema`: an unknown key or a wrong type is a ConfigError."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), section if section is not None else {})
    except Exception as exc:  # omegaconf.ValidationError / ConfigKeyError
        raise ConfigError(f"{name}: {str(exc).splitlines()[0]}") from None


def checked_paths(cfg: Any) -> Paths:
    return merge_section(Paths, cfg.get("paths"), "paths")


def _whole_number(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def checked_seed(cfg: Any) -> int:
    value = cfg.get("seed", 42)
    _check(_whole_number(value, 0), f"seed must be a non-negative integer. Received: {value!r}")
    return value


def checked_trainer(cfg: Any) -> TrainerConfig:
    t = merge_section(TrainerConfig, cfg.get("trainer"), "trainer")
    _check(t.epochs >= 1, f"trainer.epochs must be >= 1. Received: {t.epochs}")
    _check(t.batch_size >= 1, f"trainer.batch_size must be >= 1. Received: {t.batch_size}")
    _check(t.patience >= 1, f"trainer.patience must be >= 1. Received: {t.patience}")
    _check(t.min_updates >= 0, f"trainer.min_updates must be >= 0. Received: {t.min_updates}")
    spe = t.steps_per_execution
    _check(
        spe == "auto" or _whole_number(spe, 1),
        f"trainer.steps_per_execution must be a positive integer or auto. Received: {spe!r}",
    )
    _check(t.validate_every >= 1, f"trainer.validate_every must be >= 1. Received: {t.validate_every}")
    _check(
        t.jit_compile in (True, False, "auto"),
        f"trainer.jit_compile must be true, false or auto. Received: {t.jit_compile!r}",
    )
    _check(
        t.verbose in ("auto", "progress", "lines", "quiet"),
        f"trainer.verbose must be auto, progress, lines or quiet. Received: {t.verbose!r}",
    )
    name, _, k = str(t.monitor).partition("@")
    _check(
        name in ("ndcg", "hr", "recall", "mrr", "precision", "map") and k.isdigit() and int(k) > 0,
        f"trainer.monitor must look like ndcg@10 (a ranking metric at a cut-off). Received: {t.monitor!r}",
    )
    _check(t.lr_schedule is None, "trainer.lr_schedule is not supported yet: leave it null")
    return t


# Keys that were replaced: a command line that still sets one gets a line naming the new key (and
# exit 2) before composition, which would only say the key is unknown.
RETIRED_KEYS = {
    "evaluation.baseline": "evaluation.baseline was replaced by evaluation.baselines, a list: [pop] "
    "(the default), e.g. evaluation.baselines=[pop,ease], or [] for none",
}


def retired_key_error(overrides: list[str]) -> str | None:
    """The message for the first override that sets a retired key (`key=`, `+key=`, `++key=`)."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key in RETIRED_KEYS:
            return RETIRED_KEYS[key]
    return None


def check_cutoffs(e: EvaluationConfig, n_items: int, where: str) -> None:
    """Cut-offs beyond the catalogue cannot be ranked: refused once the snapshot is known, before any
    training or scoring (`where`: the snapshot or run the catalogue belongs to)."""
    too_big = [k for k in e.ks if k > n_items]
    _check(
        not too_big,
        f"evaluation.ks={list(e.ks)}: cut-off {too_big[0] if too_big else ''} is larger than the "
        f"catalogue of {where} ({n_items} items); use cut-offs up to {n_items}",
    )


def checked_evaluation(cfg: Any) -> EvaluationConfig:
    from recctl.evaluation.metrics import NAMES

    section = cfg.get("evaluation")
    _check(section is None or "baseline" not in section, RETIRED_KEYS["evaluation.baseline"])
    e = merge_section(EvaluationConfig, section, "evaluation")
    _check(
        len(e.ks) > 0 and all(k >= 1 for k in e.ks),
        f"evaluation.ks must be positive cut-offs. Received: {list(e.ks)}",
    )
    unknown = [m for m in e.metrics if m not in NAMES]
    _check(not unknown, f"evaluation.metrics: unknown {unknown}; known: {', '.join(NAMES)}")
    _check(e.batch_size >= 1, f"evaluation.batch_size must be >= 1. Received: {e.batch_size}")
    _check(
        e.logloss_negatives is None or e.logloss_negatives >= 1,
        f"evaluation.logloss_negatives must be >= 1 (or null). Received: {e.logloss_negatives}",
    )
    _check(
        _whole_number(e.bootstrap, 0),
        f"evaluation.bootstrap must be a whole number >= 0 (0: no intervals). Received: {e.bootstrap}",
    )
    _check(
        e.candidates in ("full", "sampled"),
        f"evaluation.candidates must be full or sampled. Received: {e.candidates!r}",
    )
    _check(
        _whole_number(e.sampled.negatives, 1),
        f"evaluation.sampled.negatives must be a whole number >= 1. Received: {e.sampled.negatives}",
    )
    _check(
        e.sampled.by in ("uniform", "popularity"),
        f"evaluation.sampled.by must be uniform or popularity. Received: {e.sampled.by!r}",
    )
    from recctl.evaluation.baselines import NAMES as BASELINES

    unknown = [b for b in e.baselines if b not in BASELINES]
    _check(not unknown, f"evaluation.baselines: unknown {unknown}; known: {', '.join(BASELINES)}")
    _check(
        len(set(e.baselines)) == len(e.baselines),
        f"evaluation.baselines lists a baseline twice: {list(e.baselines)}",
    )
    return e


def check_gate_baseline(gate: GateConfig, evaluation: EvaluationConfig) -> None:
    """gate.min_lift is measured against gate.baseline, which must be one the evaluation computes."""
    _check(
        gate.min_lift is None or gate.baseline in evaluation.baselines,
        f"gate.min_lift is measured against gate.baseline={gate.baseline}, which is not in "
        f"evaluation.baselines={list(evaluation.baselines)}: add it there or choose another gate.baseline",
    )


STRATEGIES = strategies.NAMES  # the strategy.name values: the registry's names


def checked_strategy(cfg: Any) -> StrategyConfig:
    s = merge_section(StrategyConfig, cfg.get("strategy"), "strategy")
    _check(
        s.name != "parameter_server",
        "strategy=parameter_server is not available: Keras 3 fit does not support ParameterServerStrategy "
        "(keras-team/keras#18624); use mirrored or multi_worker (docs/distributed.md)",
    )
    _check(
        s.name in STRATEGIES, f"strategy.name must be one of {', '.join(STRATEGIES)}. Received: {s.name!r}"
    )
    _check(
        s.mixed_precision in (None, "mixed_float16", "mixed_bfloat16"),
        f"strategy.mixed_precision must be null, mixed_float16 or mixed_bfloat16. Received: {s.mixed_precision!r}",
    )
    _check(s.logical_cpus >= 0, f"strategy.logical_cpus must be >= 0. Received: {s.logical_cpus}")
    _check(
        s.cluster_resolver in ("tf_config", "slurm"),
        f"strategy.cluster_resolver must be tf_config or slurm. Received: {s.cluster_resolver!r}",
    )
    _check(
        s.communication in ("auto", "ring", "nccl"),
        f"strategy.communication must be auto, ring or nccl. Received: {s.communication!r}",
    )
    _check(s.timeout_seconds > 0, f"strategy.timeout_seconds must be > 0. Received: {s.timeout_seconds}")
    return s


def check_placement(trainer: TrainerConfig, strategy: StrategyConfig) -> None:
    """Refuse trainer settings the strategy cannot run, before any data is read."""
    spe = trainer.steps_per_execution
    replicated = strategies.get(strategy.name).replicated
    if replicated and spe != "auto" and spe > 1:
        raise ConfigError(
            f"strategy={strategy.name} cannot run trainer.steps_per_execution={spe} with Keras 3.15 "
            "(keras-team/keras#19246): use trainer.steps_per_execution=1 or auto"
        )
    if replicated and trainer.jit_compile is True:
        raise ConfigError(
            f"strategy={strategy.name} cannot run trainer.jit_compile=true: XLA cannot compile a step that "
            "reads variables placed on other replicas' devices; use trainer.jit_compile=auto or false"
        )


def checked_gate(cfg: Any) -> GateConfig:
    g = merge_section(GateConfig, cfg.get("gate") or None, "gate")
    _check(g.split in ("valid", "test"), f"gate.split must be valid or test. Received: {g.split!r}")
    _check(
        g.metric is not None or (g.min is None and g.max is None and g.min_lift is None),
        "gate.min / gate.max / gate.min_lift need gate.metric (e.g. gate.metric=ndcg@10)",
    )
    _check(
        g.metric is None or g.min is not None or g.max is not None or g.min_lift is not None,
        f"gate.metric={g.metric} needs gate.min, gate.max and/or gate.min_lift",
    )
    _check(g.min_lift is None or g.min_lift > 0, f"gate.min_lift must be positive. Received: {g.min_lift}")
    return g


def checked_compare_gate(cfg: Any) -> CompareGateConfig:
    g = merge_section(CompareGateConfig, cfg.get("gate") or None, "gate")
    _check(g.split in ("valid", "test"), f"gate.split must be valid or test. Received: {g.split!r}")
    return g


def checked_base_run(cfg: Any) -> str:
    base = cfg.get("base")
    _check(
        base not in (None, ""),
        "compare needs base=RUN (a run folder, or latest): the run that `run=` is compared against",
    )
    return str(base)


def _either(names: tuple[str, ...]) -> str:
    """('a', 'b', 'c') -> 'a, b or c'."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def checked_export(cfg: Any) -> ExportConfig:
    from recctl.export.registry import FORMAT_NAMES, QUANTIZE, QUANTIZING_FORMATS

    e = merge_section(ExportConfig, cfg.get("export"), "export")
    _check(
        e.format in FORMAT_NAMES,
        f"export.format must be {_either(FORMAT_NAMES)}. Received: {e.format!r}",
    )
    _check(
        e.quantize in QUANTIZE,
        f"export.quantize must be {_either(QUANTIZE)}. Received: {e.quantize!r}",
    )
    _check(
        e.quantize == "none" or e.format in QUANTIZING_FORMATS,
        f"export.quantize={e.quantize} applies to export.format={_either(QUANTIZING_FORMATS)} only. "
        f"Received format: {e.format}",
    )
    _check(e.k >= 1, f"export.k must be >= 1. Received: {e.k}")
    if e.name is not None:
        _check(
            e.name.replace("-", "").replace("_", "").replace(".", "").isalnum()
            and not e.name.startswith("."),
            f"export.name must be letters, digits, '-', '_' or '.'. Received: {e.name!r}",
        )
    return e


def checked_k(cfg: Any) -> int:
    """recommend's `k`: how many items per user."""
    k = cfg.get("k", 10)
    _check(_whole_number(k, 1), f"k must be a positive integer. Received: {k!r}")
    return k


def check_sequence_order(model_cls: type, d: Any) -> None:
    """A model that learns from the order of each user's interactions, on a table without
    timestamps: that order is only the file's row order, so the user must say it means time."""
    if model_cls.learns_from_order and not sources.get(d.source).in_time_order(d):
        raise ConfigError(
            f"{model_cls.__name__} is a sequence model, but dataset {d.name} has no timestamp column "
            "(dataset.columns.timestamp=null): map one, or set dataset.row_order_is_time=true if the "
            "file's rows are in time order"
        )


def cold_families(side: str) -> list[str]:
    """The model groups (conf/model/<name>.yaml) whose family scores `side` without history."""
    from recctl.confdir import conf_dir
    from recctl.training.factory import model_class

    names = []
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        try:
            cls = model_class(OmegaConf.load(path))
        except ConfigError:
            continue
        if side in cls.cold_start:
            names.append(path.stem)
    return names


COLD_ITEMS_NOT_SAMPLED = (
    "evaluation.candidates=sampled does not apply to dataset.split=cold_items: its candidates are the "
    "split's cold items (docs/evaluation.md); use evaluation.candidates=full"
)


def check_cold_split(model_cls: type, model_cfg: Any, d: Any, family: str, candidates: str = "full") -> None:
    """dataset.split=cold_users / cold_items: a family that cannot score a user (item) without
    history is refused before any work, in one line naming those that can; one that can but whose
    unknown-id row is not trained (model.user_dropout / model.item_dropout 0) gets a warning."""
    side = COLD_SPLITS.get(d.split)
    if side is None:
        return
    _check(not (side == "items" and candidates == "sampled"), COLD_ITEMS_NOT_SAMPLED)
    one = "a user" if side == "users" else "an item"
    if side not in model_cls.cold_start:
        raise ConfigError(
            f"dataset.split={d.split}: model={family} cannot score {one} without history; the families "
            f"that can: {', '.join(f'model={n}' for n in cold_families(side))}"
        )
    key = model_cls.cold_start[side]
    if key is not None and not (model_cfg.get(key) or 0) > 0:
        from recctl import console

        console.warn(
            f"dataset.split={d.split} with model.{key}=0: the cold {side} are scored through id rows "
            f"that were never trained; set model.{key}=0.1 so an unknown-id row is learnt (docs/evaluation.md)"
        )


def check_fitted_without_epochs(model_cls: type, resuming: bool, init_from: Any) -> None:
    """resume= and init_from= continue or start epochs: a family fitted without any refuses them."""
    if model_cls.needs_training:
        return
    asked = "resume=" if resuming else ("init_from=" if init_from is not None else None)
    _check(
        asked is None,
        f"{asked} does not apply to {model_cls.__name__}: it is fitted from the data without epochs, "
        "so train it again (no checkpoint or warm start is needed)",
    )


CTR_NEEDS_LABELS = (
    "model.task=ctr needs labelled rows: set dataset.label_threshold (e.g. 4; lower ratings become "
    "negatives) and usually dataset.split=random, or use experiment=ml100k_ctr"
)


RATING_NEEDS_RATINGS = (
    "model.task=rating needs a rating column: the dataset has none (map one with dataset.columns.rating, "
    "or use experiment=ml100k_rating)"
)


def check_task_data(model_cfg: Any, d: Any) -> None:
    """The labels a task trains on must exist in the data: refused before any data is read."""
    task = model_cfg.get("task")
    _check(task != "ctr" or d.label_threshold is not None, CTR_NEEDS_LABELS)
    _check(task != "rating" or d.source != "table" or d.columns.rating is not None, RATING_NEEDS_RATINGS)
