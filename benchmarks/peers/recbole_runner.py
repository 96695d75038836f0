"""Train one RecBole model on recctl's split and write what happened as JSON (run by benchmarks/peers/run.py).

Runs inside the peers virtualenv (.venv-peers: RecBole 1.2.1, torch 2.13.0 CPU), never recctl's:

    .venv-peers/bin/python benchmarks/peers/recbole_runner.py SPEC.json OUT.json

SPEC.json: {"model": "BPR", "config": {RecBole config dict}, "mask": null | {"train": PATH, "valid": PATH},
"check": false}. The config names the atomic files written by run.py (benchmark_filename train/valid/test).

- Training and validation seconds are timed per epoch by wrapping the trainer's `_train_epoch` and
  `_valid_epoch` (the same spans RecBole logs as "epoch N training [time: X s" and "evaluating").
- `mask` (sequential models): RecBole's full-ranking evaluation of sequential models masks nothing
  but the padding item. recctl's protocol masks the user's history (train items at validation, train +
  valid items at test), so the runner hands RecBole that history for every evaluation batch; RecBole's
  own evaluator then scores exactly as it does for general models, and picks the best validation epoch
  under the same protocol.
- `check`: build the data and the model, time a few training batches (loss + backward + step), score
  the untrained model on test, and train no epoch: a cheap check of a configuration.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time

# RecBole 1.2.1 saves checkpoints holding its Config object and loads them back with a bare
# torch.load(); torch >= 2.6 refuses such pickles unless weights-only loading is switched off.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_logger, init_seed  # noqa: E402


def read_inter(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(user tokens, item tokens) of a RecBole atomic .inter file written by run.py."""
    users, items = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        u, i = header.index("user_id:token"), header.index("item_id:token")
        for line in f:
            parts = line.rstrip("\n").split("\t")
            users.append(parts[u])
            items.append(parts[i])
    return np.array(users), np.array(items)


def history_by_user(dataset, paths: list[str]) -> dict[int, torch.Tensor]:
    """RecBole internal user id -> internal ids of the items in the given atomic files."""
    users, items = [], []
    for path in paths:
        u, i = read_inter(path)
        users.append(u)
        items.append(i)
    uid = dataset.token2id(dataset.uid_field, np.concatenate(users))
    iid = dataset.token2id(dataset.iid_field, np.concatenate(items))
    order = np.argsort(uid, kind="stable")
    uid, iid = uid[order], iid[order]
    bounds = np.flatnonzero(np.diff(uid)) + 1
    return {
        int(group_u[0]): torch.as_tensor(group_i, dtype=torch.int64)
        for group_u, group_i in zip(np.split(uid, bounds), np.split(iid, bounds), strict=True)
    }


def mask_history(loader, history: dict[int, torch.Tensor], uid_field: str) -> None:
    """Make a sequential FullSortEvalDataLoader return (rows, items) to mask, as general loaders do."""
    collate = loader.collate_fn
    empty = torch.zeros(0, dtype=torch.int64)

    def collate_with_history(index):
        interaction, _, positive_u, positive_i = collate(index)
        rows, cols = [], []
        for row, (user, target) in enumerate(
            zip(interaction[uid_field].tolist(), positive_i.tolist(), strict=True)
        ):
            items = history.get(user, empty)
            items = items[items != target]
            rows.append(torch.full_like(items, row))
            cols.append(items)
        return interaction, (torch.cat(rows), torch.cat(cols)), positive_u, positive_i

    loader.collate_fn = collate_with_history


def metrics(result) -> dict[str, float]:
    return {k.lower(): float(v) for k, v in (result or {}).items()}


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    cfg = spec["config"]
    config = Config(model=spec["model"], dataset=cfg["dataset"], config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    seq_field = "item_id_list"
    if seq_field in dataset.field2seqlen and "MAX_ITEM_LIST_LENGTH" in config:
        # A Caser whose input is shorter than its window would fail; a longer one would see other data.
        if dataset.field2seqlen[seq_field] != config["MAX_ITEM_LIST_LENGTH"]:
            raise SystemExit(
                f"{seq_field} holds {dataset.field2seqlen[seq_field]} items, "
                f"MAX_ITEM_LIST_LENGTH is {config['MAX_ITEM_LIST_LENGTH']}"
            )
    if spec.get("mask"):
        train_hist = history_by_user(dataset, [spec["mask"]["train"]])
        test_hist = history_by_user(dataset, [spec["mask"]["train"], spec["mask"]["valid"]])
        mask_history(valid_data, train_hist, dataset.uid_field)
        mask_history(test_data, test_hist, dataset.uid_field)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    out = {
        "model": spec["model"],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": int(sum(p.numel() for p in model.parameters())),
        "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1),
        "rows": {
            "train": len(train_data._dataset),
            "valid": len(valid_data._dataset),
            "test": len(test_data._dataset),
        },
        "batches_per_epoch": len(train_data),
        "masked_history": bool(spec.get("mask")),
    }

    if spec.get("check"):
        # One warm-up batch (first-call overheads), then the median of two timed ones.
        model.train()
        seconds = []
        for batch in itertools.islice(iter(train_data), 3):
            start = time.perf_counter()
            loss = model.calculate_loss(batch.to(config["device"]))
            loss = sum(loss) if isinstance(loss, tuple) else loss
            trainer.optimizer.zero_grad()
            loss.backward()
            trainer.optimizer.step()
            seconds.append(time.perf_counter() - start)
        timed = seconds[1:] or seconds
        out["batch_seconds"] = sorted(timed)[len(timed) // 2]
        out["loss"] = float(loss)
        out["test_untrained"] = metrics(trainer.evaluate(test_data, load_best_model=False))
    else:
        train_s, valid_s, valid_scores = [], [], []
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def timed_train(*args, **kwargs):
            start = time.perf_counter()
            result = train_epoch(*args, **kwargs)
            train_s.append(time.perf_counter() - start)
            return result

        def timed_valid(*args, **kwargs):
            start = time.perf_counter()
            score, result = valid_epoch(*args, **kwargs)
            valid_s.append(time.perf_counter() - start)
            valid_scores.append(float(score))
            return score, result

        trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
        start = time.perf_counter()
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        fit = time.perf_counter() - start
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        epochs = len(train_s)
        out.update(
            epochs=epochs,
            fit_seconds=fit,
            per_epoch=fit / epochs if epochs else None,
            train_seconds=train_s,
            valid_seconds=valid_s,
            valid_scores=valid_scores,
            best_epoch=int(np.argmax(valid_scores)) + 1 if valid_scores else None,
            valid=metrics(trainer.best_valid_result),
            test=metrics(test),
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
