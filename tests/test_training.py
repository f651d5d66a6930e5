"""`chatbot train` as a user runs it: a tiny model learns twenty pairs by heart; runs resume exactly, stop cleanly on
Ctrl-C, stop early keeping the best weights, fine-tune and grow their vocabulary; bad input is one line and
exit code 2. Also the Keras model's own save/load."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from chatbot import bundle as bundle_io
from chatbot.bot import Chatbot
from chatbot.decoding import score_replies
from chatbot.engine import Engine
from chatbot.tokenizer import START_ID, Tokenizer
from conftest import EXAMPLES, PAIRS_FILE, ROOT, SMALL_TALK, chatbot_cmd, requires_tf

pytestmark = requires_tf

PAIRS = str(PAIRS_FILE)
LOG_COLUMNS = ["epoch", "step", "train_loss", "train_perplexity", "val_loss", "val_perplexity", "learning_rate",
               "tokens_per_second", "train_seconds"]


def train(*args, timeout=300):
    result = chatbot_cmd("train", *args, timeout=timeout)
    result.out, result.err = result.stdout.decode(), result.stderr.decode()
    assert "Traceback" not in result.err, result.err[-3000:]
    return result


def trained(*args, timeout=300):
    result = train(*args, timeout=timeout)
    assert result.returncode == 0, result.err[-3000:] + result.out[-2000:]
    return result


def trained_here(*args):
    """`chatbot train ...` in this process: the same code path as the command, without another TensorFlow
    start-up (a few seconds each on a small machine). Returns what it printed."""
    from chatbot.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", *args])
    assert code == 0, err.getvalue()[-3000:] + out.getvalue()[-2000:]
    return out.getvalue()


def error_line(result):
    """The one line a failed command prints (TensorFlow's start-up chatter on stderr left aside)."""
    lines = [line for line in result.err.splitlines() if line.startswith("chatbot:")]
    assert len(lines) == 1, result.err[-3000:]
    return lines[0]


def run_dir(out):
    return out.with_name(out.name + ".run")


def read_log(out):
    with open(run_dir(out) / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def max_difference(a, b):
    wa, wb = bundle_io.load(a).weights, bundle_io.load(b).weights
    assert set(wa) == set(wb)
    return max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)


def batch(bundle, pairs):
    """Padded (source ids, target_in ids) and the target_out rows of (context, reply) text pairs."""
    tok, vocab = bundle.tokenizer, bundle.vocab
    sources = [vocab.encode(tok.tokenize(c)) for c, _ in pairs]
    replies = [vocab.encode(tok.tokenize(r)) for _, r in pairs]
    source = np.zeros((len(pairs), max(map(len, sources))), np.int32)
    target_in = np.zeros((len(pairs), max(map(len, replies)) + 1), np.int32)
    for i, (s, r) in enumerate(zip(sources, replies)):
        source[i, :len(s)] = s
        target_in[i, :len(r) + 1] = [START_ID] + r
    return sources, replies, source, target_in


# ---- the trained fixture ------------------------------------------------------------------------------

def test_learns_the_twenty_pairs_by_heart(trained_bundle):
    bot = Chatbot.load(trained_bundle, mode="greedy", no_repeat_ngram=0, max_length=20)
    tok = Tokenizer()
    wrong = {c: bot.respond(c).tokens for c, r in SMALL_TALK.items() if bot.respond(c).tokens != tok.tokenize(r)}
    assert not wrong
    assert bot.reply("Do you have any pets?") == "Yes, a cat called pepper."  # lowercased in training


def test_bundle_records_its_training(trained_bundle):
    b = bundle_io.load(trained_bundle)
    assert b.model.cell == "lstm" and b.model.encoder_units == 16 and b.model.dropout == 0.0
    t = b.training
    assert t["pairs"] == 20 and t["epochs"] == 60 and t["preset"] == "tiny"
    assert t["steps"] == int(read_log(trained_bundle)[-1]["step"])
    assert t["train_loss"] < 0.3 and t["val_loss"] is None


def test_same_output_after_loading_twice(trained_bundle):
    first, second = bundle_io.load(trained_bundle), bundle_io.load(trained_bundle)
    _, _, source, target_in = batch(first, list(SMALL_TALK.items()))
    np.testing.assert_array_equal(Engine(first.model, first.weights).teacher_forced_logits(source, target_in),
                                  Engine(second.model, second.weights).teacher_forced_logits(source, target_in))


def test_keras_model_reloads_safely_with_the_bundles_output(trained_bundle):
    import keras

    import training.model  # noqa: F401  (registers LuongAttention)

    b = bundle_io.load(trained_bundle)
    model = keras.models.load_model(run_dir(trained_bundle) / "model.keras", safe_mode=True)
    _, _, source, target_in = batch(b, list(SMALL_TALK.items()))
    keras_logits = np.asarray(model({"source_ids": source, "target_in_ids": target_in}, training=False))
    engine_logits = Engine(b.model, b.weights).teacher_forced_logits(source, target_in)
    real = target_in != 0
    assert np.abs(keras_logits[real] - engine_logits[real]).max() < 1e-4


def test_csv_and_tensorboard_logs(trained_bundle):
    rows = read_log(trained_bundle)
    assert list(rows[0]) == LOG_COLUMNS
    assert [int(r["epoch"]) for r in rows] == list(range(1, 61))  # one row per epoch
    per_epoch = int(rows[0]["step"])  # 20 pairs in batches of 8, bucketed by length
    assert 3 <= per_epoch <= 6 and [int(r["step"]) for r in rows] == list(range(per_epoch, 61 * per_epoch, per_epoch))
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0] / 10
    assert all(abs(float(r["train_perplexity"]) - np.exp(float(r["train_loss"]))) < 1e-2 * float(
        r["train_perplexity"]) for r in rows)
    events = list((run_dir(trained_bundle) / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0].parent)).Reload().Tags()["tensors"]
    assert {"loss/train", "perplexity/train"} <= set(tags)


