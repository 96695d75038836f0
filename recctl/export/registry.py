"""The export formats, by `export.format` name. No TensorFlow here: `recctl.config` and the CLI
may import this module at once; a format's own module is imported only when it is used.

To add an export format: write `recctl/export/<module>.py` with

    DESCRIPTION: str                             # the model card's "Format:" line
    def write(job: ExportJob) -> dict            # write into job.folder; export.json's "signatures"
    def card(job: ExportJob, info: dict) -> tuple[str, str]   # the card's (signature, usage) sections
    def summary(info: dict) -> dict              # optional: extra `--json` keys, from write's dict

and add one line to FORMATS below (its name is then accepted by `export.format`). Shared pieces:
`portable.py` (the integer-index top-K function, id maps, sample inputs, overlap check) and
`card.py` (the model card around the format's sections).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class ExportFormat:
    module: str  # the module that writes the format (the API above)
    quantizes: bool = False  # takes export.quantize (recorded in export.json; "none" elsewhere)

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


FORMATS: dict[str, ExportFormat] = {
    "saved_model": ExportFormat("recctl.export.saved_model"),
    "keras": ExportFormat("recctl.export.keras_file"),
    "onnx": ExportFormat("recctl.export.onnx"),
    "litert": ExportFormat("recctl.export.litert", quantizes=True),
}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
QUANTIZE: tuple[str, ...] = ("none", "dynamic", "float16")
QUANTIZING_FORMATS: tuple[str, ...] = tuple(name for name, f in FORMATS.items() if f.quantizes)


@dataclass(frozen=True)
class ExportJob:
    """What a format's `write` and `card` get: the run's model and snapshot, where to write."""

    model: Any
    snapshot: Any
    run_dir: Path  # the finished run's folder
    folder: Path  # the staging folder the format writes into
    k: int  # export.k as asked; formats cap it at the catalogue size
    quantize: str = "none"
    name: str = ""  # the export name (outputs/exports/<name>/): TF Serving's model name
    include_history: bool = True  # export.include_history: the SavedModel carries every user's seen items


def default_name(model_name: str, fmt: str) -> str:
    """The export name when export.name is null: the model's name for a SavedModel, else
    `<model>_<format>`, so a TF Serving model folder (whose newest version it serves) only ever
    holds SavedModels."""
    return model_name if fmt == "saved_model" else f"{model_name}_{fmt}"
