"""`make bench-peers`: recctl beside RecBole 1.2.1 on the same MovieLens 100K split (issue #8).

1. Installs RecBole 1.2.1 with torch 2.13.0 (CPU build) into its own virtualenv, .venv-peers/, from the
   exact pins of benchmarks/peers/requirements.txt; a stamp holding that file's digest makes a second
   run reuse it (`--skip-install` skips even the check).
2. Prepares recctl's ml-100k snapshot in a temporary folder and writes its train/valid/test split as
   RecBole atomic files (benchmark_filename), so both sides train and test on the identical split:
   - `ml100k-recctl.{train,valid,test}.inter` for the general models;
   - `ml100k-recctl-seq{L}.*.inter` for the sequential ones: each row a user's last L items before a
     target (RecBole does no augmentation of benchmark files), exactly the rows RecBole's own
     augmentation + leave-one-out would make;
   - `ml100k-recctl-ctr.*` (+ .user/.item features) for the WideDeep CTR pair.
   The timestamp written is each interaction's position in the user's time order (ties broken by the
   original row order, as recctl does): ml-100k has many equal timestamps, which RecBole would
   otherwise order its own way.
3. Trains each pair for the same epoch budget, batch size and embedding size, with no early stopping
   on either side; both test the weights of their best validation epoch (NDCG@10). Evaluation on
   both sides: full ranking over all items, training items masked at validation, training +
   validation items at test; NDCG@10 and Hit@10.
4. Prints one Markdown report, with issue #8's reference RecBole figures beside the measured ones.

Options: --epochs N (default 3), --models mf,neumf,... (recctl names), --batch-size, --embedding,
--threads N (both sides), --skip-install, --dry-run (print the configs, check each RecBole one on a
few batches, train nothing), --recctl-set MODEL:key=value and --recbole-set MODEL:key=value
(repeatable extra overrides, listed in the report).

--rating: the rating task instead, recctl beside scikit-surprise 1.1.5 (no RecBole): installs
.venv-peers-surprise/ from SURPRISE_PINS, prepares conf/experiment/ml100k_rating.yaml's snapshot
(random 80/10/10, every rating kept), writes its splits as TSV (original ids) for
surprise_runner.py (BaselineOnly, SVD, SVDpp at surprise's defaults), trains recctl
`experiment=ml100k_rating` on the same snapshot (checked by fingerprint) and reports test RMSE / MAE
and fit seconds; --recctl-set rating:key=value adds recctl overrides.
Datasets folder: $RECCTL_DATASETS or ../shared/datasets.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from common import BIN, train_result  # noqa: E402

PEERS = REPO / ".venv-peers"
PEERS_PY = PEERS / "bin" / "python"
REQUIREMENTS = HERE / "requirements.txt"
STAMP = PEERS / ".peers-stamp"
RUNNER = HERE / "recbole_runner.py"
DATASETS = Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))
SEED = 42
# --rating: scikit-surprise in a virtualenv of its own. It cannot join .venv-peers: its wheel asks
# numpy >= 1.24.1 and RecBole 1.2.1 needs numpy < 1.24 (requirements.txt). Its whole closure, pinned,
# installed with --no-deps like .venv-peers (found working on 2026-12-02, Python 3.11).
SURPRISE_PEERS = REPO / ".venv-peers-surprise"
SURPRISE_PY = SURPRISE_PEERS / "bin" / "python"
SURPRISE_RUNNER = HERE / "surprise_runner.py"
SURPRISE_PINS = [
    "scikit-surprise==1.1.5",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "joblib==1.6.0",
    "cloudpickle==3.1.3",
]


@dataclass
class Pair:
    recctl: str  # recctl model name
    recbole: str  # RecBole model name
    kind: str  # general | sequential | ctr
    recctl_size: list[str]  # overrides that set the shared embedding size ({e})
    recbole_size: dict  # RecBole keys for the same ({e} in str values)
    notes: str  # what still differs: each side's own defaults
    recctl_extra: list[str] = field(default_factory=list)
    recbole_extra: dict = field(default_factory=dict)


PAIRS = {
    p.recctl: p
    for p in (
        Pair(
            "mf",
            "BPR",
            "general",
            ["model.embedding_dim={e}"],
            {"embedding_size": "{e}"},
            "recctl: sampled softmax over 64 negatives (recctl's default; `--recctl-set mf:model.loss=bpr` "
            "for BPR); RecBole: BPR, 1 negative",
        ),
        Pair(
            "neumf",
            "NeuMF",
            "general",
            ["model.mf_dim={e}", "model.mlp_dim={e}"],
            {"mf_embedding_size": "{e}", "mlp_embedding_size": "{e}"},
            "MLP [128, 64] both; recctl: 32 negatives, no dropout; RecBole: 1 negative, dropout 0.1",
        ),
        Pair(
            "autoencoder",
            "MultiVAE",
            "general",
            [],
            {"latent_dimension": 200, "mlp_hidden_size": [600]},
            "the paper's [n -> 600 -> 200 -> 600 -> n] both (RecBole's default latent 128 set to recctl's "
            "200; no id embedding); recctl: 32-user updates, popularity prior",
        ),
        Pair(
            "lstm",
            "GRU4Rec",
            "sequential",
            ["model.embedding_dim={e}"],
            {"embedding_size": "{e}"},
            "hidden 128 both; recctl: LSTM cells (`--recctl-set lstm:model.cell=gru` for GRU), window 10, "
            "softmax over all items (softmax=auto on this catalogue); RecBole: GRU, softmax over all items",
        ),
        Pair(
            "cnn",
            "Caser",
            "sequential",
            ["model.embedding_dim={e}"],
            {"embedding_size": "{e}"},
            "recctl: window L=5, 16 horizontal filters per height, softmax over all items (softmax=auto); "
            "RecBole: nh 8, nv 4, softmax over all items",
        ),
        Pair(
            "attention",
            "SASRec",
            "sequential",
            ["model.embedding_dim={e}"],
            {"hidden_size": "{e}"},
            "2 blocks and a softmax over all items both (recctl: softmax=auto); recctl: the paper's pre-LN "
            "blocks, 1 head, ffn 64, dropout 0.2, window 10 (`experiment=ml100k_attention`: RecBole's blocks "
            "and sizes); RecBole: post-LN blocks, GELU, 2 heads, ffn 256, dropout 0.5",
        ),
        Pair(
            "wide_deep",
            "WideDeep",
            "ctr",
            ["model.embedding_dim={e}"],
            {"embedding_size": "{e}"},
            "CTR (experiment=ml100k_ctr): label rating >= 4, recctl's random 80/10/10 split, user and item "
            "features on both sides; AUC and logloss; recctl MLP [128, 64], RecBole MLP [32, 16, 8]",
        ),
    )
}
# conf/experiment/ml100k_ctr.yaml's dataset settings (`prepare` has no experiment group).
CTR_DATASET = ["dataset.label_threshold=4", "dataset.split=random", "dataset.split_ratio=[0.8,0.1,0.1]"]
DEFAULT_MODELS = ("mf", "neumf", "autoencoder", "lstm", "cnn", "attention")
# conf/experiment/ml100k_rating.yaml's dataset settings, for `prepare` (--rating).
RATING_DATASET = ["dataset.split=random", "dataset.split_ratio=[0.8,0.1,0.1]"]

# Issue #8: RecBole 1.2.1, torch 2.13 CPU, 2 cores, default hyperparameters, batch 2048, embedding 64.
# Reference figures only: never measured by this script.
REFERENCE = {
    "BPR": {"train_s": 0.28, "fit": "27.5 s, 62 epochs", "ndcg": 0.0673},
    "NeuMF": {"train_s": 1.52, "fit": "182 s, 58 epochs", "ndcg": 0.0649},
    "MultiVAE": {"train_s": 0.12, "fit": "22.4 s, 29 epochs", "ndcg": 0.0433},
    "GRU4Rec": {"train_s": 58.4, "fit": "1792 s, 29 epochs (best valid 18)", "ndcg": 0.0481},
    "Caser": {"train_s": 587, "fit": None, "ndcg": None},
    "SASRec": {"train_s": 213, "fit": None, "ndcg": None},
    "WideDeep": {"train_s": 0.59, "fit": "43.0 s, 68 epochs", "auc": 0.7830},
}


# ---------------------------------------------------------------- the peers virtualenv


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned(name: str) -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        if line.split("#")[0].strip().lower().startswith(f"{name}=="):
            return line.split("#")[0].strip()
    raise SystemExit(f"{REQUIREMENTS}: no pin for {name}")


def install(allow_cuda_torch: bool) -> None:
    """Make .venv-peers from requirements.txt unless its stamp says it already holds exactly that."""
    digest = sha256(REQUIREMENTS)
    if PEERS_PY.exists() and STAMP.is_file() and STAMP.read_text().strip() == digest:
        print(
            f"peers virtualenv: {PEERS.name}/ is complete (stamp matches requirements.txt)", file=sys.stderr
        )
        return
    start = time.perf_counter()
    if not PEERS_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    pip = [str(PEERS_PY), "-m", "pip", "--disable-pip-version-check"]
    torch = pinned("torch")
    # Which torch file would pip take? The registry's default Linux build of torch is the CUDA one,
    # whose dependencies are several GB of nvidia-* packages; a CPU build (torch==X+cpu) found by pip
    # is taken instead. Look first, install nothing heavy by surprise.
    report = subprocess.run(
        [*pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", "--report", "-", torch],
        check=True,
        capture_output=True,
        text=True,
    )
    chosen = json.loads(report.stdout)["install"][0]["metadata"]["version"]
    if "+cpu" not in chosen and not allow_cuda_torch:
        raise SystemExit(
            f"pip would install torch {chosen}, the CUDA build (several GB of nvidia-* packages with it); "
            "no CPU build of it is reachable here. Rerun with --allow-cuda-torch to install it anyway."
        )
    # Every package is pinned, the whole closure, and installed without resolving: RecBole's declared
    # ray, thop, plotly, psutil and tabulate are only used by its hyperparameter tuning and
    # quick_start helpers, which the runner does not import (README section in BENCHMARKS.md).
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    if "+cpu" not in chosen:
        subprocess.run([*pip, "install", "--quiet", torch], check=True)
    check = (
        "import os; os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'; import torch, recbole; "
        "from recbole.data import create_dataset; from recbole.utils import get_trainer; "
        "print(torch.__version__, recbole.__version__)"
    )
    versions = subprocess.run([str(PEERS_PY), "-c", check], check=True, capture_output=True, text=True)
    STAMP.write_text(digest + "\n")
    print(
        f"peers virtualenv: installed torch / RecBole {versions.stdout.strip()} into {PEERS.name}/ "
        f"in {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )


def install_surprise() -> None:
    """Make .venv-peers-surprise from SURPRISE_PINS unless its stamp says it already holds exactly those."""
    digest = hashlib.sha256("\n".join(SURPRISE_PINS).encode()).hexdigest()
    stamp = SURPRISE_PEERS / ".peers-stamp"
    if SURPRISE_PY.exists() and stamp.is_file() and stamp.read_text().strip() == digest:
        print(f"surprise virtualenv: {SURPRISE_PEERS.name}/ is complete (stamp matches)", file=sys.stderr)
        return
    if not SURPRISE_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SURPRISE_PEERS)], check=True)
    pip = [str(SURPRISE_PY), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", *SURPRISE_PINS], check=True)
    check = "import surprise; from surprise import SVD, SVDpp, BaselineOnly; print(surprise.__version__)"
    version = subprocess.run([str(SURPRISE_PY), "-c", check], check=True, capture_output=True, text=True)
    stamp.write_text(digest + "\n")
    print(
        f"surprise virtualenv: scikit-surprise {version.stdout.strip()} in {SURPRISE_PEERS.name}/",
        file=sys.stderr,
    )


# ---------------------------------------------------------------- recctl's split as RecBole atomic files


def prepare(ml: Path, work: Path, extra: list[str]) -> Path:
    proc = subprocess.run(
        [str(BIN / "recctl"), "--json", "prepare", "dataset=ml_100k", f"dataset.root={ml}", *extra],
        cwd=work,
        capture_output=True,
        text=True,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"recctl prepare failed:\n{proc.stderr[-2000:]}") from None
    if result["status"] != "ok":
        raise SystemExit(f"recctl prepare: {result['status']}: {result.get('error')}")
    return work / result["dataset"]["path"]


def user_sequences(snapshot_path: Path) -> dict[str, list[tuple[str, str]]]:
    """Per user (original id): (item original id, split) in the user's time order, ties by original row."""
    import pandas as pd

    from recctl.data.snapshot import Snapshot

    snap = Snapshot(snapshot_path)
    users, items = snap.user_ids, snap.item_ids
    frames = []
    for rank, name in enumerate(("train", "valid", "test")):
        frames.append(snap.split(name).assign(split=name, rank=rank))
    frame = pd.concat(frames).sort_values(["user", "rank", "timestamp", "row"], kind="stable")
    seqs: dict[str, list[tuple[str, str]]] = {}
    for u, i, split in zip(
        frame["user"].to_numpy(), frame["item"].to_numpy(), frame["split"].to_numpy(), strict=True
    ):
        seqs.setdefault(users[u], []).append((items[i], split))
    return seqs


