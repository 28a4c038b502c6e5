"""Throughput of EP training (784-500-10, batch 20, 20 free + 4 nudged steps) on real MNIST.

Three implementations of the same update, timed in one run:

1. per-example: one example at a time, every relaxation step ``jax.grad`` of the energy (the
   seed notebook's structure, but jitted per example so the comparison is about the algorithm;
   ``gridlib.ep.reference.per_example_ep_gradient``);
2. batched autodiff: a minibatch at a time, every step ``jax.grad`` of the batch-summed energy
   (``gridlib.ep.reference.autodiff_ep_gradient``; the input term ``rho(x) W_1`` does not
   depend on the states, so XLA hoists it out of the relaxation loop: the input drive is
   computed once per phase here too);
3. gridlib: ``gridlib.ep.experiments.train_step`` (explicit forces, the clamped input's drive
   computed once per minibatch, 64 minibatches per jitted ``lax.scan``).

Beside them, backprop on the same 784-500-10 network (``gridlib.baselines.mlp_task``: the hard
sigmoid, Adam, batch 20, as chapter 22's baselines train it) is timed in the same rounds, so that
what EP's two relaxations cost against one forward and backward pass is a ratio measured in one
run, not a comparison of training runs made at different times on a machine that may be shared.

The library's step also reports, at every minibatch, the error rate and the relative update
sizes ``dlogW_k = alpha_k |G_k| / |W_k|`` of the reference code: two more passes over
``W_1`` (784 x 500) and its gradient per minibatch of 20, which cost about as much as the
relaxation itself. So (2) and (3) are each timed twice, with the loss as the only metric and
with the library's metrics, and the like-for-like ratios show which relaxation is faster.
Every variant is timed ``reps`` times, alternately (best counts), in wall time and in CPU time
of this process (the machine may be shared).

Prints examples/second, the implied seconds per 60k-example epoch, the ratio to (1) and the
like-for-like ratios; saves ``results/bench/ep.json``. Run: ``python benchmarks/ep.py``.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gridlib import baselines, data, ep, report, results
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


def _library_metrics(params, grads, y, labels, d):
    """The metrics of ``gridlib.ep.experiments.train_step``: loss, error rate, ``dlogW_k``."""
    metrics = {"loss": jnp.mean(ep.cost(y, d, CFG)), "err": jnp.mean(jnp.argmax(y, -1) != labels)}
    for k, (w, g, a) in enumerate(zip(params.weights, grads.weights, CFG.alphas, strict=True), 1):
        metrics[f"dlogW{k}"] = a * jnp.linalg.norm(g) / jnp.linalg.norm(w)
    return metrics


def _autodiff_step(state, x, labels, key, diagnostics=False):
    params = state.params
    d = ep.one_hot(labels, 10)
    beta = jnp.where(jax.random.bernoulli(key), CFG.beta, -CFG.beta)
    g, s = reference.autodiff_ep_gradient(params, x, d, beta, CFG)
    new = jax.tree.map(lambda w, gw, a: w - a * gw, params,
                       g, ep.Params(CFG.alphas, CFG.alphas))  # fmt: skip
    if diagnostics:
        return ep.EPState(new, ()), _library_metrics(params, g, s[-1], labels, d)
    return ep.EPState(new, ()), {"loss": jnp.mean(ep.cost(s[-1], d, CFG))}


def _library_loss_only(state, x, labels, key):
    state, metrics = epx.train_step(state, x, labels, key, CFG)
    return state, {"loss": metrics["loss"]}  # the rest is dead code to the compiler


def time_chunked(steps: dict, xs, ys, reps=5) -> dict[str, tuple[float, float]]:
    """``name -> (examples per wall second, per CPU second)`` of each train step in 64-minibatch
    scans, timed alternately (best of ``reps``). A step is a function ``(state, x, y, key)``
    started from EP's initial state, or a pair ``(step, initial state)``."""
    k = 64
    xb = jnp.asarray(xs[: k * B].reshape(k, B, -1))
    yb = jnp.asarray(ys[: k * B].reshape(k, B))
    ids = jnp.arange(k, dtype=jnp.uint32)
    key = jax.random.PRNGKey(1)
    calls = {}
    for name, step in steps.items():
        step, state = step if isinstance(step, tuple) else (step, epx.init_state(jax.random.PRNGKey(0), CFG))
        chunk = make_epoch_chunk(step)
        calls[name] = partial(chunk, state, xb, yb, ids, key)
        jax.block_until_ready(calls[name]())  # compile
    best = {name: (np.inf, np.inf) for name in steps}
    for _ in range(reps):
        for name, call in calls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(call())
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return {name: (k * B / w, k * B / c) for name, (w, c) in best.items()}


