#!/usr/bin/env python
"""Training figures (not a test): throughput and input-pipeline memory.

Throughput, in real (non-padding) target tokens per second, measured over --steps steps after a warm-up, for
  (a) our step: length-sorted batches from the shard cache (pipeline._batches), the custom teacher-forcing step as
      `chatbot train` runs it (XLA off by default: on CPU it is slower), and with --compare-xla (a') the same step
      with XLA switched (it compiles every shape first, a few minutes);
  (b) in the same run, plain Keras `model.fit` (default compile settings) on the same model (the preset's
      precision), over fixed-length padded batches, and (b') the same in float32 when the preset uses bfloat16.
Memory: the peak resident size (ru_maxrss) of a subprocess that builds the shard cache and streams one pass of
batches, for the corpus and for the corpus repeated 10 times (written to a temporary folder).

    python bin/bench_training.py                        # base preset, DailyDialog train (else chatterbot)
    python bin/bench_training.py --preset small --steps 30 --data data/examples/chatterbot
"""

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DAILYDIALOG = ROOT.parent / "shared" / "corpora" / "dailydialog" / "train" / "dialogues_train.txt.gz"


def default_data():
    if DAILYDIALOG.is_file():
        return str(DAILYDIALOG)
    from chatbot.corpora import default_corpus_path

    return default_corpus_path()


def prepare(data, fmt, settings, workdir):
    """Read the corpus into the shard cache, as `chatbot train` does. Returns (manifest, vocabulary)."""
    from chatbot.tokenizer import Tokenizer
    from training import pipeline

    _, counts = pipeline.tokenize_corpus(data, fmt, Tokenizer(), settings, workdir)
    vocab = pipeline.build_vocab(counts, settings)
    return pipeline.write_shards(workdir, vocab), vocab


def _model(settings, vocab_size):
    """The model as the trainer builds it: the preset's size and precision."""
    import keras

    from training.model import build_model

    keras.utils.set_random_seed(settings.seed)
    return build_model(settings.model_config(vocab_size), use_cudnn=False if settings.xla else "auto",
                       mixed_precision=settings.mixed_precision)


def sorted_throughput(settings, workdir, manifest, vocab_size, steps, warmup):
    import keras
    import numpy as np
    import tensorflow as tf

    from training import pipeline
    from training.train import make_steps

    model = _model(settings, vocab_size)
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    optimizer.build(model.trainable_variables)
    train_step, _ = make_steps(model, optimizer, tf.distribute.get_strategy(), settings)
    started = time.perf_counter()
    if settings.xla:  # XLA compiles once per shape; compile them all before the clock starts.
        widths = [b - 1 for b in pipeline.bucket_boundaries(max(settings.max_source_len, settings.max_target_len))]
        for s_width in widths:
            for t_width in widths:
                source, target = np.full((settings.batch_size, s_width), 5, np.int32), \
                    np.full((settings.batch_size, t_width), 5, np.int32)
                train_step(source, target, target)
    batches = iter(pipeline.make_dataset(workdir, manifest, "train", settings, epochs=(0, 10**6)))
    for _ in range(warmup):
        float(train_step(*next(batches))[1])
    compile_s = time.perf_counter() - started
    tokens, started = 0.0, time.perf_counter()
    for _ in range(steps):
        tokens += float(train_step(*next(batches))[1])
    return tokens / (time.perf_counter() - started), compile_s


