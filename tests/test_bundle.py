"""The model bundle on disk: round trip, atomic saves, and every way a bundle can be broken."""

import json

import numpy as np
import pytest

from chatbot import bundle as bundle_io
from chatbot.config import DecodingConfig
from chatbot.engine import Engine
from chatbot.errors import ModelError

from conftest import make_random_bundle


@pytest.fixture
def bot(tmp_path):
    return make_random_bundle(tmp_path / "bot", cell="gru", layers=2, context_turns=2, seed=4)


def test_round_trip(bot, tmp_path):
    b = bundle_io.load(bot)
    assert b.path == bot and b.name == "bot"
    assert b.model.cell == "gru" and b.model.layers == 2 and b.model.context_turns == 2
    assert b.decoding == DecodingConfig(mode="greedy", max_length=12)
    assert b.training == {"corpus": "random"}
    copy = bundle_io.save(b, tmp_path / "copy")
    again = bundle_io.load(copy)
    assert again.model == b.model and again.decoding == b.decoding and again.training == b.training
    assert again.vocab.tokens == b.vocab.tokens
    assert again.tokenizer.get_config() == b.tokenizer.get_config()
    assert set(again.weights) == set(b.weights)
    for name in b.weights:
        assert again.weights[name].dtype == np.float32
        np.testing.assert_array_equal(again.weights[name], b.weights[name])
    ids = np.array([[7, 8, 9, 0]])
    np.testing.assert_array_equal(Engine(b.model, b.weights).teacher_forced_logits(ids, [[2, 7, 8]]),
                                  Engine(again.model, again.weights).teacher_forced_logits(ids, [[2, 7, 8]]))


def test_save_replaces_an_existing_bundle(bot):
    b = bundle_io.load(bot)
    b.weights = {k: v + 1 for k, v in b.weights.items()}
    bundle_io.save(b, bot)
    np.testing.assert_array_equal(bundle_io.load(bot).weights["embedding"], b.weights["embedding"])
    assert sorted(p.name for p in bot.parent.iterdir()) == ["bot"]  # no temporary or old copies left


def test_failed_save_leaves_the_previous_bundle(bot, monkeypatch):
    before = bundle_io.load(bot)
    changed = bundle_io.load(bot)
    changed.weights = {k: v * 0 for k, v in changed.weights.items()}

    def savez_then_fail(file, **arrays):  # a crash halfway through writing weights.npz
        file.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(bundle_io.np, "savez", savez_then_fail)
    with pytest.raises(OSError):
        bundle_io.save(changed, bot)
    monkeypatch.undo()
    after = bundle_io.load(bot)
    for name in before.weights:
        np.testing.assert_array_equal(after.weights[name], before.weights[name])
    assert sorted(p.name for p in bot.parent.iterdir()) == ["bot"]


def test_save_refuses_an_inconsistent_bundle(bot, tmp_path):
    b = bundle_io.load(bot)
    del b.weights["output/bias"]
    with pytest.raises(ModelError, match="output/bias"):
        bundle_io.save(b, tmp_path / "x")
    b = bundle_io.load(bot)
    b.vocab.tokens.append("extra")
    with pytest.raises(ModelError, match="vocabulary"):
        bundle_io.save(b, tmp_path / "x")


def _config(bot):
    return json.loads((bot / "config.json").read_text())


@pytest.mark.parametrize("breakage, file", [
    (lambda bot: (bot / "config.json").unlink(), "config.json"),
    (lambda bot: (bot / "config.json").write_text("{not json"), "config.json"),
    (lambda bot: (bot / "config.json").write_bytes(b"\xff\xfe\x00"), "config.json"),
    (lambda bot: (bot / "config.json").write_text("[1, 2]"), "config.json"),
    (lambda bot: (bot / "config.json").write_text(json.dumps({**_config(bot), "format_version": 99})),
     "config.json"),
    (lambda bot: (bot / "config.json").write_text(json.dumps({**_config(bot), "model": {"vocab_size": -1}})),
     "config.json"),
    (lambda bot: (bot / "vocab.json").unlink(), "vocab.json"),
    (lambda bot: (bot / "vocab.json").write_text('{"tokens": "abc"}'), "vocab.json"),
    (lambda bot: (bot / "vocab.json").write_text('{"tokens": ["a", "b"'), "vocab.json"),
    (lambda bot: (bot / "vocab.json").write_text(json.dumps({"tokens": json.loads(
        (bot / "vocab.json").read_text())["tokens"][:-1]})), "vocab.json"),  # one token short of vocab_size
    (lambda bot: (bot / "weights.npz").unlink(), "weights.npz"),
    (lambda bot: (bot / "weights.npz").write_bytes(b"not a zip file"), "weights.npz"),
    (lambda bot: (bot / "weights.npz").write_bytes((bot / "weights.npz").read_bytes()[:300]), "weights.npz"),
])
def test_broken_bundles_name_the_file(bot, breakage, file):
    breakage(bot)
    with pytest.raises(ModelError) as error:
        bundle_io.load(bot)
    assert file in str(error.value)
    assert "\n" not in str(error.value)


def _rewrite_weights(bot, change):
    with np.load(bot / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(bot / "weights.npz", "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("attention/kernel"), "missing array 'attention/kernel'"),
    (lambda a: a.update(embedding=a["embedding"][:-1]), "'embedding' has shape"),
    (lambda a: a.update({"output/bias": a["output/bias"].astype(np.float64)}), "float64"),
])
def test_bad_weight_arrays(bot, change, words):
    _rewrite_weights(bot, change)
    with pytest.raises(ModelError, match="weights.npz") as error:
        bundle_io.load(bot)
    assert words in str(error.value)


def test_object_arrays_are_refused_without_unpickling(bot):
    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (exec, ("raise SystemExit('unpickled!')",))

    _rewrite_weights(bot, lambda a: a.update(embedding=np.array([Boom()], dtype=object)))
    with pytest.raises(ModelError, match="weights.npz"):
        bundle_io.load(bot)


def test_not_a_bundle(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        bundle_io.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="not a directory"):
        bundle_io.load(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        bundle_io.load(tmp_path / "empty")
