"""The training loop: an XLA-compiled teacher-forcing step, validation perplexity, checkpoints, resume,
early stopping with the best weights kept, CSV and TensorBoard logs, and Ctrl-C that saves and exits."""

import csv
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import checkpoints, pipeline
from .distribute import make_strategy
from .export import export_bundle
from .model import build_model


def masked_loss(model, source, target_in, target_out, training):
    """Summed cross-entropy over real (non-padding) target tokens, and their count."""
    logits = model({"source_ids": source, "target_in_ids": target_in}, training=training)
    mask = tf.cast(tf.not_equal(target_out, 0), tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_out, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask), tf.reduce_sum(mask)


def make_steps(model, optimizer, strategy, settings):
    def replica_step(source, target_in, target_out):
        with tf.GradientTape() as tape:
            total, count = masked_loss(model, source, target_in, target_out, True)
            # Normalise by the tokens of the whole global batch, so summing replica gradients gives the mean.
            global_count = tf.distribute.get_replica_context().all_reduce("sum", count)
            loss = total / tf.maximum(global_count, 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, settings.clipnorm)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return total, count

    def eval_step(source, target_in, target_out):
        return masked_loss(model, source, target_in, target_out, False)

    if settings.strategy == "none":
        return (tf.function(replica_step, jit_compile=settings.xla, reduce_retracing=True),
                tf.function(eval_step, reduce_retracing=True))

    def distributed(fn):
        @tf.function(reduce_retracing=True)
        def step(source, target_in, target_out):
            total, count = strategy.run(fn, args=(source, target_in, target_out))
            return (strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))
        return step

    return distributed(replica_step), distributed(eval_step)


