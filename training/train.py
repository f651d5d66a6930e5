"""The training loop: an XLA-compiled teacher-forcing step, validation perplexity, checkpoints, resume,
early stopping with the best weights kept, CSV and TensorBoard logs, and Ctrl-C that saves and exits."""

import json
import math
import signal
import sys
import time

import keras
import tensorflow as tf

from . import checkpoints, pipeline
from .distribute import is_chief, make_strategy, worker_index
from .export import weights_digest
from .logs import EpochLog
from .model import build_model

BATCH_SPEC = [tf.TensorSpec([None, None], tf.int32)] * 3
SUM = tf.distribute.ReduceOp.SUM


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; raised between steps, so the checkpoint is of a whole step."""


def masked_loss(model, source, target_in, target_out, training):
    """Summed cross-entropy over real (non-padding) target tokens, and their count."""
    logits = model({"source_ids": source, "target_in_ids": target_in}, training=training)
    mask = tf.cast(tf.not_equal(target_out, 0), tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_out, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask), tf.reduce_sum(mask)


def _dense(grads):
    """The embedding's gradient arrives as IndexedSlices, one slice per token occurrence. Summed into a dense
    tensor, its global norm and Adam's squared-gradient average are those of the real gradient (slices of a
    repeated token would otherwise be squared one by one)."""
    return [tf.convert_to_tensor(g) for g in grads]


def make_steps(model, optimizer, strategy, settings, element_spec=None):
    """(train_step, eval_step): each takes a batch and returns (summed loss, real target tokens) for it.

    The loss is the mean over the real tokens of the whole (global) batch; gradients are clipped by their
    global norm after they are summed over replicas, so every strategy takes the same step. element_spec (a
    distributed dataset's) lets the distributed steps be traced once for every batch shape."""
    variables = model.trainable_variables

    def eval_step(source, target_in, target_out):
        return masked_loss(model, source, target_in, target_out, False)

    if settings.strategy == "none":
        def train_step(source, target_in, target_out):
            with tf.GradientTape() as tape:
                total, count = masked_loss(model, source, target_in, target_out, True)
                loss = total / tf.maximum(count, 1.0)
            grads, _ = tf.clip_by_global_norm(_dense(tape.gradient(loss, variables)), settings.clipnorm)
            optimizer.apply_gradients(zip(grads, variables))
            return total, count

        return (tf.function(train_step, jit_compile=settings.xla, input_signature=BATCH_SPEC),
                tf.function(eval_step, input_signature=BATCH_SPEC))

    replicas = strategy.num_replicas_in_sync

    @tf.function(jit_compile=settings.xla, input_signature=BATCH_SPEC + [tf.TensorSpec([], tf.float32)])
    def gradients(source, target_in, target_out, normaliser):
        with tf.GradientTape() as tape:
            total, count = masked_loss(model, source, target_in, target_out, True)
            loss = total / normaliser
        return _dense(tape.gradient(loss, variables)), total, count

    def replica_step(source, target_in, target_out):
        context = tf.distribute.get_replica_context()
        tokens = tf.reduce_sum(tf.cast(tf.not_equal(target_out, 0), tf.float32))
        normaliser = tf.maximum(context.all_reduce(SUM, tokens), 1.0)
        grads, total, count = gradients(source, target_in, target_out, normaliser)
        grads, _ = tf.clip_by_global_norm(context.all_reduce(SUM, grads), settings.clipnorm)
        # The optimizer sums the replicas' gradients once more: hand it each replica's share of the total.
        optimizer.apply_gradients(zip([g / replicas for g in grads], variables))
        return total, count

    def distributed(fn):
        def step(source, target_in, target_out):
            total, count = strategy.run(fn, args=(source, target_in, target_out))
            return strategy.reduce(SUM, total, axis=None), strategy.reduce(SUM, count, axis=None)
        if element_spec is not None:
            return tf.function(step, input_signature=list(element_spec))
        return tf.function(step, reduce_retracing=True)

    return distributed(replica_step), distributed(eval_step)


class Trainer:
    def __init__(self, run, log=print):
        self.run, self.settings, self.log = run, run.settings, log
        s = self.settings
        self.strategy = make_strategy(s.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        self.chief = is_chief(s.strategy)
        keras.utils.set_random_seed(s.seed)
        with self.strategy.scope():
            # XLA compiles the whole step, so no cuDNN kernels on a GPU; --no-xla gives them back.
            self.model = build_model(run.model_config, use_cudnn=False if s.xla else "auto",
                                     mixed_precision=s.mixed_precision)
            self.optimizer = keras.optimizers.Adam(s.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
        run.initialise(self.model)
        spec = None if s.strategy == "none" else self._dataset("train", (0, 1)).element_spec
        self.train_step, self.eval_step = make_steps(self.model, self.optimizer, self.strategy, s, spec)
        self.progress = {"epoch": 0, "batch": 0, "step": 0, "epoch_loss": 0.0, "epoch_tokens": 0.0,
                         "best_val_loss": None, "bad_epochs": 0, "learning_rate": s.learning_rate,
                         "train_seconds": 0.0, "elapsed_seconds": 0.0}
        if run.resume:
            self.progress.update(checkpoints.restore(run.checkpoint_dir, self.model, self.optimizer))
            self.optimizer.learning_rate.assign(self.progress["learning_rate"])
            log(f"resumed from step {self.progress['step']} (epoch {self.progress['epoch'] + 1}, "
                f"batch {self.progress['batch']})")
        self.progress.setdefault("elapsed_seconds", self.progress["train_seconds"])  # older checkpoints
        self._clock = (time.perf_counter(), self.progress["elapsed_seconds"])  # restarted when fit() begins
        self.per_epoch = pipeline.batches_per_epoch(run.cache_dir, run.manifest, "train", s)
        self.valid_batches = pipeline.batches_per_epoch(run.cache_dir, run.manifest, "valid", s) \
            if run.manifest["valid"]["pairs"] else 0
        self._batches = self._valid = None  # iterators, each made once: a new one costs a tenth of a second
        self.logs = EpochLog(run.dir, s.epochs, log)
        self.stop_signal = None
        self._saved = None

    def _dataset(self, split, epochs, skip=0):
        train = split == "train"

        def build(index=0, count=1):
            return pipeline.make_dataset(self.run.cache_dir, self.run.manifest, split, self.settings, epochs,
                                         shuffle=train, skip=skip, replicas=self.replicas, pipeline=(index, count))

        if self.settings.strategy == "none":
            return build()
        return self.strategy.distribute_datasets_from_function(
            lambda context: build(context.input_pipeline_id, context.num_input_pipelines))

    def _next_batch(self):
        """The training batches of every remaining epoch come from one iterator, which knows where a resumed
        run left off."""
        if self._batches is None:
            p = self.progress
            self._batches = iter(self._dataset("train", (p["epoch"], self.settings.epochs), skip=p["batch"]))
        return next(self._batches)

    def validate(self):
        if not self.valid_batches:
            return None
        if self._valid is None:  # the validation set, unshuffled, over and over
            self._valid = iter(self._dataset("valid", (0, 2**62)))
        total = count = 0.0
        for _ in range(self.valid_batches):
            t, n = self.eval_step(*next(self._valid))
            total, count = total + float(t), count + float(n)
        return total / max(count, 1.0)

    # -- the loop ---------------------------------------------------------------------------------------------
    def fit(self):
        s, p = self.settings, self.progress
        manifest = self.run.manifest
        self.log(f"training {self.model.count_params():,} parameters on {manifest['train']['pairs']:,} pairs "
                 f"({manifest['valid']['pairs']:,} held out), {self.per_epoch} batches an epoch"
                 + (f", {self.replicas} replicas" if self.replicas > 1 else ""))
        handlers = self._catch_signals()
        interrupted = False
        self._clock = (time.perf_counter(), p["elapsed_seconds"])
        try:
            while p["epoch"] < s.epochs and not self._step_limit_reached():
                if self.stop_signal is not None:
                    raise Interrupted
                if s.patience and p["bad_epochs"] >= s.patience:  # a resumed run that had stopped early
                    break
                if self._epoch():
                    break
        except Interrupted:
            interrupted = True
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
        self._finish()
        if interrupted:
            kept = "the best weights so far" if self.valid_batches and s.keep == "best" else "the weights so far"
            self.log(f"interrupted at step {p['step']}: checkpoint saved in {self.run.checkpoint_dir}"
                     + (f"; the bundle in {self.run.out} holds {kept}" if self.chief else "")
                     + "; continue with --resume")
            return 130
        self.log(f"bundle: {self.run.out}  (run directory: {self.run.dir})" if self.chief
                 else f"worker {worker_index(s.strategy)} done (run directory: {self.run.dir})")
        return 0

    def _catch_signals(self):
        """The first Ctrl-C (or SIGTERM) asks to stop after the current step; a second one stops at once."""
        def request_stop(number, frame):
            if self.stop_signal is not None:
                raise KeyboardInterrupt
            self.stop_signal = number

        handlers = {}
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[number] = signal.signal(number, request_stop)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return handlers

    def _elapsed(self):
        """Seconds of training so far, validation included, over this process and the runs it resumes."""
        started, before = self._clock
        return before + time.perf_counter() - started

    def _budget_used(self):
        """The share of the run's budget spent: the largest of steps over --max-steps, steps over the epochs'
        steps, and time over --time-limit."""
        s, p = self.settings, self.progress
        used = p["step"] / max(s.epochs * self.per_epoch, 1)
        if s.max_steps:
            used = max(used, p["step"] / s.max_steps)
        if s.time_limit:
            used = max(used, self._elapsed() / (60 * s.time_limit))
        return min(used, 1.0)

    def _step_limit_reached(self):
        """--max-steps or --time-limit has been reached."""
        s = self.settings
        if s.time_limit and self._elapsed() >= 60 * s.time_limit:
            return True
        return bool(s.max_steps) and self.progress["step"] >= s.max_steps

    def _set_learning_rate(self):
        """The cosine schedule's rate for the next step."""
        rate = 0.5 * self.settings.learning_rate * (1 + math.cos(math.pi * self._budget_used()))
        self.progress["learning_rate"] = rate
        self.optimizer.learning_rate.assign(rate)

    def _epoch(self):
        """One pass over the training data (or its remainder, after a resume). True means stop training."""
        s, p = self.settings, self.progress
        bar = keras.utils.Progbar(self.per_epoch, stateful_metrics=["loss", "tok/s"]) \
            if sys.stdout.isatty() and self.chief else None
        started, tokens_before = time.perf_counter(), p["epoch_tokens"]
        exhausted = True
        cosine = s.lr_schedule == "cosine"
        while p["batch"] < self.per_epoch:
            if cosine:
                self._set_learning_rate()
            t, n = self.train_step(*self._next_batch())
            t, n = float(t), float(n)
            if not math.isfinite(t):
                raise FloatingPointError(f"loss became {t} at step {p['step'] + 1}; try a lower --learning-rate")
            p["epoch_loss"] += t
            p["epoch_tokens"] += n
            p["step"] += 1
            p["batch"] += 1
            if bar:
                elapsed = time.perf_counter() - started
                bar.update(min(p["batch"], self.per_epoch), [("loss", p["epoch_loss"] / max(p["epoch_tokens"], 1)),
                                                             ("tok/s", (p["epoch_tokens"] - tokens_before) / elapsed)])
            if p["step"] % s.checkpoint_every == 0:
                self._checkpoint()
            if self.stop_signal is not None:
                p["train_seconds"] += time.perf_counter() - started
                raise Interrupted
            if self._step_limit_reached() and p["batch"] < self.per_epoch:
                exhausted = False  # --max-steps ends the run inside this epoch
                break
        elapsed = time.perf_counter() - started
        p["train_seconds"] += elapsed
        rate = (p["epoch_tokens"] - tokens_before) / elapsed if elapsed else 0.0
        p["tokens_per_second"] = rate
        if not exhausted:  # a --resume goes on from here
            val_loss = self.validate()
            if val_loss is not None and (p["best_val_loss"] is None or val_loss < p["best_val_loss"]):
                p["best_val_loss"] = val_loss
                self._export()
            self.log(f"stopped at step {p['step']} (--max-steps or --time-limit), {p['batch']}/{self.per_epoch} "
                     f"batches into epoch {p['epoch'] + 1}"
                     + (f", val loss {val_loss:.3f}" if val_loss is not None else ""))
            return True
        train_loss = p["epoch_loss"] / max(p["epoch_tokens"], 1.0)
        val_loss = self.validate()
        p["epoch"] += 1
        p.update(batch=0, epoch_loss=0.0, epoch_tokens=0.0, last_train_loss=train_loss, last_val_loss=val_loss)
        if val_loss is None:
            pass
        elif p["best_val_loss"] is None or val_loss < p["best_val_loss"]:
            p["best_val_loss"], p["bad_epochs"] = val_loss, 0
            if s.keep == "best":
                self._export()
        else:
            p["bad_epochs"] += 1
            if s.lr_schedule == "plateau":  # a smaller step size when validation stalls
                p["learning_rate"] *= s.lr_decay
                self.optimizer.learning_rate.assign(p["learning_rate"])
        self.logs.write(p, train_loss, val_loss, rate)
        self._checkpoint()
        if s.patience and p["bad_epochs"] >= s.patience:
            kept = f"the best (val loss {p['best_val_loss']:.3f})" if s.keep == "best" else "the last weights"
            self.log(f"early stop: validation loss has not improved for {s.patience} epoch(s); "
                     f"the bundle keeps {kept}")
            return True
        return False

    # -- saving -----------------------------------------------------------------------------------------------
    def _checkpoint(self):
        self.progress["elapsed_seconds"] = self._elapsed()
        state = json.dumps({k: v for k, v in self.progress.items() if k != "elapsed_seconds"}, sort_keys=True)
        if state != self._saved:  # nothing new since the last save at this step
            checkpoints.save(self.run.checkpoint_dir, self.model, self.optimizer, self.progress)
            self._saved = state

    def _export(self):
        self.run.export(self.model, self.progress)
        self.progress["exported_step"] = self.progress["step"]

    def _finish(self):
        """The last checkpoint, the bundle (the best weights when there is validation data, else the last
        ones) and the Keras model beside the checkpoints."""
        p = self.progress
        self._checkpoint()
        if self.settings.strategy == "multi-worker":
            self.log(f"worker {worker_index('multi-worker')}: weights sha256 "
                     f"{weights_digest(self.model, self.run.model_config)} at step {p['step']}")
        if self.settings.keep == "last" or not self.valid_batches or p["best_val_loss"] is None:
            self._export()
        self.run.save_keras_model(self.model)
        self.logs.close()


__all__ = ["Trainer", "make_steps", "masked_loss"]
