"""Training checkpoints: model variables (dropout seed states included), optimizer variables and the run's
progress in one .npz per step, and a `latest.json` pointer that is only replaced (atomically) after the
checkpoint it names is complete. A kill at any moment leaves the previous latest checkpoint loadable."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from chatbot.errors import ChatbotError

KEEP = 2


def atomic_write(path, write):
    """Write to a temporary file, then rename it over `path`: readers see the old file or the new one, never
    a part. A failed write removes the temporary file and leaves `path` as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _model_variables(model):
    # model.variables, not model.weights: the dropout layers' seed-generator states are part of an exact resume.
    return list(model.variables)


def save(directory, model, optimizer, progress):
    """progress: a JSON-able dict (epoch, batch within epoch, step, best validation loss, ...)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(_model_variables(model))}
    arrays.update({f"optimizer/{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    # The progress travels inside the same file as the variables, so the two can never disagree.
    arrays["progress"] = np.frombuffer(json.dumps(progress).encode(), np.uint8)
    name = f"ckpt-{int(progress['step']):08d}"
    atomic_write(directory / f"{name}.npz", lambda f: np.savez(f, **arrays))
    atomic_write(directory / "latest.json", lambda f: f.write(json.dumps({"checkpoint": name}).encode()))
    for old in sorted(directory.glob("ckpt-*.npz"))[:-KEEP]:
        if old.stem != name:
            old.unlink(missing_ok=True)
    return directory / name


def clear(directory):
    """Remove every checkpoint in `directory` (a fresh run in an old run directory)."""
    directory = Path(directory)
    (directory / "latest.json").unlink(missing_ok=True)
    for path in directory.glob("ckpt-*"):
        path.unlink(missing_ok=True)


def latest(directory):
    pointer = Path(directory) / "latest.json"
    if not pointer.is_file():
        return None
    try:
        return json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ChatbotError(f"{pointer}: corrupt checkpoint pointer ({exc})") from None


def read(directory, name=None):
    """(progress, model arrays, optimizer arrays) of the latest checkpoint (or the one named)."""
    directory = Path(directory)
    name = name or latest(directory)
    if name is None:
        raise ChatbotError(f"{directory}: no checkpoint to resume from")
    path = directory / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            progress = json.loads(z["progress"].tobytes().decode())
            model_arrays = [z[k] for k in sorted(k for k in z.files if k.startswith("model/"))]
            optimizer_arrays = [z[k] for k in sorted(k for k in z.files if k.startswith("optimizer/"))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ChatbotError(f"{path}: cannot read checkpoint ({exc})") from None
    return progress, model_arrays, optimizer_arrays


def restore(directory, model, optimizer):
    """Load the latest checkpoint into a built model and optimizer; returns its progress dict."""
    progress, model_arrays, optimizer_arrays = read(directory)
    model_variables = _model_variables(model)
    variables = model_variables + list(optimizer.variables)
    arrays = model_arrays + optimizer_arrays
    if (len(model_arrays) != len(model_variables) or len(optimizer_arrays) != len(optimizer.variables)
            or any(tuple(v.shape) != a.shape for v, a in zip(variables, arrays))):
        raise ChatbotError(f"{Path(directory) / latest(directory)}.npz: checkpoint does not match this model")
    for variable, value in zip(variables, arrays):
        variable.assign(value)
    return progress
