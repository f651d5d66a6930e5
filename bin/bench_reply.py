#!/usr/bin/env python3
"""Reply speed and memory: prints figures (medians), not pass/fail. Compare ratios within one run; the machine is
shared and noisy.

  python bin/bench_reply.py                 # shipped default model + a base-size model with random weights
  python bin/bench_reply.py --no-tf         # skip the TensorFlow baselines
  python bin/bench_reply.py --model DIR     # another bundle instead of the shipped one

Measures: warm 20-token greedy reply; beam 5 relative to greedy; cold `chatbot reply "hi"` wall time and peak
RSS; batch replies/s from stdin over 1,000 lines; and, in the same run, two TensorFlow baselines for the warm
reply: the Keras example's per-step `predict`, and the whole decode loop in one `tf.function`.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatbot import bundle as bundle_io  # noqa: E402
from chatbot import decoding  # noqa: E402
from chatbot.config import DecodingConfig, ModelConfig  # noqa: E402
from chatbot.engine import Engine, weight_shapes  # noqa: E402
from chatbot.tokenizer import SPECIALS, Tokenizer, Vocabulary  # noqa: E402

TOKENS = 20
PROMPT = "how are you doing today ?"


def median_ms(fn, runs):
    fn()  # warm caches and lazy setup
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def base_bundle(path, tied=False):
    """A base-size model (vocab 8000, emb 256, BiLSTM 256, decoder 512) with random weights: speed only.
    tied: the output layer reuses the embedding through a 512->256 projection, as the base preset trains it."""
    vocab = Vocabulary(SPECIALS + tuple(f"w{i}" for i in range(8000 - len(SPECIALS))))
    config = ModelConfig(vocab_size=8000, embedding_dim=256, encoder_units=256, max_source_len=40,
                         tie_embeddings=tied)
    rng = np.random.default_rng(0)
    weights = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in weight_shapes(config).items()}
    bundle_io.save(bundle_io.Bundle(model=config, vocab=vocab, weights=weights), path)
    return bundle_io.load(path)


def warm_figures(b, runs):
    engine = Engine(b.model, b.weights)
    source = [b.vocab.encode(Tokenizer().tokenize(PROMPT))]
    forced = dict(min_length=TOKENS, max_length=TOKENS, n_best=1, rerank=0.0)
    greedy_cfg = DecodingConfig(mode="greedy", **forced)
    beam_cfg = DecodingConfig(mode="beam", beam=5, **forced)
    greedy = median_ms(lambda: decoding.decode(engine, source, greedy_cfg), runs)
    beam = median_ms(lambda: decoding.decode(engine, source, beam_cfg), runs)
    default_cfg = b.decoding
    default = median_ms(lambda: decoding.decode(engine, source, default_cfg), runs)
    return {"greedy_ms": greedy, "beam5_ms": beam, "beam_ratio": beam / greedy, "default_ms": default,
            "default_mode": f"{default_cfg.mode} (beam {default_cfg.beam}, rerank {default_cfg.rerank})"}


# Peak RSS survives exec, so a child forked from this (large) process would report our size. A small launcher
# process forks the measured command instead and reports the child's own wall time and peak RSS.
LAUNCHER = """import os, resource, subprocess, sys, time
t = time.perf_counter()
code = subprocess.call(sys.argv[1:])
sys.stderr.write("@@%f %d\\n" % (time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(cmd, stdin=None):
    """Wall seconds and peak RSS (MB) of one process running cmd, and its stdout."""
    p = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], input=stdin, capture_output=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if p.returncode:
        raise SystemExit(f"{cmd} failed with {p.returncode}: {p.stderr.decode()[-500:]}")
    wall, rss_kb = p.stderr.decode().rsplit("@@", 1)[1].split()
    return float(wall), int(rss_kb) / 1024, p.stdout


def cold_figures(model_dir, runs):
    cmd = [sys.executable, "-m", "chatbot", "reply", "--model", str(model_dir), "hi"]
    results = [run_measured(cmd)[:2] for _ in range(runs)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def batch_figures(model_dir, lines=1000, mode="greedy"):
    words = ["hi", "how are you", "what do you like to eat", "tell me a joke", "where do you live", "good night"]
    text = "\n".join(words[i % len(words)] + f" {i}" for i in range(lines)).encode() + b"\n"
    cmd = [sys.executable, "-m", "chatbot", "reply", "--model", str(model_dir), "--mode", mode]
    t0 = run_measured([sys.executable, "-c", "import chatbot.bot, chatbot.cli"])[0]
    wall, _, out = run_measured(cmd, stdin=text)
    assert out.count(b"\n") == lines
    return lines / wall, lines / max(wall - t0, 1e-9)


def tf_figures(b, runs):
    """The two TensorFlow baselines, with the bundle's weights loaded into the Keras layers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from training.export import assign_weights
    from training.model import build_model

    model = build_model(b.model)
    assign_weights(model, b.model, b.weights)
    source = np.array([b.vocab.encode(Tokenizer().tokenize(PROMPT))], dtype=np.int32)
    emb, dec = model.get_layer("embedding"), model.get_layer("decoder_layer0")
    att, out = model.get_layer("attention"), model.get_layer("output")
    enc_in = model.get_layer("encoder_layer0")
    # Encoder model and one-step decoder model, as in the Keras lstm_seq2seq example.
    src_in = keras.Input((None,), dtype="int32")
    seq, fh, fc, bh, bc = enc_in(emb(src_in))
    encoder = keras.Model(src_in, [seq, keras.ops.concatenate([fh, bh], -1), keras.ops.concatenate([fc, bc], -1)])
    prev_in = keras.Input((1,), dtype="int32")
    h_in, c_in = keras.Input((b.model.decoder_units,)), keras.Input((b.model.decoder_units,))
    values_in, mask_in = keras.Input((None, b.model.decoder_units)), keras.Input((None,), dtype="bool")
    y, h, c = dec(emb(prev_in), initial_state=[h_in, c_in])
    attended = att(y, values_in, mask_in)
    logits = out(emb(model.get_layer("output_projection")(attended), reverse=True)) if b.model.tie_embeddings \
        else out(attended)
    step_model = keras.Model([prev_in, h_in, c_in, values_in, mask_in], [logits, h, c])

    def per_step_predict():
        values, h, c = encoder.predict(source, verbose=0)
        mask = source != 0
        prev = np.array([[2]], dtype=np.int32)
        for _ in range(TOKENS):
            logits, h, c = step_model.predict([prev, h, c, values, mask], verbose=0)
            prev = np.array([[int(np.argmax(logits[0, -1, 5:])) + 5]], dtype=np.int32)

    @tf.function
    def whole_loop(src):
        values, h, c = encoder(src)
        mask = tf.not_equal(src, 0)
        prev = tf.constant([[2]], dtype=tf.int32)
        for _ in range(TOKENS):
            logits, h, c = step_model([prev, h, c, values, mask])
            prev = tf.cast(tf.argmax(logits[:, -1, 5:], axis=-1)[:, None] + 5, tf.int32)
        return prev

    return {"tf_predict_ms": median_ms(per_step_predict, max(3, runs // 10)),
            "tf_function_ms": median_ms(lambda: whole_loop(source).numpy(), runs)}


def cold_tf_figures(model_dir):
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from chatbot import bundle; from training.model import build_model; "
              "from training.export import assign_weights; import numpy as np\n"
              "b = bundle.load(%r); m = build_model(b.model); assign_weights(m, b.model, b.weights)\n"
              "m({'source_ids': np.array([[7, 8]], 'int32'), 'target_in_ids': np.array([[2]], 'int32')})\n"
              "print('hello')" % (str(ROOT), str(model_dir)))
    wall, rss, _ = run_measured([sys.executable, "-c", script])
    return wall, rss


def machine_speed():
    """How fast this (shared) machine is right now, in the two costs a reply is made of: NumPy's fixed cost per
    call, and a matrix-vector product as large as the default model's output layer. Figures from runs whose
    calibration differs are not comparable."""
    tiny = np.ones(8, np.float32)
    x, w = np.ones((1, 256), np.float32), np.ones((256, 2908), np.float32)
    call = median_ms(lambda: np.tanh(tiny), 2000) * 1000
    product = median_ms(lambda: x @ w, 2000) * 1000
    return f"machine now: one small NumPy call {call:.2f} us, a 256x2908 float32 matrix-vector product {product:.1f} us"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="bundle to measure (default: the shipped model)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow baselines")
    args = parser.parse_args()
    default = bundle_io.load(args.model)
    print(machine_speed())
    with tempfile.TemporaryDirectory() as tmp:
        base = base_bundle(Path(tmp) / "base")
        tied = base_bundle(Path(tmp) / "tied", tied=True)
        names = ("default", "base", "base tied")
        print(f"{'figure':52} " + " ".join(f"{name:>10}" for name in names))
        rows = {}
        for name, b, path in (("default", default, default.path), ("base", base, base.path),
                              ("base tied", tied, tied.path)):
            warm = warm_figures(b, args.runs)
            cold_s, cold_mb = cold_figures(path, 5)
            batch_wall, batch_decode = batch_figures(path)
            rows[name] = {**warm, "cold_s": cold_s, "cold_mb": cold_mb, "batch_rps": batch_wall,
                          "batch_decode_rps": batch_decode}
            if not args.no_tf:
                rows[name].update(tf_figures(b, args.runs))
                rows[name]["tf_cold_s"], rows[name]["tf_cold_mb"] = cold_tf_figures(path)
        labels = [("greedy_ms", f"warm {TOKENS}-token greedy reply (ms)"),
                  ("beam5_ms", f"warm {TOKENS}-token beam-5 reply (ms)"),
                  ("beam_ratio", "beam 5 / greedy"),
                  ("default_ms", "warm reply, model's default decoding (ms)"),
                  ("cold_s", "cold `chatbot reply hi` (s)"), ("cold_mb", "cold `chatbot reply hi` peak RSS (MB)"),
                  ("batch_rps", "stdin batch, 1,000 lines (replies/s, whole process)"),
                  ("batch_decode_rps", "stdin batch, less Python start-up (replies/s)"),
                  ("tf_predict_ms", "TF per-step predict, warm (ms)"),
                  ("tf_function_ms", "TF whole-loop tf.function, warm (ms)"),
                  ("tf_cold_s", "TF cold process, one reply (s)"), ("tf_cold_mb", "TF cold process peak RSS (MB)")]
        for key, label in labels:
            if key in rows["default"]:
                print(f"{label:52} " + " ".join(f"{rows[name][key]:10.2f}" for name in names))
        for name in names:
            r = rows[name]
            if "tf_predict_ms" in r:
                print(f"{name}: NumPy greedy is {r['tf_predict_ms'] / r['greedy_ms']:.0f}x faster than per-step "
                      f"predict and {r['tf_function_ms'] / r['greedy_ms']:.1f}x faster than tf.function")
        print(f"default decoding: {rows['default']['default_mode']}")


if __name__ == "__main__":
    main()