def fit_throughput(settings, workdir, manifest, vocab_size, steps, warmup, jit_compile="auto"):
    import keras
    import numpy as np
    import tensorflow as tf

    from training import pipeline

    S, T, B = settings.max_source_len, settings.max_target_len, settings.batch_size
    source, target_in, target_out = [], [], []
    for chunk in pipeline._batches(workdir, manifest["train"]["shards"], settings, 0, True):
        for rows, width, out in zip(chunk, (S, T, T), (source, target_in, target_out)):
            padded = np.zeros((len(rows), width), np.int32)
            padded[:, :min(width, rows.shape[1])] = rows[:, :width]
            out.append(padded)
        if sum(len(x) for x in source) >= (steps + warmup) * B:
            break
    source, target_in, target_out = (np.concatenate(x) for x in (source, target_in, target_out))
    need = (steps + warmup) * B
    reps = -(-need // len(source))
    source, target_in, target_out = (np.tile(x, (reps, 1))[:need] for x in (source, target_in, target_out))
    ds = tf.data.Dataset.from_tensor_slices(({"source_ids": source, "target_in_ids": target_in}, target_out))
    ds = ds.batch(B, drop_remainder=True)
    model = _model(settings, vocab_size)
    # Plain: Keras' defaults, jit_compile="auto" included (XLA where Keras thinks it pays).
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate, global_clipnorm=settings.clipnorm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                  jit_compile=jit_compile)
    started = time.perf_counter()
    model.fit(ds.take(warmup), epochs=1, verbose=0)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(ds.skip(warmup), epochs=1, verbose=0)
    elapsed = time.perf_counter() - started
    return float((target_out[warmup * B:] != 0).sum()) / elapsed, compile_s, model.jit_compile


