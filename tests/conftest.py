"""Shared fixtures: tiny model bundles, one with random weights (no TensorFlow needed) and one trained for a
few seconds on tests/fixtures/twenty_pairs.tsv (20 pairs), so it answers those contexts with their replies."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chatbot import bundle as bundle_io
from chatbot.config import DecodingConfig, ModelConfig
from chatbot.engine import weight_shapes
from chatbot.tokenizer import Tokenizer, Vocabulary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "data" / "examples"
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"
HAVE_TF = importlib.util.find_spec("tensorflow") is not None
requires_tf = pytest.mark.skipif(not HAVE_TF, reason="TensorFlow is not installed (pip install '.[train]')")

# Small talk the trained fixture learns by heart: context -> reply.
PAIRS_FILE = ROOT / "tests" / "fixtures" / "twenty_pairs.tsv"
SMALL_TALK = dict(line.split("\t") for line in PAIRS_FILE.read_text().splitlines() if line)


def make_random_bundle(path, cell="lstm", layers=1, context_turns=1, seed=0):
    tokenizer = Tokenizer()
    texts = list(SMALL_TALK) + list(SMALL_TALK.values())
    vocab = Vocabulary.build(tokenizer.tokenize(t) for t in texts)
    config = ModelConfig(vocab_size=len(vocab), embedding_dim=8, encoder_units=8, layers=layers, cell=cell,
                         context_turns=context_turns)
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in weight_shapes(config).items()}
    b = bundle_io.Bundle(model=config, vocab=vocab, weights=weights, tokenizer=tokenizer,
                         decoding=DecodingConfig(mode="greedy", max_length=12), training={"corpus": "random"})
    bundle_io.save(b, path)
    return Path(path)


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory):
    return make_random_bundle(tmp_path_factory.mktemp("random") / "bot")


def chatbot_cmd(*args, input=None, env=None, timeout=120):
    """Run the CLI as a user would, in a fresh process."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "chatbot", *args], input=input, capture_output=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory):
    """A tiny model that has overfit the small-talk pairs (greedy decoding by default)."""
    if not HAVE_TF:
        pytest.skip("TensorFlow is not installed")
    out = tmp_path_factory.mktemp("trained") / "bot"
    result = chatbot_cmd("train", "--data", str(PAIRS_FILE), "--out", str(out), "--preset", "tiny",
                         "--epochs", "60", "--seed", "3", timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return out
