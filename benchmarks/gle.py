"""Throughput of online GLE learning on MNIST-1D (the 15k network, batch 100, 360 steps/sample).

Three implementations of the same per-step dynamics + Adam update, timed in one run:

1. straightforward loop: one seed, a Python loop over the time steps calling a jitted
   ``step + Adam`` once per step (the structure of the original PyTorch code: one call per dt);
2. scan, one seed: ``gridlib.gle.mnist1d.train_batch`` (360 steps in one ``lax.scan``);
3. scan, seed ensemble: the same ``vmap``-ed over ``S`` seeds (one call trains all of them).

Prints steps/second (seed-steps for the ensemble) in wall time and per CPU-second of this process
(the machine may be shared), the ratio to (1), the projected CPU-hours of 10 seeds x 150 epochs,
and the achieved GFLOP per CPU-second (three matrix products per layer and step). Two ceilings
are measured in the same run: the rate of the network's own product, ``(100, 53) @ (53, 53)``,
repeated in a ``lax.scan``, and the rate of a large ``1024^3`` product (what one core sustains at
best); no implementation of these dynamics can beat the first by much, nor the second at all.
Saves ``results/bench/gle.json``. Run: ``python benchmarks/gle.py [n_seeds]``.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp

from gridlib import data, report, results
from gridlib.gle import mnist1d as m1d
from gridlib.gle import model


def _flops_per_step(net, batch):
    """Multiply-adds of the forward, error and weight-gradient products, times two."""
    return int(sum(3 * 2 * batch * lay.W.size for lay in net))


def _gemm_rate(m: int, k: int, repeats: int) -> float:
    """GFLOP per CPU-second of ``repeats`` chained float32 products ``(m, k) @ (k, k)``, the best
    of three timings (a ceiling: noise from other work on the machine only lowers it)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (m, k), jnp.float32)
    b = jnp.eye(k, dtype=jnp.float32)  # keeps the values O(1): no overflow, no denormals

    @jax.jit
    def chain(a, b):
        # each product feeds the next, so none can be skipped or hoisted
        return jax.lax.scan(lambda c, _: (c @ b, None), a, None, length=repeats)[0]

    jax.block_until_ready(chain(a, b))
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        jax.block_until_ready(chain(a, b))
        best = min(best, time.process_time() - c0)
    return 2 * m * k * k * repeats / best / 1e9


def main(n_seeds: int = 10, n_batches: int = 2) -> dict:
    setup = m1d.setup_for("e2e15k", schedule=False)
    splits = data.load_mnist1d(n_train=setup.batch * n_batches, n_test=100,
                               final_seq_length=setup.seq_len)
    xb = jnp.asarray(splits.x_train).reshape(n_batches, setup.batch, -1)
    yb = jnp.asarray(splits.y_train).reshape(n_batches, setup.batch)
    cfg = m1d.net_config(setup)
    net0 = m1d.make_net(jax.random.PRNGKey(0), setup)[0]
    flops = _flops_per_step(net0, setup.batch)

    # (1) straightforward: one jitted call per time step
    @jax.jit
    def one_step(s: m1d.SeedState, x_t, target):
        dyn, g, so = model.step(s.net, s.dyn, x_t, target, cfg)
        upd, opt = m1d.ADAM.update(g, s.opt)
        net = jax.tree.map(lambda p, u: p - s.sched.lr * u, s.net, upd)
        return s._replace(net=net, opt=opt, dyn=dyn), so.out

    s = m1d.seed_init(jax.random.PRNGKey(0), setup)
    target = jax.nn.one_hot(yb[0], 10)
    xs = jnp.swapaxes(xb[0], 0, 1)[..., None]
    s, _ = one_step(s, xs[0], target)
    jax.block_until_ready(s)
    n_naive = setup.seq_len
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(n_naive):
        s, _ = one_step(s, xs[t], target)
    jax.block_until_ready(s)
    naive, naive_cpu = n_naive / (time.perf_counter() - t0), n_naive / (time.process_time() - c0)

    # (2) one seed, scan
    single = jax.jit(lambda s, x, y: m1d.train_batch(s, x, y, cfg, setup))
    s = m1d.seed_init(jax.random.PRNGKey(0), setup)
    s, _ = single(s, xb[0], yb[0])
    jax.block_until_ready(s)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_batches):
        s, _ = single(s, xb[i], yb[i])
    jax.block_until_ready(s)
    scan1 = n_batches * setup.seq_len / (time.perf_counter() - t0)
    scan1_cpu = n_batches * setup.seq_len / (time.process_time() - c0)

    # (3) ensemble
    task = m1d.make_task(setup, tuple(range(n_seeds)), n_train=setup.batch * n_batches)
    st = task.init(None)
    step_fn = jax.jit(task.train_step)
    st, _ = step_fn(st, xb[0], yb[0], None)
    jax.block_until_ready(st)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_batches):
        st, _ = step_fn(st, xb[i], yb[i], None)
    jax.block_until_ready(st)
    ens = n_seeds * n_batches * setup.seq_len / (time.perf_counter() - t0)
    ens_cpu = n_seeds * n_batches * setup.seq_len / (time.process_time() - c0)

    hidden = net0[1].W.shape[0]
    ceilings = {
        "network product, GFLOP per CPU-s": _gemm_rate(setup.batch, hidden, 20_000),
        "1024^3 product, GFLOP per CPU-s": _gemm_rate(1024, 1024, 40),
    }

    steps_10x150 = 10 * 150 * 40 * setup.seq_len  # seed-steps of the full 15k reproduction
    rows = []
    for name, wall, cpu in [("Python loop over steps, 1 seed", naive, naive_cpu),
                            ("lax.scan, 1 seed", scan1, scan1_cpu),
                            (f"lax.scan + vmap, {n_seeds} seeds", ens, ens_cpu)]:
        rows.append({
            "implementation": name,
            "seed-steps/s (wall)": wall,
            "seed-steps per CPU-s": cpu,
            "ratio (CPU-s)": cpu / naive_cpu,
            "GFLOP per CPU-s": cpu * flops / 1e9,
            "10x150 epochs, CPU-h": steps_10x150 / cpu / 3600,
        })
    print(report.markdown_table(rows, floatfmt=".3g"))
    print(f"(training only, evaluation excluded; {flops / 1e6:.1f} MFLOP per seed-step; one process;"
          f" CPU-seconds count only this process's time, so they stay meaningful on a shared machine)")
    print(", ".join(f"{k}: {v:.1f}" for k, v in ceilings.items()))
    results.save("bench/gle", config={"arch": "e2e15k", "batch": setup.batch, "n_seeds": n_seeds,
                                      "n_batches": n_batches, "flops_per_seed_step": flops},
                 metrics={"rows": rows, "ceilings": ceilings})
    return {"rows": rows, "ceilings": ceilings}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
