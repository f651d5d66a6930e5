"""Per-epoch figures: a line on the console, a row in log.csv, and TensorBoard scalars (loss and perplexity for
training and validation, learning rate, throughput)."""

import csv
import math

import tensorflow as tf

COLUMNS = ("epoch", "step", "train_loss", "train_perplexity", "val_loss", "val_perplexity", "learning_rate",
           "tokens_per_second", "train_seconds")


def perplexity(loss):
    return math.exp(min(loss, 50))


class EpochLog:
    def __init__(self, run_dir, epochs, log=print):
        self.csv_path = run_dir / "log.csv"
        self.epochs, self.log = epochs, log
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))

    def write(self, progress, train_loss, val_loss, tokens_per_s):
        p = progress
        val = f"  val loss {val_loss:.3f}  val ppl {perplexity(val_loss):.1f}" if val_loss is not None else ""
        self.log(f"epoch {p['epoch']}/{self.epochs}  step {p['step']}  train loss {train_loss:.3f}  "
                 f"ppl {perplexity(train_loss):.1f}{val}  {tokens_per_s:,.0f} tok/s  lr {p['learning_rate']:.2g}")
        row = [p["epoch"], p["step"], round(train_loss, 5), round(perplexity(train_loss), 3),
               "" if val_loss is None else round(val_loss, 5),
               "" if val_loss is None else round(perplexity(val_loss), 3),
               p["learning_rate"], round(tokens_per_s, 1), round(p["train_seconds"], 1)]
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(COLUMNS)
            writer.writerow(row)
        with self.writer.as_default(step=p["step"]):
            tf.summary.scalar("loss/train", train_loss)
            tf.summary.scalar("perplexity/train", perplexity(train_loss))
            if val_loss is not None:
                tf.summary.scalar("loss/validation", val_loss)
                tf.summary.scalar("perplexity/validation", perplexity(val_loss))
            tf.summary.scalar("learning_rate", p["learning_rate"])
            tf.summary.scalar("tokens_per_second", tokens_per_s)
        self.writer.flush()

    def close(self):
        self.writer.close()