# ---- the input pipeline ---------------------------------------------------------------------------------

def test_pipeline_batches_every_pair_once_an_epoch(tmp_path, monkeypatch):
    from training import pipeline
    from training.settings import load_preset

    monkeypatch.setattr(pipeline, "SHARD_PAIRS", 7)  # several shards, streamed one at a time
    settings = load_preset("tiny", batch_size=4, seed=9)
    _, counts = pipeline.tokenize_corpus(PAIRS, "tsv", Tokenizer(), settings, tmp_path)
    manifest = pipeline.write_shards(tmp_path, pipeline.build_vocab(counts, settings))
    assert len(manifest["train"]["shards"]) == 3 and manifest["train"]["pairs"] == 20
    per_epoch = pipeline.batches_per_epoch(tmp_path, manifest, "train", settings)

    def pairs_of(batches):
        found = []
        for source, target_in, target_out in batches:
            assert source.shape[0] == 4 and target_in.shape == target_out.shape
            # each side padded only as far as its longest row: no column is all padding
            assert (source.numpy()[:, -1] != 0).any() and (target_out.numpy()[:, -1] != 0).any()
            for s, ti, to in zip(source.numpy(), target_in.numpy(), target_out.numpy()):
                if not to.any():  # a filler row: no target tokens, nothing to learn
                    continue
                n = int((to != 0).sum())
                assert ti[0] == START_ID and list(ti[1:n]) == list(to[:n - 1]) and to[n - 1] == 3
                found.append((tuple(s[s != 0]), tuple(to[:n - 1])))
        return found

    two_epochs = list(pipeline.make_dataset(tmp_path, manifest, "train", settings, epochs=(0, 2)))
    assert len(two_epochs) == 2 * per_epoch
    first, second = pairs_of(two_epochs[:per_epoch]), pairs_of(two_epochs[per_epoch:])
    assert len(first) == 20 and sorted(first) == sorted(second) and first != second  # reshuffled
    batch_sets = [{frozenset(pairs_of([b])) for b in epoch} for epoch in (two_epochs[:per_epoch],
                                                                           two_epochs[per_epoch:])]
    assert batch_sets[0] != batch_sets[1]  # not only the order: the batches themselves change between epochs
    again = list(pipeline.make_dataset(tmp_path, manifest, "train", settings, epochs=(1, 2), skip=2))
    assert pairs_of(again) == pairs_of(two_epochs[per_epoch + 2:])  # what --resume relies on
    # With --xla each side is padded to a bucket boundary instead, so the compiled step sees few shapes.
    boundaries = pipeline.bucket_boundaries(20)
    xla = load_preset("tiny", batch_size=4, seed=9, xla=True)
    shapes = {(s.shape[1], t.shape[1]) for s, t, _ in pipeline.make_dataset(tmp_path, manifest, "train", xla)}
    assert all(s + 1 in boundaries and t + 1 in boundaries for s, t in shapes)
    # Two replicas: each input pipeline's slices, side by side, are the global batch.
    halves = [list(pipeline.make_dataset(tmp_path, manifest, "train", settings, replicas=2, pipeline=(i, 2)))
              for i in range(2)]
    whole = list(pipeline.make_dataset(tmp_path, manifest, "train", settings))
    for k, batch in enumerate(whole):
        for part in range(3):
            np.testing.assert_array_equal(np.concatenate([halves[0][k][part], halves[1][k][part]]), batch[part])


