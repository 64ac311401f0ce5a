"""Lesson 10, beyond one machine: two ``MultiWorkerMirroredStrategy`` workers on loopback only.

Every worker starts a TensorFlow gRPC server, and that server listens on all
network interfaces whatever host ``TF_CONFIG`` names (measured with
TensorFlow 2.21: configured as 127.0.0.1:23456, it listens on [::]:23456). So the two
workers run inside a private network namespace (``unshare -rn``, no root
needed where unprivileged user namespaces are allowed), whose only interface
is its own loopback: nothing outside can reach them, and they reach nothing
outside. Each worker trains one batch-norm step on its half of a global
batch, once per-replica and once synchronized, and prints what it computed.

Run it with ``python -m bnlib.lessons.lesson10.multiworker`` (about half a
minute: each worker starts TensorFlow). :func:`two_workers` bounds the time
and kills every process it started, on success, error or timeout.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PORTS = (23456, 23457)   # inside the private namespace: no other process can hold them
MODULE = "bnlib.lessons.lesson10.multiworker"


def _worker(index: int, x_path: str) -> None:
    """One worker: MultiWorkerMirroredStrategy, one step of two Keras layers; prints JSON."""
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in PORTS]},
        "task": {"type": "worker", "index": index}})
    from bnlib.tf_distribute import keras, tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x = np.load(x_path)
    with strategy.scope():
        layers = {mode: keras.layers.BatchNormalization(synchronized=mode == "synchronized",
                                                        momentum=0.0)
                  for mode in ("per_replica", "synchronized")}
        for layer in layers.values():
            layer.build((None, x.shape[1]))
    half = len(x) // 2
    rows = x[index * half:(index + 1) * half]
    values = strategy.experimental_distribute_values_from_function(lambda ctx: tf.constant(rows))

    @tf.function
    def step(v):
        return strategy.run(lambda t: {m: layer(t, training=True) for m, layer in layers.items()},
                            args=(v,))

    out = step(values)
    print(json.dumps({m: {"out": strategy.experimental_local_results(out[m])[0].numpy().tolist(),
                          "moving_mean": layers[m].moving_mean.numpy().tolist(),
                          "moving_variance": layers[m].moving_variance.numpy().tolist()}
                      for m in layers}))


def _pair(x_path: str, timeout: float) -> None:
    """Inside the namespace: start both workers, wait (bounded), print their JSON lines."""
    procs = [subprocess.Popen([sys.executable, "-m", MODULE, "worker", str(i), x_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        results = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed ({p.returncode}): {err[-2000:]}")
        print(out.strip().splitlines()[-1])


def two_workers(x, timeout: float = 240.0) -> list:
    """Run the two workers on the global batch x (float32, even number of rows).

    Returns
    -------
    list of 2 dicts (one per worker) of mode -> {"out", "moving_mean",
    "moving_variance"}, with mode "per_replica" or "synchronized"; "out" is
    the worker's half of the output.

    Raises
    ------
    RuntimeError
        If no private network namespace can be made here (``unshare -rn``),
        or the workers fail or run out of time (then every process is killed).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) % 2:
        raise ValueError(f"x must have shape (N, D) with N even; got {x.shape}")
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not (unshare and ip):
        raise RuntimeError("needs `unshare` and `ip` (util-linux, iproute2) for a private "
                           "network namespace")
    probe = subprocess.run([unshare, "-rn", ip, "link", "set", "lo", "up"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise RuntimeError(f"cannot make a private network namespace here: {probe.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        x_path = str(Path(tmp, "x.npy"))
        np.save(x_path, x)
        script = (f"{ip} link set lo up && exec {sys.executable} -m {MODULE} pair "
                  f"{x_path} {timeout}")
        proc = subprocess.Popen([unshare, "-rn", "sh", "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)   # the namespace's whole process group
            proc.communicate()
            raise RuntimeError(f"the workers did not finish within {timeout:.0f} s") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the workers failed: {err[-2000:]}")
    return [json.loads(line) for line in out.strip().splitlines()[-2:]]


def _main(argv: list) -> None:
    if argv[:1] == ["worker"]:
        _worker(int(argv[1]), argv[2])
    elif argv[:1] == ["pair"]:
        _pair(argv[1], float(argv[2]))
    else:
        rng = np.random.default_rng(0)
        x = (rng.normal(size=(16, 3)) + [1.0, -2.0, 3.0]).astype(np.float32)
        workers = two_workers(x)
        x64 = x.astype(np.float64)
        whole = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-3)
        for mode in ("per_replica", "synchronized"):
            out = np.concatenate([np.array(w[mode]["out"]) for w in workers])
            means = [np.round(w[mode]["moving_mean"], 3).tolist() for w in workers]
            print(f"{mode:12s}: max |out - batch norm of all 16 rows| "
                  f"{np.abs(out - whole).max():.1e}; moving means of the two workers {means}")
        print("mean of the global batch", x.mean(axis=0).round(3).tolist())


if __name__ == "__main__":
    _main(sys.argv[1:])