def main() -> None:
    mnist = data.load_mnist(n_train=2000, n_test=1)
    xs, ys = mnist.x_train, mnist.y_train
    n_naive = 100
    params = ep.init_params(jax.random.PRNGKey(0), CFG.sizes)
    ds = np.asarray(ep.one_hot(ys, 10))
    naive_epoch(params, jnp.asarray(xs[:B]), jnp.asarray(ds[:B]), jax.random.PRNGKey(2))  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    naive_epoch(params, jnp.asarray(xs[:n_naive]), jnp.asarray(ds[:n_naive]), jax.random.PRNGKey(2))
    naive = n_naive / (time.perf_counter() - t0), n_naive / (time.process_time() - c0)

    mlp = baselines.mlp_task(CFG.sizes, optax.adam(1e-3), activation="hard_sigmoid01")
    rates = time_chunked({
        "autodiff": _autodiff_step,
        "autodiff_diag": partial(_autodiff_step, diagnostics=True),
        "lib_loss": _library_loss_only,
        "lib": lambda s, x, y, k: epx.train_step(s, x, y, k, CFG),
        "backprop": (mlp.train_step, mlp.init(jax.random.PRNGKey(0))),
    }, xs, ys)  # fmt: skip

    rows = []
    for name, key in (("per-example, jax.grad every step", None),
                      ("batched, jax.grad every step (loss only)", "autodiff"),
                      ("batched, jax.grad every step + the library's metrics", "autodiff_diag"),
                      ("explicit forces of gridlib.ep (loss only)", "lib_loss"),
                      ("gridlib.ep (explicit forces, input drive once; train_step as fit runs it)", "lib"),
                      ("backprop on the same network (Adam, as the baselines train it)", "backprop")):
        wall, cpu = naive if key is None else rates[key]
        rows.append({"implementation": name, "examples/s": int(round(wall)),
                     "s per 60k epoch": round(60000 / wall, 1),
                     "CPU-s per 60k epoch": round(60000 / cpu, 2),
                     "speed-up vs per-example": round(wall / naive[0], 1)})  # fmt: skip
    print(report.markdown_table(rows))
    like = {
        "explicit over autodiff, loss only (CPU-s)": rates["lib_loss"][1] / rates["autodiff"][1],
        "explicit over autodiff, library metrics (CPU-s)": rates["lib"][1] / rates["autodiff_diag"][1],
        "library metrics' share of the library step (CPU-s)": 1 - rates["lib"][1] / rates["lib_loss"][1],
        "EP's step over backprop's, same network (wall time)": rates["backprop"][0] / rates["lib"][0],
    }  # fmt: skip
    print("like for like, examples per CPU-second: "
          + "; ".join(f"{k} {v:.2f}" for k, v in like.items()))
    print("(the per-minibatch dlogW_k and error metrics of the library's step are what makes it "
          "slower than plain batched jax.grad with the loss alone; with the same metrics it is faster)")
    results.save("bench/ep", config={**CFG._asdict(), "batch_size": B,
                                     "n_examples_naive": n_naive, "n_examples_batched": 64 * B},
                 metrics={"rows": rows, "like_for_like": like})


if __name__ == "__main__":
    main()