# ---- the model's parts --------------------------------------------------------------------------------

def test_attention_layer_config_round_trip():
    import keras

    from training.model import LuongAttention

    layer = LuongAttention(6, name="attention")
    query, values = np.random.default_rng(0).normal(size=(2, 3, 6)), np.random.default_rng(1).normal(size=(2, 4, 6))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    out = np.asarray(layer(query, values, mask))
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(layer))))
    assert isinstance(again, LuongAttention) and again.units == 6 and again.name == "attention"
    again(query, values, mask)
    again.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(again(query, values, mask)), out, atol=1e-6)
    # Padding positions of the values get no attention: changing them changes nothing.
    values[0, 3], values[1, 2:] = 100.0, -100.0
    np.testing.assert_allclose(np.asarray(layer(query, values, mask)), out, atol=1e-6)


@pytest.mark.parametrize("cell, layers, tied", [("lstm", 1, False), ("gru", 2, False), ("lstm", 1, True)])
def test_keras_model_save_and_load(tmp_path, cell, layers, tied):
    import keras

    from chatbot.config import ModelConfig
    from training.model import build_model

    config = ModelConfig(vocab_size=20, embedding_dim=4, encoder_units=3, layers=layers, cell=cell, dropout=0.1,
                         tie_embeddings=tied)
    model = build_model(config)
    names = {layer.name for layer in model.layers}
    assert {"source_ids", "target_in_ids", "embedding", "encoder_layer0", f"decoder_layer{layers - 1}",
            "attention", "output"} <= names
    assert ("output_projection" in names) == tied
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    inputs = {"source_ids": np.array([[5, 6, 7], [8, 0, 0]]), "target_in_ids": np.array([[2, 9], [2, 0]])}
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-6)
    assert {layer.name for layer in loaded.layers} == names


# ---- resuming ----------------------------------------------------------------------------------------

RESUMABLE = ("--data", PAIRS, "--preset", "tiny", "--epochs", "50", "--seed", "5", "--dropout", "0.1",
             "--checkpoint-every", "5")


