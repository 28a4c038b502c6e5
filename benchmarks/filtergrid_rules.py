"""Work per training step of every temporal rule on the 28 x 10 grid (row-wise MNIST, T = 28).

Each rule of :mod:`gridlib.filtergrid.temporal` trains through the same task
(:func:`gridlib.filtergrid.experiments.make_task`: the rule's batch-mean gradient, then Adam) on
the same real MNIST minibatches of 32, as ``fit`` runs it (``steps`` minibatches per jitted
``lax.scan`` call). The rules are timed in alternating rounds in this one process, the best round
counts, in wall time and CPU time of this process (the machine may be shared); the ratios to
SnAP-1 are taken within the run. Also printed, per step and counted rather than timed:

- the floating-point operations of one training step, from its jaxpr
  (:func:`gridlib.flops.count_flops`: loops multiplied by their length, before XLA fuses);
- the learning state each rule carries forward in time, per parameter
  (:func:`gridlib.filtergrid.temporal.state_floats_per_parameter`).

Exact RTRL costs about a second per step here: it is timed on fewer steps and rounds.
Saves ``results/bench/filtergrid_rules.json``. Run:
``python benchmarks/filtergrid_rules.py [--rounds R] [--steps K] [--skip-rtrl]``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import cli, data, flags, report, results
from gridlib.experiment import make_epoch_chunk
from gridlib.filtergrid.experiments import make_task
from gridlib.filtergrid.temporal import state_floats_per_parameter
from gridlib.flops import count_flops

N, M, T, BATCH, EPOCH = 28, 10, 28, 32, 60_000

#: (label, rule, window, loss mode): every rule the book compares, at the task's own loss.
RULES = (
    ("BPTT", "bptt", None, "sum"),
    ("RTRL (exact)", "rtrl", None, "sum"),
    ("SnAP-0", "snap0", None, "sum"),
    ("SnAP-1", "snap1", None, "sum"),
    ("SnAP-2", "snap2", None, "sum"),
    ("truncated BPTT, K = 1", "tbptt", 1, "sum"),
    ("truncated BPTT, K = 4", "tbptt", 4, "sum"),
    ("online SnAP-1 (per-step loss)", "online_snap1", None, "per_t"),
)


def _timed_once(fn, *args) -> tuple[float, float]:
    """Wall and process-CPU seconds of one call of ``fn`` (already compiled)."""
    w0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - w0, time.process_time() - c0


def _losses(chunk, key):
    """``(state, xs, ys, steps) -> per-step losses`` of one jitted chunk call (all it returns)."""
    return lambda state, xs, ys, steps: chunk(state, xs, ys, steps, key)[1]["loss"]


def parser() -> cli.OneLineParser:
    """This script's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/filtergrid_rules.py", description=__doc__.split("\n")[0])
    p.add_flag("--rounds", flags.integer(1, 100), 3, help="alternated rounds")
    p.add_flag("--steps", flags.integer(1, 1875), 32, help="minibatches per timed call")
    p.add_argument("--skip-rtrl", action="store_true", help="leave exact RTRL out")
    return p


def main(argv=None) -> dict:
    args = parser().parse_args(argv)

    mnist = data.load_mnist(n_train=args.steps * BATCH, n_test=1)
    x_all = jnp.asarray(mnist.x_train).reshape(args.steps, BATCH, -1)
    y_all = jnp.asarray(mnist.y_train).reshape(args.steps, BATCH)
    key = jax.random.PRNGKey(0)
    rules = [r for r in RULES if not (args.skip_rtrl and r[1] == "rtrl")]

    runs = {}
    for label, rule, window, mode in rules:
        task = make_task(rule=rule, window=window, loss_mode=mode)
        state = task.init(key)
        k = 2 if rule == "rtrl" else args.steps  # RTRL: ~1 s per step, time fewer steps
        chunk = make_epoch_chunk(task.train_step)
        call = _losses(chunk, key)
        inputs = (state, x_all[:k], y_all[:k], jnp.arange(k, dtype=jnp.uint32))
        jax.block_until_ready(call(*inputs))  # compile
        flops = count_flops(task.train_step, state, x_all[0], y_all[0], key)
        runs[label] = {"call": call, "inputs": inputs, "steps": k, "flops": flops,
                       "best": (np.inf, np.inf), "rule": rule, "window": window, "mode": mode}
        print(f"compiled {label}: {flops / 1e6:.1f} MFLOP per step", flush=True)

    for r in range(args.rounds):
        for run in runs.values():
            if run["rule"] == "rtrl" and r >= 2:
                continue  # two rounds of RTRL suffice: it is slower than the noise by far
            wall, cpu = _timed_once(run["call"], *run["inputs"])
            run["best"] = (min(run["best"][0], wall / run["steps"]),
                           min(run["best"][1], cpu / run["steps"]))

    ref = runs["SnAP-1"]
    rows = []
    for label, run in runs.items():
        wall, cpu = run["best"]
        rows.append({
            "rule": label,
            "ms per step (wall)": 1e3 * wall,
            "CPU-ms per step": 1e3 * cpu,
            "CPU time / SnAP-1": cpu / ref["best"][1],
            "MFLOP per step": run["flops"] / 1e6,
            "FLOPs / SnAP-1": run["flops"] / ref["flops"],
            "state floats per parameter": state_floats_per_parameter(
                run["rule"], N, M, window=run["window"], t_len=T),
            "s per 60k epoch (wall)": wall * EPOCH / BATCH,
            "steps timed": run["steps"],
        })
    print(report.markdown_table(rows, floatfmt=".3g"))
    print(f"(Adam, batch {BATCH}, real MNIST, {jax.device_count()} JAX device(s), "
          f"{results.provenance()['cpu']}; best of {args.rounds} alternating rounds; BPTT's "
          f"state is its stored trajectory at T = {T})")
    results.save("bench/filtergrid_rules",
                 config={"grid": [N, M], "T": T, "batch": BATCH, "optimizer": "adam",
                         "steps": args.steps, "rounds": args.rounds,
                         "rules": [f"{r}:{w}:{m}" for _, r, w, m in rules]},
                 metrics={"rows": rows})
    return {"rows": rows}


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
