"""The model bundle: a directory with config.json, vocab.json and weights.npz.

Saving is atomic (a temporary directory beside the target, then renames), and loading validates every file and
never executes code (JSON, and NumPy arrays with allow_pickle=False).
"""

import dataclasses
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .config import DecodingConfig, ModelConfig
from .engine import weight_shapes
from .errors import ModelError
from .tokenizer import Tokenizer, Vocabulary

FORMAT_VERSION = 1
FILES = ("config.json", "vocab.json", "weights.npz")


@dataclasses.dataclass
class Bundle:
    model: ModelConfig
    vocab: Vocabulary
    weights: dict
    tokenizer: Tokenizer = dataclasses.field(default_factory=Tokenizer)
    decoding: DecodingConfig = dataclasses.field(default_factory=DecodingConfig)
    training: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self):
        return self.path.name if self.path else "unsaved"

    def config_dict(self):
        return {"format_version": FORMAT_VERSION, "model": self.model.to_dict(),
                "tokenizer": self.tokenizer.get_config(), "decoding": self.decoding.to_dict(),
                "training": self.training}


def default_model_path():
    return Path(__file__).resolve().parent / "models" / "default"


def save(bundle, path):
    """Write the bundle to `path`, replacing any bundle there only once the new one is complete."""
    path = Path(path)
    if len(bundle.vocab) != bundle.model.vocab_size:
        raise ModelError(f"vocabulary has {len(bundle.vocab)} tokens but the model expects {bundle.model.vocab_size}")
    expected = weight_shapes(bundle.model)
    missing = sorted(set(expected) - set(bundle.weights))
    if missing:
        raise ModelError(f"cannot save bundle: missing weights {', '.join(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a bundle is as readable as any directory
    try:
        (tmp / "config.json").write_text(json.dumps(bundle.config_dict(), indent=2) + "\n", encoding="utf-8")
        (tmp / "vocab.json").write_text(bundle.vocab.to_json() + "\n", encoding="utf-8")
        arrays = {name: np.asarray(bundle.weights[name], dtype=np.float32) for name in expected}
        with open(tmp / "weights.npz", "wb") as f:
            np.savez(f, **arrays)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.path = path
    return path


def _swap_into_place(tmp, path):
    for name in FILES:
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    if not path.exists():
        os.rename(tmp, path)
        return
    # A directory cannot be replaced in one rename, so the old one steps aside first; a crash in between
    # leaves both the old (.old) and new (temporary) bundles intact on disk.
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _read_json(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing file (not a model bundle?)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: corrupt JSON ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None


def load(path=None):
    """Load and validate a bundle; None means the shipped default model."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found" if not path.exists() else f"{path}: not a directory")
    config = _read_json(path / "config.json")
    if not isinstance(config, dict):
        raise ModelError(f"{path / 'config.json'}: expected a JSON object")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{path / 'config.json'}: unknown format version {version!r} (this chatbot reads {FORMAT_VERSION})")
    try:
        model = ModelConfig.from_dict(config.get("model"))
        decoding = DecodingConfig.from_dict(config.get("decoding", {}))
        tokenizer = Tokenizer.from_config(config.get("tokenizer", {}))
    except ModelError as exc:
        raise ModelError(f"{path / 'config.json'}: {exc}") from None
    try:
        vocab = Vocabulary.from_json((path / "vocab.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path / 'vocab.json'}: missing file") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ModelError) as exc:
        raise ModelError(f"{path / 'vocab.json'}: corrupt ({exc})") from None
    if len(vocab) != model.vocab_size:
        raise ModelError(f"{path / 'vocab.json'}: {len(vocab)} tokens, but config.json says vocab_size {model.vocab_size}")
    weights = _load_weights(path / "weights.npz", model)
    return Bundle(model=model, vocab=vocab, weights=weights, tokenizer=tokenizer, decoding=decoding,
                  training=config.get("training") or {}, path=path)


def _load_weights(path, model):
    try:
        with np.load(path, allow_pickle=False) as npz:
            weights = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ModelError(f"{path}: missing file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{path}: corrupt weights ({exc})") from None
    for name, shape in weight_shapes(model).items():
        if name not in weights:
            raise ModelError(f"{path}: missing array {name!r}")
        if weights[name].shape != shape:
            raise ModelError(f"{path}: array {name!r} has shape {weights[name].shape}, expected {shape}")
        if weights[name].dtype != np.float32:
            raise ModelError(f"{path}: array {name!r} is {weights[name].dtype}, expected float32")
    return weights