@pytest.fixture(scope="module")
def seven_steps(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "bot"
    assert "stopped at step 7" in trained_here(*RESUMABLE, "--out", str(out), "--max-steps", "7")
    return out


def test_resume_equals_an_uninterrupted_run(seven_steps, tmp_path):
    resumed = trained_here(*RESUMABLE, "--out", str(seven_steps), "--max-steps", "14", "--resume")
    assert "resumed from step 7 (epoch 3, batch 1)" in resumed  # 3 batches an epoch: inside an epoch
    straight = tmp_path / "straight"
    trained_here(*RESUMABLE, "--out", str(straight), "--max-steps", "14")
    # Same data order, optimizer state and dropout masks: the same weights, and the same log.
    assert max_difference(seven_steps, straight) < 1e-5
    columns = ["epoch", "step", "train_loss"]
    assert [[r[c] for c in columns] for r in read_log(seven_steps)] == \
        [[r[c] for c in columns] for r in read_log(straight)]


def test_resume_with_a_different_config_is_refused(seven_steps):
    result = train("--out", str(seven_steps), "--resume", "--units", "32")
    assert result.returncode == 2
    assert "different config" in error_line(result) and "encoder_units" in error_line(result)
    result = train("--out", str(seven_steps), "--resume", "--preset", "small")
    assert result.returncode == 2 and "different config" in error_line(result)


def test_resume_without_a_run_is_refused(tmp_path):
    result = train("--out", str(tmp_path / "never"), "--resume")
    assert result.returncode == 2
    assert "no training run" in error_line(result)


def test_failed_checkpoint_write_keeps_the_latest_loadable(tmp_path, monkeypatch):
    from training import checkpoints

    class Variable:
        def __init__(self, value):
            self.value = np.asarray(value, np.float32)
            self.shape = self.value.shape

        def numpy(self):
            return self.value

        def assign(self, value):
            self.value = np.asarray(value, np.float32)

    class Model:
        variables = [Variable([1.0, 2.0]), Variable([[3.0]])]

    class Optimizer:
        variables = [Variable(0.5)]

    checkpoints.save(tmp_path, Model, Optimizer, {"step": 1, "epoch": 0})
    Model.variables[0].assign([9.0, 9.0])

    def write_half_then_die(file, **arrays):
        file.write(b"PK\x03\x04" + b"\x00" * 100)
        raise KeyboardInterrupt  # killed in the middle of the write

    monkeypatch.setattr(checkpoints.np, "savez", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(tmp_path, Model, Optimizer, {"step": 2, "epoch": 0})
    monkeypatch.undo()
    assert checkpoints.latest(tmp_path) == "ckpt-00000001"
    assert not list(tmp_path.glob("*.tmp"))
    assert checkpoints.restore(tmp_path, Model, Optimizer) == {"step": 1, "epoch": 0}
    np.testing.assert_array_equal(Model.variables[0].value, [1.0, 2.0])


def test_ctrl_c_saves_and_resume_continues(tmp_path):
    out = tmp_path / "bot"
    command = [sys.executable, "-m", "chatbot", "train", "--data", PAIRS, "--preset", "tiny", "--epochs", "1000",
               "--out", str(out)]
    with open(tmp_path / "stderr", "w+") as stderr_file:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr_file, text=True, cwd=ROOT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        try:
            for line in process.stdout:
                if line.startswith("epoch 2/"):
                    process.send_signal(signal.SIGINT)
                    break
            rest = process.stdout.read()  # what it printed after the interrupt
            process.wait(timeout=120)
        finally:
            process.kill()
            process.stdout.close()
        stderr_file.seek(0)
        stderr = stderr_file.read()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    messages = [line for line in rest.splitlines() if line.strip()]
    assert len(messages) == 1 and messages[0].startswith("interrupted at step "), rest
    step = int(messages[0].split()[3].rstrip(":"))
    assert step >= 6
    assert json.loads((run_dir(out) / "checkpoints" / "latest.json").read_text()) == \
        {"checkpoint": f"ckpt-{step:08d}"}
    assert bundle_io.load(out).training["steps"] == step
    resumed = trained_here("--out", str(out), "--resume", "--max-steps", str(step + 4))
    assert f"resumed from step {step} " in resumed
    assert bundle_io.load(out).training["steps"] == step + 4


# ---- early stopping, fine-tuning ----------------------------------------------------------------------

def test_early_stopping_keeps_the_best_weights(tmp_path):
    # Validation pairs whose replies belong to other contexts: the better the model learns the training pairs,
    # the worse it does on these, so validation loss soon turns up.
    contexts, replies = list(SMALL_TALK), list(SMALL_TALK.values())
    shifted = [(contexts[i], replies[(i + 1) % len(replies)]) for i in range(len(contexts))]
    valid = tmp_path / "valid.tsv"
    valid.write_text("".join(f"{c}\t{r}\n" for c, r in shifted))
    out = tmp_path / "bot"
    result = trained_here("--data", PAIRS, "--valid", str(valid), "--out", str(out), "--preset", "tiny",
                          "--epochs", "100", "--patience", "2", "--seed", "3")
    assert "early stop" in result
    rows = read_log(out)
    assert len(rows) < 100
    val = [float(r["val_loss"]) for r in rows]
    best = int(np.argmin(val))
    assert best == len(rows) - 3 and val[-1] > val[best] and val[-2] > val[best]  # patience 2
    b = bundle_io.load(out)
    assert b.training["val_loss"] == pytest.approx(val[best], abs=1e-5)
    assert b.training["steps"] == int(rows[best]["step"])
    # The bundle holds the weights that scored that loss.
    sources, targets, _, _ = batch(b, shifted)
    scores = score_replies(Engine(b.model, b.weights), sources, targets)
    assert -sum(scores) / sum(len(t) + 1 for t in targets) == pytest.approx(val[best], abs=1e-4)


def test_init_from_continues_a_trained_model(trained_bundle, tmp_path):
    out = tmp_path / "tuned"
    result = trained_here("--init-from", str(trained_bundle), "--data", PAIRS, "--out", str(out), "--preset",
                          "tiny", "--epochs", "1")
    assert f"initialised from {trained_bundle}" in result
    from_scratch = float(read_log(trained_bundle)[0]["train_loss"])
    fine_tuned = float(read_log(out)[0]["train_loss"])
    assert fine_tuned < 0.5 < from_scratch
    assert bundle_io.load(out).vocab.tokens == bundle_io.load(trained_bundle).vocab.tokens
    clash = train("--init-from", str(trained_bundle), "--data", PAIRS, "--out", str(tmp_path / "x"), "--units", "32")
    assert clash.returncode == 2 and "encoder_units 16" in error_line(clash)


def test_grow_vocab_keeps_the_trained_rows(trained_bundle, tmp_path):
    new_data = tmp_path / "new.tsv"
    new_data.write_text("Do you like zebras?\tI adore zebras and saxophones.\nHi, how are you?\tSplendid, thanks.\n")
    out = tmp_path / "grown"
    result = trained_here("--init-from", str(trained_bundle), "--grow-vocab", "--data", str(new_data), "--out",
                          str(out), "--preset", "tiny", "--epochs", "0")
    old, new = bundle_io.load(trained_bundle), bundle_io.load(out)
    n = len(old.vocab)
    assert f"vocabulary grown {n} -> {len(new.vocab)}" in result
    assert new.vocab.tokens[:n] == old.vocab.tokens
    assert {"zebras", "adore", "saxophones", "splendid"} <= set(new.vocab.tokens[n:])
    assert {"you", "how", "thanks"} <= set(old.vocab.tokens)
    assert new.model.vocab_size == len(new.vocab) > n
    np.testing.assert_array_equal(new.weights["embedding"][:n], old.weights["embedding"])
    np.testing.assert_array_equal(new.weights["output/kernel"][:, :n], old.weights["output/kernel"])
    np.testing.assert_array_equal(new.weights["output/bias"][:n], old.weights["output/bias"])
    for name in old.weights:
        if name not in ("embedding", "output/kernel", "output/bias"):
            np.testing.assert_array_equal(new.weights[name], old.weights[name])
    assert np.abs(new.weights["embedding"][n:]).max() > 0  # the new rows are initialised, not zero


def test_tied_embeddings_grow_and_preset_decoding(tmp_path):
    """The base preset ties the output layer to the embedding and names its own default decoding; growing
    the vocabulary of a tied model keeps the trained rows of both ends (they are one matrix)."""
    from training.settings import load_preset

    base = tmp_path / "base"
    trained_here("--data", PAIRS, "--out", str(base), "--preset", "base", "--units", "8", "--embedding-dim", "8",
                 "--epochs", "1")
    old = bundle_io.load(base)
    preset = load_preset("base")
    assert old.model.tie_embeddings and "output/kernel" not in old.weights
    assert preset.decoding and all(getattr(old.decoding, k) == v for k, v in preset.decoding.items())
    new_data = tmp_path / "new.tsv"
    new_data.write_text("Do you like zebras?\tI adore zebras.\n")
    grown = tmp_path / "grown"
    trained_here("--init-from", str(base), "--grow-vocab", "--data", str(new_data), "--out", str(grown),
                 "--preset", "base", "--units", "8", "--embedding-dim", "8", "--epochs", "0")
    new, n = bundle_io.load(grown), len(old.vocab)
    assert new.model.vocab_size > n
    for name in old.weights:
        rows = slice(0, n) if name in ("embedding", "output/bias") else slice(None)
        np.testing.assert_array_equal(new.weights[name][rows], old.weights[name])
    assert Chatbot.load(grown).reply("do you like zebras?")


def test_time_limit_stops_the_run_and_keeps_a_bundle(tmp_path):
    out = tmp_path / "bot"
    result = trained_here("--data", PAIRS, "--out", str(out), "--preset", "tiny", "--epochs", "500",
                          "--time-limit", "0.02")
    assert "stopped at step" in result and "--time-limit" in result
    steps = bundle_io.load(out).training["steps"]
    assert 0 < steps < 500 * 3
    assert Chatbot.load(out).reply("hello")


def test_cosine_schedule_with_mixed_precision(tmp_path):
    """bfloat16 arithmetic still learns the pairs, the bundle stays float32, and the cosine rate falls from the
    first epoch to about zero at the end of the run."""
    out = tmp_path / "bot"
    trained_here("--data", PAIRS, "--out", str(out), "--preset", "tiny", "--epochs", "60", "--learning-rate", "0.02",
                 "--lr-schedule", "cosine", "--mixed-precision", "--seed", "3")
    rows = read_log(out)
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates == sorted(rates, reverse=True) and rates[0] < 0.02 and rates[-1] < 0.02 * 1e-3
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0] / 10
    b = bundle_io.load(out)
    assert all(w.dtype == np.float32 for w in b.weights.values())
    bot = Chatbot(b, mode="greedy")
    assert sum(bot.reply(context) == reply for context, reply in SMALL_TALK.items()) >= 10


# ---- bad input -----------------------------------------------------------------------------------------

def test_malformed_corpus_names_file_and_line(tmp_path):
    data = tmp_path / "broken.tsv"
    data.write_text("hello\tthere\nhow are you\tfine\nno tab on this line\nbye\tsee you\n")
    result = train("--data", str(data), "--out", str(tmp_path / "bot"), "--preset", "tiny")
    assert result.returncode == 2
    assert f"{data}:3:" in error_line(result)
    assert not (tmp_path / "bot").exists()


def test_unknown_format_lists_the_supported_ones(tmp_path):
    result = train("--data", PAIRS, "--format", "yaml", "--out", str(tmp_path / "bot"))
    assert result.returncode == 2
    line = error_line(result)
    assert "yaml" in line and all(f in line for f in ("dailydialog", "cornell", "chatterbot", "tsv", "jsonl"))


@pytest.mark.parametrize("content", ["", "hi\t\n\tthere\n"])
def test_corpus_without_usable_pairs(tmp_path, content):
    data = tmp_path / "empty.tsv"
    data.write_text(content)
    result = train("--data", str(data), "--out", str(tmp_path / "bot"), "--preset", "tiny")
    assert result.returncode == 2
    assert "no usable pairs" in error_line(result)


def test_bad_options(tmp_path):
    result = train("--data", str(EXAMPLES / "small_talk.tsv"), "--out", str(tmp_path / "b"), "--grow-vocab")
    assert result.returncode == 2 and "--grow-vocab needs --init-from" in error_line(result)
    result = train("--data", PAIRS, "--out", str(tmp_path / "b"), "--preset", "huge")
    assert result.returncode == 2 and "tiny" in error_line(result) and "base" in error_line(result)
    (tmp_path / "empty.tsv").write_text("")
    result = train("--data", PAIRS, "--valid", str(tmp_path / "empty.tsv"), "--out", str(tmp_path / "b"),
                   "--preset", "tiny")
    assert result.returncode == 2 and "no usable pairs in" in error_line(result) and "empty.tsv" in error_line(result)
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    result = train("--data", PAIRS, "--out", str(precious), "--preset", "tiny")
    assert result.returncode == 2 and "not a model bundle" in error_line(result)
    assert (precious / "thesis.txt").read_text() == "years of work"
