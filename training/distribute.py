"""tf.distribute strategies by name: the same training loop runs on one device, several GPUs, or several
machines (multi-worker reads the cluster from the TF_CONFIG environment variable)."""

import json
import os

from chatbot.errors import UsageError

STRATEGIES = ("none", "mirrored", "multi-worker")


def _tf_config():
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        raise UsageError("TF_CONFIG is not valid JSON") from None
    return config if isinstance(config, dict) else {}


def worker_index(strategy_name="multi-worker"):
    """This process's worker number in multi-worker training (0 for the chief, and always 0 otherwise)."""
    if strategy_name != "multi-worker":
        return 0
    task = _tf_config().get("task") or {}
    if task.get("type", "worker") == "chief":
        return 0
    try:
        return int(task.get("index", 0))
    except (TypeError, ValueError):
        raise UsageError(f"TF_CONFIG: task.index must be a number, not {task.get('index')!r}") from None


def is_chief(strategy_name="multi-worker"):
    """In multi-worker training only worker 0 writes the bundle; the others keep their checkpoints apart."""
    return worker_index(strategy_name) == 0


def check_cluster():
    config = _tf_config()
    try:
        workers = config["cluster"]["worker"]
        index = int(config["task"]["index"])
        if not isinstance(workers, list) or not 0 <= index < len(workers) + len(config["cluster"].get("chief", [])):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise UsageError("--strategy multi-worker needs TF_CONFIG with cluster.worker (a list of host:port) "
                         "and task.index (this worker's place in it)") from None


def make_strategy(name):
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        # Without GPUs, mirror over the logical CPUs (tests split one CPU into two).
        devices = [d.name for d in gpus] or [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi-worker":
        check_cluster()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UsageError(f"unknown strategy {name!r} (supported: {', '.join(STRATEGIES)})")