def open_splits(folder: Path, name: str, header: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    files = {s: open(folder / f"{name}.{s}.inter", "w", encoding="utf-8") for s in ("train", "valid", "test")}
    for f in files.values():
        f.write(header + "\n")
    return files


def write_general(seqs, folder: Path, name: str) -> None:
    """One row per interaction, in its recctl split; timestamp = position in the user's time order."""
    files = open_splits(folder, name, "user_id:token\titem_id:token\ttimestamp:float")
    for user, seq in seqs.items():
        for pos, (item, split) in enumerate(seq):
            files[split].write(f"{user}\t{item}\t{pos}\n")
    for f in files.values():
        f.close()


def write_sequential(seqs, folder: Path, name: str, length: int) -> None:
    """One row per target (every interaction but a user's first): the user's last `length` items
    before it, oldest first, as RecBole's own augmentation makes them, in the target's recctl split."""
    files = open_splits(folder, name, "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float")
    for user, seq in seqs.items():
        for pos in range(1, len(seq)):
            history = " ".join(item for item, _ in seq[max(0, pos - length) : pos])
            item, split = seq[pos]
            files[split].write(f"{user}\t{history}\t{item}\t{pos}\n")
    for f in files.values():
        f.close()


def write_ctr(snapshot_path: Path, folder: Path, name: str) -> None:
    """Labelled rows of recctl's CTR split, plus the user and item side features recctl uses."""
    from recctl.data.snapshot import Snapshot

    snap = Snapshot(snapshot_path)
    folder.mkdir(parents=True, exist_ok=True)
    users, items = snap.user_ids, snap.item_ids
    for split in ("train", "valid", "test"):
        frame = snap.split(split)
        with open(folder / f"{name}.{split}.inter", "w", encoding="utf-8") as f:
            f.write("user_id:token\titem_id:token\tlabel:float\n")
            for u, i, y in zip(frame["user"], frame["item"], frame["label"], strict=True):
                f.write(f"{users[u]}\t{items[i]}\t{int(y)}\n")
    for who, table, ids in (("user", snap.users, users), ("item", snap.items, items)):
        cat = [c for c in table.columns if c.startswith("cat__")]
        genres = [c for c in table.columns if c.startswith("num__genre_")]
        num = [c for c in table.columns if c.startswith("num__") and c not in genres]
        header = [f"{who}_id:token", *(f"{c[5:]}:token" for c in cat), *(f"{c[5:]}:float" for c in num)]
        if genres:
            header.append("genre:token_seq")
        with open(folder / f"{name}.{who}", "w", encoding="utf-8") as f:
            f.write("\t".join(header) + "\n")
            rows = table[cat + num + genres].to_numpy()
            for key, row in zip(ids, rows, strict=True):
                values = [str(int(v)) for v in row[: len(cat)]] + [
                    f"{v:g}" for v in row[len(cat) : len(cat) + len(num)]
                ]
                if genres:
                    values.append(
                        " ".join(g[11:] for g, v in zip(genres, row[len(cat) + len(num) :], strict=True) if v)
                        or "none"
                    )
                f.write("\t".join([key, *values]) + "\n")


def write_ratings(snapshot_path: Path, folder: Path) -> None:
    """recctl's rating split as {train,valid,test}.tsv for surprise_runner.py: original ids, every row."""
    from recctl.data.snapshot import Snapshot

    snap = Snapshot(snapshot_path)
    folder.mkdir(parents=True, exist_ok=True)
    users, items = snap.user_ids, snap.item_ids
    for split in ("train", "valid", "test"):
        frame = snap.split(split)
        with open(folder / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("user_id\titem_id\trating\n")
            for u, i, r in zip(frame["user"], frame["item"], frame["rating"], strict=True):
                f.write(f"{users[u]}\t{items[i]}\t{r:g}\n")


# ---------------------------------------------------------------- configs


def fill(value, e: int):
    return int(value.format(e=e)) if isinstance(value, str) and "{e}" in value else value


def parse_sets(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        model, _, setting = item.partition(":")
        if model not in (*PAIRS, "rating") or "=" not in setting:
            raise SystemExit(f"expected MODEL:key=value with MODEL in {', '.join(PAIRS)}, rating: {item!r}")
        out.setdefault(model, []).append(setting)
    return out


def recbole_config(pair: Pair, args, data_root: Path, work: Path, extra: list[str]) -> dict:
    cfg = {
        "data_path": str(data_root),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        # Split and order are recctl's, read from the benchmark files (RecBole does not re-split
        # them); eval_args says what they are: leave-one-out in time order, full ranking.
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": args.epochs,
        "stopping_step": args.epochs + 1,  # no early stopping: the whole budget, as recctl's side
        "eval_step": 1,
        "train_batch_size": args.batch_size,
        "seed": SEED,
        "use_gpu": False,
        "gpu_id": "",
        "worker": 0,
        "show_progress": False,
        "checkpoint_dir": str(work / "recbole-saved"),
    }
    cfg.update({k: fill(v, args.embedding) for k, v in pair.recbole_size.items()})
    cfg.update(pair.recbole_extra)
    overrides = {}
    for setting in extra:
        key, _, value = setting.partition("=")
        overrides[key] = yaml.safe_load(value)
    cfg.update(overrides)
    if pair.kind == "general":
        cfg.update(dataset="ml100k-recctl", load_col={"inter": ["user_id", "item_id", "timestamp"]})
    elif pair.kind == "sequential":
        length = int(cfg.get("MAX_ITEM_LIST_LENGTH", 50))  # RecBole's default window
        cfg.update(
            dataset=f"ml100k-recctl-seq{length}",
            MAX_ITEM_LIST_LENGTH=length,
            load_col={"inter": ["user_id", "item_id_list", "item_id", "timestamp"]},
            alias_of_item_id=["item_id_list"],
            train_neg_sample_args=None,  # cross-entropy over all items (RecBole's default loss_type CE)
        )
    else:
        cfg.update(
            dataset="ml100k-recctl-ctr",
            TIME_FIELD=None,
            LABEL_FIELD="label",
            load_col=None,  # every column of the .inter, .user and .item files
            eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None, "mode": "labeled"},
            train_neg_sample_args=None,  # labelled rows: the negatives are in the data
            metrics=["AUC", "LogLoss"],
            valid_metric="AUC",
        )
    cfg.update({k: v for k, v in overrides.items() if k != "MAX_ITEM_LIST_LENGTH"})  # --recbole-set wins
    return cfg


def recctl_args(pair: Pair, args, ml: Path, extra: list[str]) -> list[str]:
    base = ["dataset=ml_100k", f"dataset.root={ml}"]
    base += ["experiment=ml100k_ctr"] if pair.kind == "ctr" else [f"model={pair.recctl}"]
    return [
        *base,
        f"trainer.epochs={args.epochs}",
        "trainer.early_stopping=false",
        f"trainer.batch_size={args.batch_size}",
        f"seed={SEED}",
        *(s.format(e=args.embedding) for s in pair.recctl_size),
        *pair.recctl_extra,
        *extra,
    ]


def run_recbole(
    model: str, cfg: dict, mask: dict | None, work: Path, check: bool
) -> tuple[dict | None, str | None]:
    spec = work / f"spec-{model}.json"
    out = work / f"result-{model}{'-check' if check else ''}.json"
    spec.write_text(json.dumps({"model": model, "config": cfg, "mask": mask, "check": check}, indent=1))
    log = work / f"recbole-{model}.log"
    with open(log, "w") as f:
        proc = subprocess.run([str(PEERS_PY), str(RUNNER), str(spec), str(out)], cwd=work, stdout=f, stderr=f)
    if proc.returncode != 0 or not out.is_file():
        tail = log.read_text().strip().splitlines()[-3:]
        return None, f"RecBole {model} failed (exit {proc.returncode}): {' | '.join(tail)} (log: {log})"
    return json.loads(out.read_text()), None


# ---------------------------------------------------------------- report


def fmt(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a, b) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def report(rows, args, machine: str, torch_version: str | None, settings: dict) -> None:
    print(f"# recctl beside RecBole 1.2.1 on ml-100k ({time.strftime('%Y-%m-%d')})\n")
    print(machine + (f", torch {torch_version} (RecBole side)" if torch_version else "") + "\n")
    print(
        f"Same split (recctl's leave-one-out by time, written as RecBole benchmark files), {args.epochs} "
        f"epoch(s) each with no early stopping, batch size {args.batch_size}, embedding size "
        f"{args.embedding}, seed {SEED}; each side otherwise at its own defaults (last table). Both test "
        "the weights of their best validation epoch (NDCG@10). Full ranking over all 1682 items, train "
        "items masked at validation and train + valid items at test, on both sides.\n"
    )
    print("## Seconds per epoch (fit seconds / epochs: training + per-epoch validation)\n")
    print(
        "| recctl | RecBole | epochs | recctl s/epoch | RecBole s/epoch | RecBole ÷ recctl "
        "| RecBole training only, median s/epoch | reference (issue #8): RecBole training s/epoch, median |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for pair, rc, rb, _err in rows:
        ref = REFERENCE.get(pair.recbole, {})
        rc_pe = rc["seconds"]["per_epoch"] if rc else None
        rb_pe = rb["per_epoch"] if rb else None
        train_med = statistics.median(rb["train_seconds"]) if rb and rb["train_seconds"] else None
        epochs = f"{rc['seconds']['epochs'] if rc else '-'} / {rb['epochs'] if rb else '-'}"
        print(
            f"| {pair.recctl} | {pair.recbole} | {epochs} | {fmt(rc_pe)} | {fmt(rb_pe)} | {ratio(rb_pe, rc_pe)} "
            f"| {fmt(train_med)} | {fmt(ref.get('train_s'))} |"
        )
    print("\n## Test quality\n")
    print(
        "| recctl | RecBole | metric | recctl | RecBole | recctl ÷ RecBole | recctl HR@10 | RecBole Hit@10 "
        "| RecBole best valid epoch | reference (issue #8): RecBole, fit until early stop |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pair, rc, rb, _err in rows:
        ref = REFERENCE.get(pair.recbole, {})
        if pair.kind == "ctr":
            metric, a, b = "AUC", rc and rc["metrics"]["test"].get("auc"), rb and rb["test"].get("auc")
            hr_a = hr_b = None
            ref_q = f"AUC {ref['auc']:.4f} ({ref['fit']})" if ref.get("auc") else "-"
        else:
            metric = "NDCG@10"
            a, b = rc and rc["metrics"]["test"].get("ndcg@10"), rb and rb["test"].get("ndcg@10")
            hr_a, hr_b = rc and rc["metrics"]["test"].get("hr@10"), rb and rb["test"].get("hit@10")
            ref_q = f"{ref['ndcg']:.4f} ({ref['fit']})" if ref.get("ndcg") else "-"
        best = rb["best_epoch"] if rb else None
        print(
            f"| {pair.recctl} | {pair.recbole} | {metric} | {fmt(a, 4)} | {fmt(b, 4)} | {ratio(a, b)} "
            f"| {fmt(hr_a, 4)} | {fmt(hr_b, 4)} | {best or '-'} | {ref_q} |"
        )
    print("\n## Time to equal validation quality\n")
    print(
        "Each side's seconds of training (with per-epoch validation) until its validation NDCG@10 first "
        "reaches the best figure both sides reach within the budget: the lower of their two best "
        "validation figures. recctl's seconds are epochs x its fit seconds per epoch.\n"
    )
    print(
        "| recctl | RecBole | validation NDCG@10 reached | recctl epochs | recctl s | RecBole epochs "
        "| RecBole s | RecBole ÷ recctl |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for pair, rc, rb, _err in rows:
        if pair.kind == "ctr" or not rc or not rb:
            continue
        print(equal_quality_row(pair, rc, rb))
    errors = [err for *_, err in rows if err]
    if errors:
        print("\n## Failures\n")
        for err in errors:
            print(f"- {err}")
    print("\n## What else differs (each side's defaults)\n")
    print(
        "| recctl | RecBole | settings | extra overrides (--recctl-set, --recbole-set) |\n|---|---|---|---|"
    )
    for pair, *_ in rows:
        cfg, rc_args = settings[pair.recctl]
        notes = pair.notes
        if pair.kind == "sequential":
            notes += f"; RecBole window MAX_ITEM_LIST_LENGTH={cfg['MAX_ITEM_LIST_LENGTH']}"
        extra = [
            *args.recctl_set_by.get(pair.recctl, []),
            *(f"RecBole {s}" for s in args.recbole_set_by.get(pair.recctl, [])),
        ]
        print(f"| {pair.recctl} | {pair.recbole} | {notes} | {', '.join(f'`{e}`' for e in extra) or '-'} |")
    print(
        "\nReference (issue #8) columns: RecBole 1.2.1 as measured for issue #8 (torch 2.13 CPU, 2 cores, "
        "default hyperparameters, batch 2048, embedding 64, fit until RecBole's early stop). They are "
        "quoted, not measured by this run."
    )


def recctl_validation_curve(rc: dict) -> list[float]:
    from recctl.runs import RunFolder

    with open(RunFolder(Path(rc["run_dir"])).history, encoding="utf-8") as fh:
        return [float(row.get("val_ndcg@10") or 0) for row in csv.DictReader(fh)]


def equal_quality_row(pair, rc: dict, rb: dict) -> str:
    """One row of the time-to-equal-quality table (see report)."""
    ours, theirs = recctl_validation_curve(rc), rb["valid_scores"]
    if not ours or not theirs:
        return f"| {pair.recctl} | {pair.recbole} | - | - | - | - | - | - |"
    target = min(max(ours), max(theirs))
    k_ours = next(i for i, v in enumerate(ours, 1) if v >= target)
    k_theirs = next(i for i, v in enumerate(theirs, 1) if v >= target)
    s_ours = k_ours * rc["seconds"]["fit"] / len(ours)
    s_theirs = sum(rb["train_seconds"][:k_theirs]) + sum(rb["valid_seconds"][:k_theirs])
    return (
        f"| {pair.recctl} | {pair.recbole} | {target:.4f} | {k_ours} | {s_ours:.1f} | {k_theirs} "
        f"| {s_theirs:.1f} | {ratio(s_theirs, s_ours)} |"
    )


# ---------------------------------------------------------------- --rating: recctl beside scikit-surprise


def run_surprise(folder: Path, work: Path) -> tuple[dict | None, str | None]:
    out, log = work / "result-surprise.json", work / "surprise.log"
    with open(log, "w") as f:
        proc = subprocess.run(
            [str(SURPRISE_PY), str(SURPRISE_RUNNER), str(folder), str(out)], cwd=work, stdout=f, stderr=f
        )
    if proc.returncode != 0 or not out.is_file():
        tail = log.read_text().strip().splitlines()[-3:]
        return None, f"surprise failed (exit {proc.returncode}): {' | '.join(tail)} (log: {log})"
    return json.loads(out.read_text()), None


def rating(args, ml: Path, machine: str, work: Path) -> None:
    """Prepare the rating snapshot, export it, run surprise on it and recctl on the same fingerprint."""
    snapshot = prepare(ml, work, RATING_DATASET)
    fingerprint = snapshot.name
    rc_args = ["experiment=ml100k_rating", f"dataset.root={ml}", *args.recctl_set_by.get("rating", [])]
    folder = work / "surprise-data"
    write_ratings(snapshot, folder)
    print(f"work folder: {work}", file=sys.stderr)
    if args.dry_run:
        proc = subprocess.run(
            [str(BIN / "recctl"), "train", *rc_args, "--cfg", "job"], cwd=work, capture_output=True, text=True
        )
        composed = "ok" if proc.returncode == 0 else f"FAILED: {proc.stderr.strip()[-300:]}"
        print(f"# bench-peers --rating dry run\n\n{machine}\n")
        print(f"snapshot {fingerprint}, split written to {folder}\n")
        print(f"recctl: `recctl --json train {' '.join(rc_args)}` (config composes: {composed})\n")
        print(
            f"surprise: `{SURPRISE_PY.relative_to(REPO)} {SURPRISE_RUNNER.relative_to(REPO)} {folder} OUT.json`"
        )
        return
    print("rating: surprise BaselineOnly, SVD, SVDpp ...", file=sys.stderr)
    sp, sp_err = run_surprise(folder, work)
    print("rating: recctl experiment=ml100k_rating ...", file=sys.stderr)
    rc, rc_err = train_result(rc_args, work)
    if rc and rc["dataset"]["fingerprint"] != fingerprint:
        rc, rc_err = None, f"recctl trained on snapshot {rc['dataset']['fingerprint']}, not {fingerprint}"
    errors = [e for e in (rc_err and f"recctl: {rc_err}", sp_err) if e]
    rating_report(rc, sp, errors, machine, fingerprint, rc_args)
    print(f"\n(work folder: {work})")


def rating_report(
    rc: dict | None, sp: dict | None, errors: list[str], machine: str, fingerprint: str, rc_args: list[str]
) -> None:
    print(f"# recctl beside scikit-surprise on ml-100k ratings ({time.strftime('%Y-%m-%d')})\n")
    print(machine + (f", scikit-surprise {sp['surprise']} (numpy {sp['numpy']})" if sp else "") + "\n")
    print(
        f"Same split: recctl snapshot {fingerprint} (conf/experiment/ml100k_rating.yaml: per-user random "
        "80/10/10, every rating kept), written as TSV with original ids for surprise. Both fit on train and "
        f"score every valid and test row. recctl: `recctl --json train {' '.join(rc_args)}` (biased MF, "
        "early stopping on valid RMSE; its fit seconds include per-epoch validation); its bias baseline is "
        "fitted by the same ALS as surprise's BaselineOnly. surprise: BaselineOnly, SVD and SVDpp at their "
        "defaults, random_state 0; it clips predictions to 1..5, recctl does not: the last column is "
        "surprise's test RMSE unclipped.\n"
    )
    print("| model | test RMSE | test MAE | valid RMSE | fit s | epochs | test RMSE unclipped |")
    print("|---|---|---|---|---|---|---|")
    if rc:
        test, valid = rc["metrics"]["test"], rc["metrics"]["valid"] or {}
        sec = rc["seconds"]
        print(
            f"| recctl mf (ml100k_rating) | {fmt(test.get('rmse'), 4)} | {fmt(test.get('mae'), 4)} "
            f"| {fmt(valid.get('rmse'), 4)} | {fmt(sec.get('fit'), 1)} | {sec.get('epochs') or '-'} | - |"
        )
        bias = rc.get("baseline", {}).get("bias") or {}
        bt, bv = bias.get("test") or {}, bias.get("valid") or {}
        print(
            f"| recctl bias baseline | {fmt(bt.get('rmse'), 4)} | {fmt(bt.get('mae'), 4)} "
            f"| {fmt(bv.get('rmse'), 4)} | - | - | - |"
        )
    for name, m in (sp or {}).get("models", {}).items():
        print(
            f"| surprise {name} | {fmt(m['test']['rmse'], 4)} | {fmt(m['test']['mae'], 4)} "
            f"| {fmt(m['valid']['rmse'], 4)} | {fmt(m['fit_seconds'], 1)} | {m['epochs']} "
            f"| {fmt(m['test_rmse_unclipped'], 4)} |"
        )
    if sp:
        print(
            f"\nRows (surprise's view): {sp['rows']}, {sp['users']} users and {sp['items']} items in train."
        )
    if errors:
        print("\n## Failures\n")
        for err in errors:
            print(f"- {err}")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=3, help="epoch budget per model, both sides (default 3)"
    )
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help=f"recctl names, from {','.join(PAIRS)}"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="both sides (default: recctl's trainer default)"
    )
    parser.add_argument("--embedding", type=int, default=64, help="embedding size, both sides (default 64)")
    parser.add_argument("--skip-install", action="store_true", help="use .venv-peers/ as it is")
    parser.add_argument(
        "--allow-cuda-torch", action="store_true", help="install torch's CUDA build if no CPU build"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print configs, check RecBole's on a few batches, train nothing",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both sides (OMP_NUM_THREADS for torch, TF_NUM_INTRA/INTEROP_THREADS for TF); "
        "default: each library's own (all cores)",
    )
    parser.add_argument(
        "--rating",
        action="store_true",
        help="the rating task instead: recctl experiment=ml100k_rating beside scikit-surprise (no RecBole)",
    )
    parser.add_argument("--recctl-set", action="append", default=[], metavar="MODEL:key=value")
    parser.add_argument("--recbole-set", action="append", default=[], metavar="MODEL:key=value")
    args = parser.parse_args()
    if args.batch_size is None:
        args.batch_size = int(
            yaml.safe_load((REPO / "conf" / "trainer" / "default.yaml").read_text())["batch_size"]
        )
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in PAIRS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}: choose from {', '.join(PAIRS)}")
    recctl_sets, recbole_sets = parse_sets(args.recctl_set), parse_sets(args.recbole_set)
    args.recctl_set_by, args.recbole_set_by = recctl_sets, recbole_sets
    ml = DATASETS / "ml-100k"
    if not (ml / "u.data").is_file():
        raise SystemExit(f"ml-100k not found at {ml} (set RECCTL_DATASETS)")

    if "rating" in recbole_sets or ("rating" in recctl_sets and not args.rating):
        raise SystemExit("MODEL rating: only --recctl-set, with --rating")
    venv = SURPRISE_PEERS if args.rating else PEERS
    if args.skip_install:
        if not (venv / "bin" / "python").exists():
            raise SystemExit(f"--skip-install: {venv} does not exist")
    elif args.rating:
        install_surprise()
    else:
        install(args.allow_cuda_torch)

    if args.threads:
        # Inherited by every recctl and RecBole process started below. On a busy machine torch's
        # OpenMP threads spin against other processes: RecBole BPR's training epoch took 2.3 s with 2
        # threads and 0.13 s with 1 while two other trainings ran (BENCHMARKS.md).
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[var] = str(args.threads)
    work = Path(tempfile.mkdtemp(prefix="recctl-peers-"))
    load = os.getloadavg()[0]
    machine = (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, TensorFlow {metadata.version('tensorflow')}, "
        f"threads {args.threads or 'library default'}, load average {load:.2f} at start"
    )
    if args.rating:
        rating(args, ml, machine, work)
        return
    data_root = work / "recbole-data"
    seqs = user_sequences(prepare(ml, work, []))
    write_general(seqs, data_root / "ml100k-recctl", "ml100k-recctl")
    general_files = data_root / "ml100k-recctl"
    configs = {}
    for m in models:
        pair = PAIRS[m]
        cfg = recbole_config(pair, args, data_root, work, recbole_sets.get(m, []))
        folder = data_root / cfg["dataset"]
        if pair.kind == "sequential" and not folder.exists():
            write_sequential(seqs, folder, cfg["dataset"], cfg["MAX_ITEM_LIST_LENGTH"])
        if pair.kind == "ctr" and not folder.exists():
            write_ctr(prepare(ml, work, CTR_DATASET), folder, cfg["dataset"])
        mask = None
        if pair.kind == "sequential":
            mask = {s: str(general_files / f"ml100k-recctl.{s}.inter") for s in ("train", "valid")}
        configs[m] = (pair, cfg, mask, recctl_args(pair, args, ml, recctl_sets.get(m, [])))
    print(f"work folder: {work}", file=sys.stderr)

    if args.dry_run:
        print(
            f"# bench-peers dry run: configs, and each RecBole config checked on a few batches\n\n{machine}\n"
        )
        for pair, cfg, mask, rc_args in configs.values():
            proc = subprocess.run(
                [str(BIN / "recctl"), "train", *rc_args, "--cfg", "job"],
                cwd=work,
                capture_output=True,
                text=True,
            )
            composed = "ok" if proc.returncode == 0 else f"FAILED: {proc.stderr.strip()[-300:]}"
            check, err = run_recbole(pair.recbole, cfg, mask, work, check=True)
            print(f"## {pair.recctl} <-> {pair.recbole}\n")
            print(f"recctl: `recctl --json train {' '.join(rc_args)}` (config composes: {composed})\n")
            print(f"RecBole {pair.recbole} config:\n```json\n{json.dumps(cfg, indent=1)}\n```")
            if err:
                print(f"check: {err}\n")
                continue
            est = check["batch_seconds"] * check["batches_per_epoch"]
            quality = ", ".join(f"{k} {v:.4f}" for k, v in check["test_untrained"].items())
            print(
                f"check: {check['users']} users, {check['items']} items, rows {check['rows']}, "
                f"{check['params']:,} parameters, {check['batches_per_epoch']} batches/epoch; a training "
                f"batch {check['batch_seconds']:.3f} s (rough epoch estimate {est:.1f} s); untrained "
                f"test: {quality}; history masked: {check['masked_history']}\n"
            )
        return

    rows = []
    torch_version = None
    for pair, cfg, mask, rc_args in configs.values():
        print(f"{pair.recctl}: recctl ...", file=sys.stderr)
        rc, rc_err = train_result(rc_args, work)
        print(f"{pair.recctl}: RecBole {pair.recbole} ...", file=sys.stderr)
        rb, rb_err = run_recbole(pair.recbole, cfg, mask, work, check=False)
        torch_version = torch_version or (rb and f"{rb['torch']}, torch threads {rb['threads']}")
        err = "; ".join(e for e in (rc_err and f"recctl {pair.recctl}: {rc_err}", rb_err) if e) or None
        rows.append((pair, rc, rb, err))
    report(rows, args, machine, torch_version, {m: (c[1], c[3]) for m, c in configs.items()})
    print(f"\n(work folder: {work})")


if __name__ == "__main__":
    main()
