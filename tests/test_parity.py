"""The NumPy engine computes what the Keras model computes: logits on padded batches and greedy replies, for both
cells and for one and two layers, with weights trained a few steps away from their initial values."""

import numpy as np
import pytest

from conftest import requires_tf

pytestmark = requires_tf

from chatbot import bundle as bundle_io  # noqa: E402
from chatbot import decoding  # noqa: E402
from chatbot.bot import Chatbot  # noqa: E402
from chatbot.engine import Engine  # noqa: E402
from chatbot.tokenizer import END_ID, PAD_ID, SEP_ID, START_ID, UNK_ID, Tokenizer, Vocabulary  # noqa: E402

VOCAB = Vocabulary(("<pad>", "<unk>", "<s>", "</s>", "<sep>") + tuple(f"w{i}" for i in range(25)))
# Right-padded sources and targets of different lengths, SEP and UNK included: what the training pipeline feeds.
SOURCES = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, SEP_ID, 15, 16, UNK_ID], [17]]
TARGETS = [[20, 21, 22], [23, 24, 25, 26, 27, 28], [29], [5, 29, 7, 8]]


def _pad(rows, extra=0):
    out = np.zeros((len(rows), max(map(len, rows)) + extra), np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _train_a_little(cell, layers, tied=False, steps=8):
    """A tiny model trained `steps` steps on four pairs with the real training step (dropout on)."""
    import keras
    import tensorflow as tf

    from training.model import build_model
    from training.settings import load_preset
    from training.train import make_steps

    settings = load_preset("tiny", cell=cell, layers=layers, embedding_dim=8, encoder_units=6, dropout=0.2,
                           learning_rate=0.02, xla=False, tie_embeddings=tied)
    config = settings.model_config(len(VOCAB))
    keras.utils.set_random_seed(7)
    model = build_model(config)
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    optimizer.build(model.trainable_variables)
    train_step, _ = make_steps(model, optimizer, tf.distribute.get_strategy(), settings)
    source = _pad(SOURCES, extra=2)
    target_in = _pad([[START_ID] + t for t in TARGETS], extra=1)
    target_out = _pad([t + [END_ID] for t in TARGETS], extra=1)
    before = model.get_layer("embedding").embeddings.numpy().copy()
    for _ in range(steps):
        train_step(source, target_in, target_out)
    assert np.abs(model.get_layer("embedding").embeddings.numpy() - before).max() > 1e-3  # the weights moved
    return model, config


def _keras_logits(model, source, target_in):
    return np.asarray(model({"source_ids": source, "target_in_ids": target_in}, training=False))


def _keras_greedy(model, sources, max_length, min_length=1):
    """Argmax decoding with the Keras model over growing target prefixes, under the rules decoding.py uses:
    PAD, UNK, START and SEP never; END not before min_length tokens; only END after max_length tokens.
    The prefix lives in a fixed-width, PAD-filled buffer (one traced shape): the decoder reads left to right
    and skips padding, so the logits at step t depend on the prefix up to t only."""
    import tensorflow as tf

    call = tf.function(lambda s, t: model({"source_ids": s, "target_in_ids": t}, training=False))
    source = _pad(sources)
    prefix = np.zeros((len(sources), max_length + 1), np.int32)
    prefix[:, 0] = START_ID
    replies = [[] for _ in sources]
    for t in range(max_length + 1):
        logits = np.asarray(call(source, prefix))[:, t].copy()
        logits[:, [PAD_ID, UNK_ID, START_ID, SEP_ID]] = -np.inf
        if t < min_length:
            logits[:, END_ID] = -np.inf
        if t == max_length:
            logits[:, np.arange(logits.shape[1]) != END_ID] = -np.inf
        choice = logits.argmax(axis=1)
        for reply, token in zip(replies, choice):
            reply.append(int(token))
        if t < max_length:
            prefix[:, t + 1] = choice
    return [reply[:reply.index(END_ID)] for reply in replies]


@pytest.fixture(scope="module", params=[("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2), ("lstm", 1, True)],
                ids=lambda p: f"{p[0]}-{p[1]}layer" + ("-tied" if p[2:] else ""))
def exported(request, tmp_path_factory):
    from training.export import export_bundle

    model, config = _train_a_little(*request.param)
    path = export_bundle(model, config, VOCAB, tmp_path_factory.mktemp("parity") / "bot", Tokenizer())
    return model, bundle_io.load(path)


def test_teacher_forced_logits_match(exported):
    model, bundle = exported
    engine = Engine(bundle.model, bundle.weights)
    source = _pad(SOURCES, extra=3)  # extra padding columns must change nothing
    target_in = _pad([[START_ID] + t for t in TARGETS], extra=2)
    keras_logits = _keras_logits(model, source, target_in)
    numpy_logits = engine.teacher_forced_logits(source, target_in)
    assert numpy_logits.shape == keras_logits.shape
    real = target_in != PAD_ID  # positions after a target's end are padding in both, with no defined value
    assert np.abs(numpy_logits[real] - keras_logits[real]).max() < 1e-4
    assert np.abs(keras_logits[real]).max() > 0.5  # not trivially equal


def test_logits_do_not_depend_on_padding_or_batch(exported):
    _, bundle = exported
    engine = Engine(bundle.model, bundle.weights)
    batch = engine.teacher_forced_logits(_pad(SOURCES, extra=4), _pad([[START_ID] + t for t in TARGETS]))
    for i, (source, target) in enumerate(zip(SOURCES, TARGETS)):
        alone = engine.teacher_forced_logits([source], [[START_ID] + target])[0]
        assert np.abs(alone - batch[i, :len(target) + 1]).max() < 1e-5


@pytest.mark.parametrize("min_length", [1, 4])
def test_greedy_replies_match(exported, min_length):
    model, bundle = exported
    sources = SOURCES + [[8, 7, 6, 5], [29, 28, 27]]
    expected = _keras_greedy(model, sources, max_length=8, min_length=min_length)
    engine = Engine(bundle.model, bundle.weights)
    got = [c.ids for c in decoding.greedy(engine, sources, max_length=8, min_length=min_length)]
    assert got == expected
    assert all(len(reply) >= min_length for reply in got)
    # The library does the same, from text.
    bot = Chatbot(bundle, mode="greedy", max_length=8, min_length=1, no_repeat_ngram=0)
    text = "w0 w1 w2 w3"
    ids = bot.encode(text)
    assert bot.respond(text).tokens == VOCAB.decode(_keras_greedy(model, [ids], max_length=8)[0])
