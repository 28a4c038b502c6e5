"""Throughput of the analog-filter grid on row-wise MNIST shapes (28 x 10 grid, T = 28, float32).

Measures examples/second for the forward pass, BPTT, exact RTRL and SnAP-1 (the vectorised
hyperplane schedules), the naive per-cell raster loop of the original code (forward and SnAP-1),
and whole training steps as ``fit`` runs them (SnAP-1 + Adam at batch 32, SnAP-1 + per-group SGD
at batch 1, many steps per jitted call). Prints a table with the ratio to the naive loop and the
implied seconds per 60k-example epoch, and saves it as ``results/bench/filtergrid.json``.

    flock /tmp/gridlib-cpu.lock .venv/bin/python benchmarks/filtergrid.py
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import results
from gridlib.experiment import make_epoch_chunk
from gridlib.filtergrid import grid, reference
from gridlib.filtergrid.bptt import bptt_grads
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap1 import snap1_batch_grads
from gridlib.filtergrid.train import make_task

N, M, T = 28, 10, 28
EPOCH = 60_000


def timed(fn, *args, min_time: float = 2.0, max_calls: int = 200) -> float:
    """Best seconds per call of a jitted ``fn`` (compiled first), over repeated timing rounds."""
    jax.block_until_ready(fn(*args))
    best, spent, calls = np.inf, 0.0, 0
    while (spent < min_time or calls < 3) and calls < max_calls:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        dt = time.perf_counter() - t0
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--min-time", type=float, default=2.0)
    args = parser.parse_args(argv)
    b = args.batch
    params = grid.init_params(jax.random.PRNGKey(0), N, M)
    xs = 10.0 * jax.random.uniform(jax.random.PRNGKey(1), (b, T, N)) * (
        jax.random.uniform(jax.random.PRNGKey(2), (b, T, N)) < 0.2)
    labels = jnp.arange(b) % M
    per_ex = lambda f: jax.jit(lambda p, x, y: jax.vmap(f, in_axes=(None, 0, 0))(p, x, y)[2])

    rows = []

    def add(name, seconds, n_examples, naive=None):
        rate = n_examples / seconds
        rows.append({"what": name, "examples_per_s": rate, "epoch_s": EPOCH / rate,
                     "speedup_vs_naive": (rate / naive) if naive else None})
        extra = f"  x{rate / naive:7.1f} vs naive" if naive else ""
        print(f"{name:44s} {rate:10.0f} ex/s  {EPOCH / rate:9.1f} s/epoch{extra}", flush=True)
        return rate

    mt = args.min_time
    naive_fwd = add("naive raster loop: forward", timed(
        jax.jit(jax.vmap(reference.forward, in_axes=(None, 0))), params, xs, min_time=mt), b)
    naive_snap = add("naive raster loop: SnAP-1", timed(
        per_ex(reference.snap1_grads), params, xs, labels, min_time=mt), b)
    add("hyperplane: forward", timed(
        jax.jit(jax.vmap(lambda p, x: grid.forward(p, x).y, in_axes=(None, 0))), params, xs,
        min_time=mt), b, naive_fwd)
    add("hyperplane: SnAP-1 gradient", timed(
        jax.jit(snap1_batch_grads), params, xs, labels, min_time=mt), b, naive_snap)
    add("hyperplane: BPTT gradient (jax.grad)", timed(
        per_ex(bptt_grads), params, xs, labels, min_time=mt), b, naive_snap)
    n_rtrl = min(b, 8)  # RTRL is ~1000 forward passes per example: time a smaller batch
    add("hyperplane: exact RTRL gradient (forward mode)", timed(
        per_ex(rtrl_grads), params, xs[:n_rtrl], labels[:n_rtrl], min_time=mt, max_calls=3),
        n_rtrl, naive_snap)

    # whole training steps, as fit runs them: K minibatches per jitted lax.scan call
    for label, opt, bs, k in (("train step: SnAP-1 + Adam, batch 32", "adam", 32, 64),
                              ("train step: SnAP-1 + per-group SGD, batch 1", "sgd", 1, 2048)):
        task = make_task(rule="snap1", optimizer=opt)
        state = task.init(jax.random.PRNGKey(0))
        chunk = make_epoch_chunk(task.train_step)
        x_img = jax.random.uniform(jax.random.PRNGKey(3), (k, bs, N * T))
        y_img = jax.random.randint(jax.random.PRNGKey(4), (k, bs), 0, M)
        steps = jnp.arange(k, dtype=jnp.uint32)
        sec = timed(lambda s, x, y, st, c=chunk: c(s, x, y, st, jax.random.PRNGKey(0))[1]["loss"],
                    state, x_img, y_img, steps, min_time=mt, max_calls=5)
        add(label, sec, k * bs, naive_snap)

    cpu = results.provenance()["cpu"]
    print(f"\n{jax.device_count()} JAX device(s), {cpu}; the original code: about 246 s/epoch "
          "for SnAP-1 at batch 32 on a comparable 2-core CPU")
    results.save("bench/filtergrid", config={"batch": b, "grid": [N, M], "T": T,
                                             "dtype": "float32", "epoch_examples": EPOCH},
                 metrics={r["what"]: r for r in rows})


if __name__ == "__main__":
    main()
