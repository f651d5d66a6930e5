"""tf.distribute strategies by name: the same training loop runs on one device, several GPUs, or several
machines (multi-worker reads the cluster from the TF_CONFIG environment variable)."""

import json
import os

import tensorflow as tf

from chatbot.errors import UsageError


def make_strategy(name):
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        # Without GPUs, mirror over the logical CPUs (tests split one CPU into two).
        devices = [d.name for d in gpus] or [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi-worker":
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG", ""))
            cluster["cluster"]["worker"], cluster["task"]["index"]
        except (ValueError, KeyError, TypeError):
            raise UsageError("--strategy multi-worker needs TF_CONFIG with cluster.worker and task.index "
                             "(see README.md, 'Training on several machines')") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UsageError(f"unknown strategy {name!r} (supported: none, mirrored, multi-worker)")


def is_chief():
    """In multi-worker training only worker 0 writes the bundle, checkpoints and logs."""
    try:
        task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    except ValueError:
        return True
    return task.get("type", "worker") in ("worker", "chief") and int(task.get("index", 0)) == 0
