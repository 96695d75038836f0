"""curves.png: training loss and validation ranking metrics per epoch, for a quick look at a run."""

from __future__ import annotations

from pathlib import Path


def plot_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history.get("loss", [])) + 1)
    val_keys = [k for k in history if k.startswith("val_")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(list(epochs), history.get("loss", []), marker="o", label="train loss")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].set_title("training")
    axes[0].legend()
    for key in val_keys:
        values = history[key]
        axes[1].plot(list(range(1, len(values) + 1)), values, marker="o", label=key[4:])
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation (full ranking)")
    if val_keys:
        axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
