"""Throughput of EP training (784-500-10, batch 20, 20 free + 4 nudged steps) on real MNIST.

Three implementations of the same update, timed in one run:

1. per-example: one example at a time, every relaxation step ``jax.grad`` of the energy (the
   seed notebook's structure, but jitted per example so the comparison is about the algorithm);
2. batched autodiff: a minibatch at a time, every step ``jax.grad`` of the batch-summed energy
   (the input term ``rho(x) W_1 rho(h_1)`` is recomputed at every step);
3. gridlib: ``gridlib.ep.train_step`` (explicit forces, the clamped input's drive computed once
   per minibatch, 64 minibatches per jitted ``lax.scan``).

Prints examples/second, the implied seconds per 60k-example epoch and the ratio to (1); saves
``results/bench/ep.json``. Run: ``python benchmarks/ep.py``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import data, ep, plotting, results
from gridlib.experiment import make_epoch_chunk

CFG = ep.check_config(ep.EPConfig())
B = 20


def _naive_update(params, x, d, beta):
    """One example: relax by jax.grad of F, update by jax.grad of (E(s^b) - E(s^0)) / beta."""

    def step(s, b):
        g = jax.grad(lambda s: jnp.sum(ep.total_energy(params, x, s, d, b, CFG)))(s)
        return tuple(jnp.clip(h - CFG.eps * gh, 0.0, 1.0) for h, gh in zip(s, g, strict=True))

    s = ep.zero_states(1, CFG.sizes)
    s = jax.lax.fori_loop(0, CFG.n_free, lambda _, s: step(s, 0.0), s)
    sb = jax.lax.fori_loop(0, CFG.n_nudge, lambda _, s: step(s, beta), s)
    return jax.grad(lambda p: jnp.sum(ep.energy(p, x, sb, CFG) - ep.energy(p, x, s, CFG)) / beta)(
        params
    )


naive_update = jax.jit(_naive_update)


def naive_epoch(params, xs, ds, key):
    """Python loop over minibatches and examples; mean of per-example updates."""
    for i in range(0, len(xs), B):
        key, k = jax.random.split(key)
        beta = float(jnp.where(jax.random.bernoulli(k), CFG.beta, -CFG.beta))
        grads = [naive_update(params, xs[j : j + 1], ds[j : j + 1], beta) for j in range(i, i + B)]
        mean = jax.tree.map(lambda *g: sum(g) / B, *grads)
        params = ep.Params(
            tuple(w - a * g for w, a, g in zip(params.weights, CFG.alphas, mean.weights, strict=True)),
            tuple(b - a * g for b, a, g in zip(params.biases, CFG.alphas, mean.biases, strict=True)),
        )
    return jax.block_until_ready(params)


def _autodiff_step(state, x, labels, key):
    params = state.params
    d = ep.one_hot(labels, 10)
    beta = jnp.where(jax.random.bernoulli(key), CFG.beta, -CFG.beta)

    def step(s, b):
        g = jax.grad(lambda s: jnp.sum(ep.total_energy(params, x, s, d, b, CFG)))(s)
        return tuple(jnp.clip(h - CFG.eps * gh, 0.0, 1.0) for h, gh in zip(s, g, strict=True))

    s = ep.zero_states(x.shape[0], CFG.sizes)
    s = jax.lax.fori_loop(0, CFG.n_free, lambda _, s: step(s, 0.0), s)
    sb = jax.lax.fori_loop(0, CFG.n_nudge, lambda _, s: step(s, beta), s)
    g = jax.grad(lambda p: jnp.mean(ep.energy(p, x, sb, CFG) - ep.energy(p, x, s, CFG)) / beta)(
        params
    )
    new = jax.tree.map(lambda w, gw, a: w - a * gw, params,
                       g, ep.Params(CFG.alphas, CFG.alphas))  # fmt: skip
    return ep.EPState(new, ()), {"loss": jnp.mean(ep.cost(s[-1], d, CFG))}


def time_chunked(train_step, xs, ys, reps=3):
    """Examples/second of ``train_step`` in 64-minibatch scans (best of ``reps``)."""
    state = ep.init_state(jax.random.PRNGKey(0), CFG)
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
    lib = time_chunked(lambda s, x, y, k: ep.train_step(s, x, y, k, CFG), xs, ys)

    rows = []
    for name, eps_ in (("per-example, jax.grad every step", naive),
                       ("batched, jax.grad every step", autodiff),
                       ("gridlib.ep (explicit forces, input drive once)", lib)):
        rows.append({"implementation": name, "examples/s": int(round(eps_)),
                     "s per 60k epoch": round(60000 / eps_, 1),
                     "speed-up vs per-example": round(eps_ / naive, 1)})
    print(plotting.markdown_table(rows))
    results.save("bench/ep", config={**CFG._asdict(), "batch_size": B,
                                     "n_examples_naive": n_naive, "n_examples_batched": 64 * B},
                 metrics={"rows": rows})


if __name__ == "__main__":
    main()
