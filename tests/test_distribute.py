"""--strategy mirrored (two logical CPU devices) and multi-worker (two worker processes on 127.0.0.1) take the
same steps as training on one device: same batches, gradients summed over replicas, then clipped."""

import hashlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from chatbot import bundle as bundle_io
from conftest import PAIRS_FILE, ROOT, chatbot_cmd, requires_tf

pytestmark = requires_tf

# Dropout 0 and the same seed: the three ways of training are meant to agree to float rounding.
COMMON = ("train", "--data", str(PAIRS_FILE), "--preset", "tiny", "--seed", "5", "--epochs", "50",
          "--max-steps", "8")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# The CPU must be split into logical devices before TensorFlow initialises, so in a process of its own.
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from chatbot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def max_difference(a, b):
    wa, wb = bundle_io.load(a).weights, bundle_io.load(b).weights
    return max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)


def digest(path):
    """As training/train.py's weights_digest, from a bundle on disk."""
    h = hashlib.sha256()
    for name, array in sorted(bundle_io.load(path).weights.items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(array, np.float32).tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "bot"
    result = chatbot_cmd(*COMMON, "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return out


def test_mirrored_over_two_logical_cpus(one_device, tmp_path):
    out = tmp_path / "bot"
    result = subprocess.run([sys.executable, "-c", TWO_CPUS, *COMMON, "--out", str(out), "--strategy", "mirrored"],
                            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replicas" in result.stdout
    assert bundle_io.load(out).training["steps"] == 8
    assert max_difference(out, one_device) < 1e-5


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_on_two_local_processes(one_device, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    out = tmp_path / "bot"
    processes = []
    try:
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "chatbot", *COMMON, "--out", str(out), "--strategy", "multi-worker"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                env={**ENV, "TF_CONFIG": json.dumps(config)}))
        results = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (stdout, stderr) in zip(processes, results):
        assert p.returncode == 0, stderr[-3000:] + stdout[-1000:]
        assert "2 replicas" in stdout
    digests = [[line.split()[4] for line in stdout.splitlines() if "weights sha256" in line] for stdout, _ in results]
    assert len(digests[0]) == 1 and digests[0] == digests[1]  # the workers end with equal weights
    # Only the chief wrote the bundle; the other worker kept its own run directory and wrote no bundle.
    assert digest(out) == digests[0][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot", "bot.run"]
    assert (tmp_path / "bot.run" / "worker-1" / "checkpoints" / "latest.json").is_file()
    assert max_difference(out, one_device) < 1e-5
