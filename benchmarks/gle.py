"""Throughput of online GLE learning on MNIST-1D (the 15k network, batch 100, 360 steps/sample).

Five implementations of the same per-step dynamics + Adam update, timed in one run:

1. straightforward loop: one seed, a Python loop over the time steps calling a jitted
   ``step + Adam`` once per step (the structure of the original PyTorch code: one call per dt);
2. per-layer scan, one seed: ``gridlib.gle.mnist1d.train_batch_stepwise`` (360 steps of
   ``model.step`` + Adam in one ``lax.scan``, batch-major);
3. per-layer scan, seed ensemble: the same ``vmap``-ed over ``S`` seeds (the library until the
   packed form);
4. packed scan, one seed: ``gridlib.gle.mnist1d.train_batch`` (``gridlib.gle.packed``:
   feature-major, hidden layers stacked, bias folded into the weights), compiled with
   ``gridlib.gle.packed.COMPILER_OPTIONS``;
5. packed scan, seed ensemble: the library's task (``make_task``), ``lax.map`` over the seeds.

Besides the table, (5) compiled with XLA's default schedule instead of
``packed.COMPILER_OPTIONS``' memory-optimised one (under the default, XLA:CPU hands a step's
small kernels between the threads of both cores) is timed in the same rounds, and its fraction
of the ceiling printed and saved: what the schedule gains.

Prints steps/second (seed-steps for the ensembles) in wall time and per CPU-second of this
process (the machine may be shared), the ratio to (1) and to (3), the projected CPU-hours of 10
seeds x 150 epochs, the achieved GFLOP per CPU-second (three matrix products per layer and step)
and its **fraction of the network-product ceiling**, and the ensemble's cost per seed against
one seed's (time per seed-step of (5) over that of (4), wall and CPU; below 1 the ensemble is
cheaper per seed). Two ceilings are measured in the same run: the rate of the network's own
product, ``(100, 53) @ (53, 53)``, repeated in a ``lax.scan``, and the rate of a large
``1024^3`` product (what one core sustains at best); no implementation of these dynamics can
beat the first by much, nor the second at all. Every implementation and the
network-product ceiling are timed ``reps`` times, alternately, and the best time counts (noise
from other work on the machine only slows a timing down).

``--one-core`` pins the process to one core before JAX starts, so that XLA runs with one thread
(as each of the two processes of a reproduction on two cores could). On two cores, code
compiled with XLA's default schedule (the per-layer forms here) has its small independent
operations handed between both cores' threads, which costs CPU time.

Saves ``results/bench/gle.json``, or ``results/bench/gle_one_core.json`` with ``--one-core``
(``GRIDLIB_RESULTS`` redirects them). Run:
``python benchmarks/gle.py [n_seeds] [reps] [--one-core]``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--one-core" in sys.argv:  # before JAX sizes its thread pool
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import time
from functools import partial

import jax
import jax.numpy as jnp

from gridlib import cli, data, flags, report, results
from gridlib.gle import mnist1d as m1d
from gridlib.gle import model, packed

CEILING = "network product, GFLOP per CPU-s"


def _flops_per_step(net, batch):
    """Multiply-adds of the forward, error and weight-gradient products, times two."""
    return int(sum(3 * 2 * batch * lay.W.size for lay in net))


def _gemm_chain(m: int, k: int, repeats: int):
    """A jitted chain of ``repeats`` float32 products ``(m, k) @ (k, k)`` and its FLOP count."""
    a = jax.random.normal(jax.random.PRNGKey(0), (m, k), jnp.float32)
    b = jnp.eye(k, dtype=jnp.float32)  # keeps the values O(1): no overflow, no denormals

    @jax.jit
    def chain(a, b):
        # each product feeds the next, so none can be skipped or hoisted
        return jax.lax.scan(lambda c, _: (c @ b, None), a, None, length=repeats)[0]

    return (lambda: chain(a, b)), 2 * m * k * k * repeats


def _best_times(calls: dict, reps: int) -> dict[str, tuple[float, float]]:
    """``name -> (best wall s, best CPU s)`` over ``reps`` rounds that run every call once, in turn
    (compilation excluded: every call runs once before the first round)."""
    for fn in calls.values():
        jax.block_until_ready(fn())
    best = {name: (float("inf"), float("inf")) for name in calls}
    for _ in range(reps):
        for name, fn in calls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def main(n_seeds: int = 10, reps: int = 3, n_batches: int = 1) -> dict:
    setup = m1d.setup_for("e2e15k", schedule=False)
    splits = data.load_mnist1d(n_train=setup.batch * n_batches, n_test=100,
                               final_seq_length=setup.seq_len)
    xb = jnp.asarray(splits.x_train).reshape(n_batches, setup.batch, -1)
    yb = jnp.asarray(splits.y_train).reshape(n_batches, setup.batch)
    cfg = m1d.net_config(setup)
    net0 = m1d.make_net(jax.random.PRNGKey(0), setup)[0]
    flops = _flops_per_step(net0, setup.batch)
    options = packed.COMPILER_OPTIONS
    seq = setup.seq_len

    # (1) straightforward: one jitted call per time step
    @jax.jit
    def one_step(s: m1d.SeedState, x_t, target):
        dyn, g, so = model.step(s.net, s.dyn, x_t, target, cfg)
        upd, opt = m1d.ADAM.update(g, s.opt)
        net = jax.tree.map(lambda p, u: p - s.sched.lr * u, s.net, upd)
        return s._replace(net=net, opt=opt, dyn=dyn), so.out

    target = jax.nn.one_hot(yb[0], 10)
    xs = jnp.swapaxes(xb[0], 0, 1)[..., None]

    s1 = m1d.seed_init(jax.random.PRNGKey(0), setup)

    def naive():
        s = s1
        for t in range(seq):
            s, _ = one_step(s, xs[t], target)
        return s

    def batches(fn, s):
        for i in range(n_batches):
            s, _ = fn(s, xb[i], yb[i])
        return s

    # (2), (4) one seed; (3) the per-layer ensemble; (5) the library's ensemble task
    stepwise = jax.jit(partial(m1d.train_batch_stepwise, cfg=cfg, setup=setup))
    fast = jax.jit(partial(m1d.train_batch, cfg=cfg, setup=setup), compiler_options=options)
    task = m1d.make_task(setup, tuple(range(n_seeds)), n_train=setup.batch * n_batches)
    st = task.init(None)
    ens_stepwise = jax.jit(jax.vmap(partial(m1d.train_batch_stepwise, cfg=cfg, setup=setup),
                                    in_axes=(0, None, None)))  # fmt: skip
    ens_fast = jax.jit(task.train_step, compiler_options=task.compiler_options)
    default_schedule = {k: v for k, v in options.items() if k != "xla_cpu_scheduler_type"}
    ens_default = jax.jit(task.train_step, compiler_options=default_schedule)
    chain, chain_flops = _gemm_chain(setup.batch, net0[1].W.shape[0], 20_000)
    calls = {
        "naive": naive,
        "stepwise": lambda: batches(stepwise, s1),
        "stepwise_ens": lambda: batches(ens_stepwise, st.seeds),
        "fast": lambda: batches(fast, s1),
        "fast_ens": lambda: batches(lambda s, x, y: ens_fast(s, x, y, None), st),
        "fast_ens_default": lambda: batches(lambda s, x, y: ens_default(s, x, y, None), st),
        "ceiling": chain,
    }
    best = _best_times(calls, reps)
    big, big_flops = _gemm_chain(1024, 1024, 40)
    ceilings = {
        CEILING: chain_flops / best.pop("ceiling")[1] / 1e9,
        "1024^3 product, GFLOP per CPU-s": big_flops / _best_times({"big": big}, 3)["big"][1] / 1e9,
    }

    steps = {"naive": seq, "stepwise": n_batches * seq, "stepwise_ens": n_seeds * n_batches * seq,
             "fast": n_batches * seq, "fast_ens": n_seeds * n_batches * seq}  # fmt: skip
    names = {"naive": "Python loop over steps, 1 seed",
             "stepwise": "per-layer lax.scan, 1 seed",
             "stepwise_ens": f"per-layer lax.scan + vmap, {n_seeds} seeds",
             "fast": "packed lax.scan, 1 seed",
             "fast_ens": f"packed lax.scan + lax.map, {n_seeds} seeds (library)"}  # fmt: skip
    ens_steps = n_seeds * n_batches * seq
    default_fraction = ens_steps / best.pop("fast_ens_default")[1] * flops / 1e9 / ceilings[CEILING]
    steps_10x150 = 10 * 150 * 40 * seq  # seed-steps of the full 15k reproduction
    rate = {k: (steps[k] / best[k][0], steps[k] / best[k][1]) for k in steps}
    rows = []
    for k, (wall, cpu) in rate.items():
        rows.append({
            "implementation": names[k],
            "seed-steps/s (wall)": wall,
            "seed-steps per CPU-s": cpu,
            "ratio (CPU-s)": cpu / rate["naive"][1],
            "ratio to per-layer ensemble (CPU-s)": cpu / rate["stepwise_ens"][1],
            "GFLOP per CPU-s": cpu * flops / 1e9,
            "fraction of network-product ceiling": cpu * flops / 1e9 / ceilings[CEILING],
            "10x150 epochs, CPU-h": steps_10x150 / cpu / 3600,
        })
    print(report.markdown_table(rows, floatfmt=".3g"))
    print(f"(training only, evaluation excluded; {flops / 1e6:.1f} MFLOP per seed-step; one process"
          f"{' pinned to one core' if len(os.sched_getaffinity(0)) == 1 else ''}; best of {reps} "
          "alternating timings; CPU-seconds count only this process's time, so they stay "
          "meaningful on a shared machine)")
    print(", ".join(f"{k}: {v:.1f}" for k, v in ceilings.items()))
    # time per seed-step of the library's ensemble over one seed's (below 1: cheaper per seed)
    per_seed = {"wall": rate["fast"][0] / rate["fast_ens"][0],
                "CPU": rate["fast"][1] / rate["fast_ens"][1]}  # fmt: skip
    print(f"{n_seeds}-seed ensemble per seed / one seed: {per_seed['wall']:.2f} (wall), "
          f"{per_seed['CPU']:.2f} (CPU-s)")
    print(f"{names['fast_ens']}, XLA's default schedule: {default_fraction:.3g} of the "
          "network-product ceiling")
    # A pinned run is another configuration, kept beside the two-core one (never over it).
    name = "bench/gle_one_core" if len(os.sched_getaffinity(0)) == 1 else "bench/gle"
    results.save(name, config={"arch": "e2e15k", "batch": setup.batch, "n_seeds": n_seeds,
                                      "n_batches": n_batches, "reps": reps, "flops_per_seed_step": flops,
                                      "compiler_options": dict(options),
                                      "cores": len(os.sched_getaffinity(0))},
                 metrics={"rows": rows, "ceilings": ceilings,
                          "ensemble per seed / one seed": per_seed,
                          "fraction of network-product ceiling, ensemble, default schedule":
                              default_fraction})  # fmt: skip
    return {"rows": rows, "ceilings": ceilings, "ensemble per seed / one seed": per_seed}


def parser() -> cli.OneLineParser:
    """This script's arguments, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/gle.py", description=__doc__.split("\n")[0])
    p.add_flag("n_seeds", flags.integer(1, 1000), 10, help="seeds in the ensemble")
    p.add_flag("reps", flags.integer(1, 100), 3, help="alternated timings")
    p.add_argument("--one-core", action="store_true", help="pin the process to one core")
    return p


if __name__ == "__main__":
    raise SystemExit(cli.run_script(lambda argv: main(**{
        k: v for k, v in vars(parser().parse_args(argv)).items() if k != "one_core"})))
