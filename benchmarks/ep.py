"""Throughput of EP training (784-500-10, batch 20, 20 free + 4 nudged steps) on real MNIST.

Three implementations of the same update, timed in one run:

1. per-example: one example at a time, every relaxation step ``jax.grad`` of the energy (the
   seed notebook's structure, but jitted per example so the comparison is about the algorithm;
   ``gridlib.ep.reference.per_example_ep_gradient``);
2. batched autodiff: a minibatch at a time, every step ``jax.grad`` of the batch-summed energy
   (the input term ``rho(x) W_1 rho(h_1)`` is recomputed at every step;
   ``gridlib.ep.reference.autodiff_ep_gradient``);
3. gridlib: ``gridlib.ep.experiments.train_step`` (explicit forces, the clamped input's drive
   computed once per minibatch, 64 minibatches per jitted ``lax.scan``).

Prints examples/second, the implied seconds per 60k-example epoch and the ratio to (1); saves
``results/bench/ep.json``. Run: ``python benchmarks/ep.py``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import data, ep, report, results
from gridlib.ep import experiments as epx
from gridlib.ep import reference
from gridlib.experiment import make_epoch_chunk

CFG = ep.check_config(ep.EPConfig())
B = 20


def naive_epoch(params, xs, ds, key):
    """Python loop over minibatches and examples; mean of per-example updates."""
    for i in range(0, len(xs), B):
        key, k = jax.random.split(key)
        beta = float(jnp.where(jax.random.bernoulli(k), CFG.beta, -CFG.beta))
        mean = reference.per_example_ep_gradient(params, xs[i : i + B], ds[i : i + B], beta, CFG)
        params = ep.Params(
            tuple(w - a * g for w, a, g in zip(params.weights, CFG.alphas, mean.weights, strict=True)),
            tuple(b - a * g for b, a, g in zip(params.biases, CFG.alphas, mean.biases, strict=True)),
        )
    return jax.block_until_ready(params)


def _autodiff_step(state, x, labels, key):
    params = state.params
    d = ep.one_hot(labels, 10)
    beta = jnp.where(jax.random.bernoulli(key), CFG.beta, -CFG.beta)
    g, s = reference.autodiff_ep_gradient(params, x, d, beta, CFG)
    new = jax.tree.map(lambda w, gw, a: w - a * gw, params,
                       g, ep.Params(CFG.alphas, CFG.alphas))  # fmt: skip
    return ep.EPState(new, ()), {"loss": jnp.mean(ep.cost(s[-1], d, CFG))}


def time_chunked(train_step, xs, ys, reps=3):
    """Examples/second of ``train_step`` in 64-minibatch scans (best of ``reps``)."""
    state = epx.init_state(jax.random.PRNGKey(0), CFG)
    chunk = make_epoch_chunk(train_step)
    k = 64
    xb = jnp.asarray(xs[: k * B].reshape(k, B, -1))
    yb = jnp.asarray(ys[: k * B].reshape(k, B))
    steps = jnp.arange(k, dtype=jnp.uint32)
    key = jax.random.PRNGKey(1)
    jax.block_until_ready(chunk(state, xb, yb, steps, key))  # compile
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(chunk(state, xb, yb, steps, key))
        best = min(best, time.perf_counter() - t0)
    return k * B / best


def main() -> None:
    mnist = data.load_mnist(n_train=2000, n_test=1)
    xs, ys = mnist.x_train, mnist.y_train
    n_naive = 100
    params = ep.init_params(jax.random.PRNGKey(0), CFG.sizes)
    ds = np.asarray(ep.one_hot(ys, 10))
    naive_epoch(params, jnp.asarray(xs[:B]), jnp.asarray(ds[:B]), jax.random.PRNGKey(2))  # compile
    t0 = time.perf_counter()
    naive_epoch(params, jnp.asarray(xs[:n_naive]), jnp.asarray(ds[:n_naive]), jax.random.PRNGKey(2))
    naive = n_naive / (time.perf_counter() - t0)

    autodiff = time_chunked(_autodiff_step, xs, ys)
    lib = time_chunked(lambda s, x, y, k: epx.train_step(s, x, y, k, CFG), xs, ys)

    rows = []
    for name, eps_ in (("per-example, jax.grad every step", naive),
                       ("batched, jax.grad every step", autodiff),
                       ("gridlib.ep (explicit forces, input drive once)", lib)):
        rows.append({"implementation": name, "examples/s": int(round(eps_)),
                     "s per 60k epoch": round(60000 / eps_, 1),
                     "speed-up vs per-example": round(eps_ / naive, 1)})
    print(report.markdown_table(rows))
    results.save("bench/ep", config={**CFG._asdict(), "batch_size": B,
                                     "n_examples_naive": n_naive, "n_examples_batched": 64 * B},
                 metrics={"rows": rows})


if __name__ == "__main__":
    main()