class Trainer:
    def __init__(self, run, log=print):
        self.run, self.settings, self.log = run, run.settings, log
        self.strategy = make_strategy(self.settings.strategy)
        keras.utils.set_random_seed(self.settings.seed)
        with self.strategy.scope():
            self.model = build_model(run.model_config)
            self.optimizer = keras.optimizers.Adam(self.settings.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
        run.initialise(self.model)
        self.train_step, self.eval_step = make_steps(self.model, self.optimizer, self.strategy, self.settings)
        self.progress = {"epoch": 0, "batch": 0, "step": 0, "best_val_loss": None, "bad_epochs": 0,
                         "learning_rate": self.settings.learning_rate, "train_seconds": 0.0}
        if run.resume:
            self.progress.update(checkpoints.restore(run.checkpoint_dir, self.model, self.optimizer))
            self.optimizer.learning_rate.assign(self.progress["learning_rate"])
            log(f"resumed from step {self.progress['step']} (epoch {self.progress['epoch'] + 1}, "
                f"batch {self.progress['batch']})")
        self.csv_path = run.dir / "log.csv"
        self.tensorboard = tf.summary.create_file_writer(str(run.dir / "tensorboard"))

    def _dataset(self, split, epoch, skip=0):
        ds = pipeline.make_dataset(self.run.cache_dir, self.run.manifest, split, self.settings, epoch=epoch,
                                   shuffle=split == "train", drop_remainder=False)
        if skip:
            ds = ds.skip(skip)
        return self.strategy.experimental_distribute_dataset(ds) if self.settings.strategy != "none" else ds

    def validate(self):
        if not self.run.manifest["valid"]["pairs"]:
            return None
        total = count = 0.0
        for batch in self._dataset("valid", 0):
            t, n = self.eval_step(*batch)
            total, count = total + float(t), count + float(n)
        return total / max(count, 1.0)

    def _checkpoint(self):
        with self.strategy.scope():
            checkpoints.save(self.run.checkpoint_dir, self.model, self.optimizer, self.progress)

    def fit(self):
        s, p = self.settings, self.progress
        per_epoch = max(1, self.run.manifest["train"]["pairs"] // s.batch_size)
        self.log(f"training {self.model.count_params():,} parameters on {self.run.manifest['train']['pairs']:,} "
                 f"pairs ({self.run.manifest['valid']['pairs']:,} held out), about {per_epoch} batches an epoch")
        try:
            while p["epoch"] < s.epochs and not self._step_limit_reached():
                stop = self._epoch(per_epoch)
                if stop:
                    break
        except KeyboardInterrupt:
            self._checkpoint()
            if not p.get("exported"):
                self._export()
            self.log(f"\ninterrupted at step {p['step']}: checkpoint saved in {self.run.checkpoint_dir}; "
                     f"the bundle in {self.run.out} holds the best weights so far; continue with --resume")
            return 130
        if self.run.manifest["valid"]["pairs"] == 0 or not p.get("exported"):
            self._export()  # without validation the last weights are the ones to keep
        self._checkpoint()
        self.log(f"bundle: {self.run.out}  (run directory: {self.run.dir})")
        return 0

    def _export(self):
        self.run.export(self.model, self.progress)
        self.progress["exported"] = True

    def _step_limit_reached(self):
        return bool(self.settings.max_steps) and self.progress["step"] >= self.settings.max_steps

    def _epoch(self, per_epoch):
        s, p = self.settings, self.progress
        bar = keras.utils.Progbar(per_epoch, stateful_metrics=["loss", "tok/s"]) if sys.stdout.isatty() else None
        total = count = 0.0
        started = time.perf_counter()
        for source, target_in, target_out in self._dataset("train", p["epoch"], skip=p["batch"]):
            t, n = self.train_step(source, target_in, target_out)
            t, n = float(t), float(n)
            if not math.isfinite(t):
                raise FloatingPointError(f"loss became {t} at step {p['step']}; try a lower --learning-rate")
            total, count = total + t, count + n
            p["step"] += 1
            p["batch"] += 1
            elapsed = time.perf_counter() - started
            if bar:
                bar.update(min(p["batch"], per_epoch), [("loss", total / count), ("tok/s", count / elapsed)])
            if p["step"] % s.checkpoint_every == 0:
                self._checkpoint()
            if self._step_limit_reached():
                break
        elapsed = time.perf_counter() - started
        p["train_seconds"] += elapsed
        finished_epoch = not self._step_limit_reached() or p["batch"] >= per_epoch
        train_loss = total / max(count, 1.0)
        val_loss = self.validate()
        if finished_epoch:
            p["epoch"] += 1
            p["batch"] = 0
        p["last_train_loss"], p["last_val_loss"] = train_loss, val_loss
        p["tokens_per_second"] = count / elapsed if elapsed else 0.0
        if val_loss is None:
            pass
        elif p["best_val_loss"] is None or val_loss < p["best_val_loss"]:
            p["best_val_loss"], p["bad_epochs"] = val_loss, 0
            self._export()
        else:
            p["bad_epochs"] += 1
            p["learning_rate"] *= s.lr_decay  # halve the step size when validation stalls
            self.optimizer.learning_rate.assign(p["learning_rate"])
        self._log_epoch(train_loss, val_loss, count / elapsed if elapsed else 0.0)
        self._checkpoint()
        if s.patience and p["bad_epochs"] >= s.patience:
            self.log(f"early stop: validation loss has not improved for {s.patience} epoch(s)")
            return True
        return False

    def _log_epoch(self, train_loss, val_loss, tokens_per_s):
        p = self.progress
        val = f"  val loss {val_loss:.3f}  val ppl {math.exp(min(val_loss, 50)):.1f}" if val_loss is not None else ""
        self.log(f"epoch {p['epoch']}/{self.settings.epochs}  step {p['step']}  train loss {train_loss:.3f}  "
                 f"ppl {math.exp(min(train_loss, 50)):.1f}{val}  {tokens_per_s:,.0f} tok/s  lr {p['learning_rate']:.2g}")
        row = {"epoch": p["epoch"], "step": p["step"], "train_loss": round(train_loss, 5),
               "train_perplexity": round(math.exp(min(train_loss, 50)), 3),
               "val_loss": "" if val_loss is None else round(val_loss, 5),
               "val_perplexity": "" if val_loss is None else round(math.exp(min(val_loss, 50)), 3),
               "learning_rate": p["learning_rate"], "tokens_per_second": round(tokens_per_s, 1),
               "train_seconds": round(p["train_seconds"], 1)}
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        with self.tensorboard.as_default(step=p["step"]):
            tf.summary.scalar("loss/train", train_loss)
            tf.summary.scalar("perplexity/train", math.exp(min(train_loss, 50)))
            if val_loss is not None:
                tf.summary.scalar("loss/validation", val_loss)
                tf.summary.scalar("perplexity/validation", math.exp(min(val_loss, 50)))
            tf.summary.scalar("tokens_per_second", tokens_per_s)
        self.tensorboard.flush()


def valid_perplexity(progress):
    loss = progress.get("best_val_loss")
    return None if loss is None else float(np.exp(min(loss, 50)))


def save_keras_model(model, path):
    """The Keras model for further training, written beside the checkpoints; atomic like everything else."""
    path = Path(path)
    tmp = path.with_name("tmp-" + path.name)
    model.save(tmp)
    tmp.replace(path)


__all__ = ["Trainer", "export_bundle", "save_keras_model", "valid_perplexity"]
