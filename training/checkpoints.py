"""Training checkpoints: model and optimizer variables as .npz, progress as JSON, and a `latest.json` pointer
that is only replaced (atomically) after the checkpoint it names is complete. A kill at any moment leaves the
previous latest checkpoint loadable."""

import json
import os
from pathlib import Path

import numpy as np

from chatbot.errors import ChatbotError

KEEP = 2


def _atomic_write(path, write):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(directory, model, optimizer, progress):
    """progress: a JSON-able dict (epoch, batch within epoch, step, best validation loss, ...)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = int(progress["step"])
    arrays = {f"model/{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(model.weights)}
    arrays.update({f"optimizer/{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    name = f"ckpt-{step:08d}"
    _atomic_write(directory / f"{name}.npz", lambda f: np.savez(f, **arrays))
    _atomic_write(directory / f"{name}.json", lambda f: f.write(json.dumps(progress, indent=2).encode()))
    _atomic_write(directory / "latest.json", lambda f: f.write(json.dumps({"checkpoint": name}).encode()))
    for old in sorted(directory.glob("ckpt-*.npz"))[:-KEEP]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return directory / name


def latest(directory):
    pointer = Path(directory) / "latest.json"
    if not pointer.is_file():
        return None
    try:
        return json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError) as exc:
        raise ChatbotError(f"{pointer}: corrupt checkpoint pointer ({exc})") from None


def restore(directory, model, optimizer):
    """Load the latest checkpoint into a built model and optimizer; returns its progress dict."""
    directory = Path(directory)
    name = latest(directory)
    if name is None:
        raise ChatbotError(f"{directory}: no checkpoint to resume from")
    try:
        progress = json.loads((directory / f"{name}.json").read_text())
        with np.load(directory / f"{name}.npz", allow_pickle=False) as z:
            model_arrays = [z[k] for k in sorted(k for k in z.files if k.startswith("model/"))]
            optimizer_arrays = [z[k] for k in sorted(k for k in z.files if k.startswith("optimizer/"))]
    except (OSError, ValueError) as exc:
        raise ChatbotError(f"{directory / name}: cannot read checkpoint ({exc})") from None
    if len(model_arrays) != len(model.weights) or len(optimizer_arrays) != len(optimizer.variables):
        raise ChatbotError(f"{directory / name}: checkpoint does not match this model")
    for variable, value in zip(model.weights, model_arrays):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, optimizer_arrays):
        variable.assign(value)
    return progress