def memory_child(data, fmt, preset):
    """Build the cache and stream one pass of batches; print peak memory as JSON."""
    import tensorflow as tf  # noqa: F401  (counted in the baseline)

    from training import pipeline
    from training.settings import load_preset

    settings = load_preset(preset)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as workdir:
        started = time.perf_counter()
        manifest, _ = prepare(data, fmt, settings, workdir)
        cache_s = time.perf_counter() - started
        batches = tokens = 0
        for _, _, target_out in pipeline.make_dataset(workdir, manifest, "train", settings, shuffle=True):
            batches += 1
            tokens += int((target_out.numpy() != 0).sum())
        print(json.dumps({"pairs": manifest["train"]["pairs"] + manifest["valid"]["pairs"], "batches": batches,
                          "target_tokens": tokens, "cache_s": round(cache_s, 1),
                          "stream_s": round(time.perf_counter() - started - cache_s, 1),
                          "baseline_mb": round(baseline), "peak_mb":
                          round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def repeated_corpus(data, times, folder, distinct=False):
    """`data` repeated `times` times, in `folder` (a file stays a file, a folder of files a folder). With
    `distinct`, every utterance of copy k ends in the word "copyk", so that no pair is a duplicate of another
    (DailyDialog and tsv files only)."""
    import gzip

    data = Path(data)
    if data.is_dir():
        out = Path(folder) / data.name
        out.mkdir()
        for path in sorted(p for p in data.iterdir() if p.is_file()):
            for k in range(times):
                shutil.copyfile(path, out / f"copy{k}_{path.name}")
        return out
    name = data.name[:-3] if data.name.endswith(".gz") else data.name
    opener = gzip.open if data.name.endswith(".gz") else open
    with opener(data, "rb") as f:
        text = f.read()
    if not text.endswith(b"\n"):
        text += b"\n"
    out = Path(folder) / name
    with open(out, "wb") as f:
        for k in range(times):
            copy = text
            if distinct and name.startswith("dialogues_"):
                copy = text.replace(b"__eou__", f"copy{k} __eou__".encode())
            elif distinct and name.endswith(".tsv"):
                copy = text.replace(b"\t", f" copy{k}\t".encode()).replace(b"\n", f" copy{k}\n".encode())
            elif distinct:
                raise SystemExit("--distinct works with DailyDialog and tsv files only")
            f.write(copy + (b"\n" if name.endswith(".txt") and not name.startswith("dialogues_") else b""))
    return out


def measure_memory(data, fmt, preset):
    command = [sys.executable, __file__, "--memory-child", str(data), "--format", fmt, "--preset", preset]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode:
        raise SystemExit(f"memory run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--data", help="corpus (default: DailyDialog train if ../shared/corpora has it, "
                                       "else chatterbot-corpus English)")
    parser.add_argument("--format", default="auto")
    parser.add_argument("--steps", type=int, default=50, help="timed steps for each of (a) and (b)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after compiling")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory figures")
    parser.add_argument("--distinct", action="store_true",
                        help="make the 10 copies of the corpus distinct (each pair new, not a duplicate)")
    parser.add_argument("--compare-xla", action="store_true", help="also time our step with XLA switched")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput figures")
    parser.add_argument("--memory-child", metavar="DATA", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.format, args.preset)

    from training.settings import load_preset

    data = args.data or default_data()
    settings = load_preset(args.preset, batch_size=args.batch_size, dropout=0.0)
    print(f"preset {args.preset}: {settings.encoder_units} units, batch {settings.batch_size}, "
          f"max lengths {settings.max_source_len}/{settings.max_target_len}; corpus {data}")
    # Memory first: a child started by a process already grown big would inherit its ru_maxrss.
    if not args.no_memory:
        with tempfile.TemporaryDirectory(prefix="bench-10x-") as folder:
            once = measure_memory(data, args.format, args.preset)
            tenfold = measure_memory(repeated_corpus(data, 10, folder, args.distinct), args.format, args.preset)
        for label, m in (("corpus", once), ("corpus x10", tenfold)):
            print(f"memory, {label}: peak {m['peak_mb']:,} MB (after importing TensorFlow: {m['baseline_mb']:,} MB); "
                  f"{m['pairs']:,} pairs kept, {m['batches']:,} batches streamed, cache {m['cache_s']} s, "
                  f"stream {m['stream_s']} s")
        print(f"peak growth for 10x the corpus: {tenfold['peak_mb'] - once['peak_mb']:+,} MB"
              + (" (distinct copies: 10x the pairs in the cache and in the stream)" if args.distinct else
                 " (identical repeats are dropped as duplicates, so the x10 cache holds the same pairs; the "
                 "reader still reads all of it; --distinct makes every copy new)"))

    if not args.no_throughput:
        import tensorflow as tf

        print(f"devices: {', '.join(d.name for d in tf.config.list_logical_devices())}")
        with tempfile.TemporaryDirectory(prefix="bench-train-") as workdir:
            started = time.perf_counter()
            manifest, vocab = prepare(data, args.format, settings, workdir)
            print(f"cache: {manifest['train']['pairs']:,} training pairs, vocabulary {len(vocab):,} "
                  f"({time.perf_counter() - started:.0f} s)")
            ours, ours_compile = sorted_throughput(settings, workdir, manifest, len(vocab), args.steps, args.warmup)
            print(f"(a) length-sorted batches, custom step as `chatbot train` runs it "
                  f"(XLA {'on' if settings.xla else 'off'}): {ours:,.0f} real target tokens/s over {args.steps} steps "
                  f"(compile + warm-up {ours_compile:.0f} s)")
            if args.compare_xla:
                other = dataclasses.replace(settings, xla=not settings.xla)
                alt, _ = sorted_throughput(other, workdir, manifest, len(vocab), args.steps, args.warmup)
                print(f"(a') the same step with XLA {'on' if other.xla else 'off'}: {alt:,.0f} real target tokens/s")
            fit, fit_compile, jit = fit_throughput(settings, workdir, manifest, len(vocab), args.steps, args.warmup)
            precision = "bfloat16 mixed precision, as the preset" if settings.mixed_precision else "float32"
            print(f"(b) plain model.fit of the same model ({precision}), fixed-length padded batches (jit_compile "
                  f"resolved to {jit}): {fit:,.0f} real target tokens/s over {args.steps} steps (compile + warm-up "
                  f"{fit_compile:.0f} s)")
            print(f"ratio (a)/(b): {ours / fit:.2f}x")
            if settings.mixed_precision:  # and against Keras' out-of-the-box float32
                plain = dataclasses.replace(settings, mixed_precision=False)
                fp32, _, _ = fit_throughput(plain, workdir, manifest, len(vocab), args.steps, args.warmup)
                print(f"(b') the same model.fit in float32: {fp32:,.0f} real target tokens/s; "
                      f"ratio (a)/(b'): {ours / fp32:.2f}x")


if __name__ == "__main__":
    main()
