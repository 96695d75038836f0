"""The keras format: the trained `.keras` file (safe-mode loadable: every recctl layer is
registered) and the id maps beside it. Load with `keras.saving.load_model` after
`import recctl.models.registry`."""

from __future__ import annotations

import shutil

from recctl.export.portable import write_id_maps
from recctl.export.registry import ExportJob
from recctl.runs import RunFolder

DESCRIPTION = "native Keras `.keras` file (safe-mode loadable)"


FILE = "model.keras"


def write(job: ExportJob) -> dict:
    shutil.copyfile(RunFolder(job.run_dir).model, job.folder / FILE)
    write_id_maps(job.model, job.snapshot, job.folder)
    return {"file": FILE, "load": "import recctl.models.registry; keras.saving.load_model(path)"}


def card(job: ExportJob, info: dict) -> tuple[str, str]:
    return (
        "The Keras model itself: `score_all(context)` -> scores over all items (see recctl's model contract).",
        """```python
import keras, recctl.models.registry  # registers recctl's layers for safe-mode loading
model = keras.saving.load_model("THIS_FOLDER/model.keras")
```""",
    )
