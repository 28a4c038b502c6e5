"""Every system's training step against a lower bound from this CPU's own rates, in one run.

In one process (``gridlib.ceiling``): measures this machine's rates -- a large float32 matrix
product (GFLOP/s), a fused chain of multiply-adds (operations/s), ``sin``, ``exp`` and ``tanh``
(evaluations/s), and the fixed cost of one iteration of a small sequential ``lax.scan`` -- then,
for every system's training step as ``fit`` runs it (the filter grid's SnAP-1 and BPTT steps at
batch 32 and batch 1, EP 784-500-10, GLE MNIST-1D 15k, NeuralGrid 64x64 and 128x128 at batch
256, gridnet's CPU preset), counts its operations by kind (``gridlib.flops.count_ops``) and its
sequential stages (``gridlib.flops.count_stages``), computes the least time those allow,

    max(matmul / matmul rate + sum of transcendental / its rate + other / elementwise rate,
        stages * scan step),

times the step (median of alternating rounds, compiled first) and prints, per system: bound,
measured, fraction = bound / measured and the term that limits the bound. The rate kernels
and the steps alternate round by round, so load from other work reaches them alike; the
machine may be shared, and the fractions say more than the absolute times.

``GRIDLIB_SCALE=ci`` runs the small preset (one shape per system, a few steps per call; under
a minute on two idle cores). Saves ``results/bench/ceiling.json`` (``--publish`` the first
time; ``GRIDLIB_RESULTS`` redirects it; CI-scale runs go to the scratch folder)::

    flock /tmp/gridlib-cpu.lock .venv/bin/python benchmarks/ceiling.py --publish
"""

from __future__ import annotations

import os

import jax

from gridlib import ceiling, cli, flags, report, results, scale


def parser() -> cli.OneLineParser:
    """This script's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/ceiling.py", description=__doc__.split("\n")[0])
    p.add_flag("--rounds", flags.integer(0, 100), 0,
               help="alternating timing rounds (0: 3 at CI scale, else 5)")
    p.add_argument("--publish", action="store_true",
                   help="add the record to the book's results (its first full-scale run)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    m = ceiling.measure(rounds=args.rounds or None)
    print(report.markdown_table(ceiling.rate_rows(m)))
    print()
    print(report.markdown_table(ceiling.rows(m)))
    print(f"\n{ceiling.finding(m)}")
    cpu = results.provenance()["cpu"]
    print(f"({cpu}, {len(os.sched_getaffinity(0))} cores, {jax.device_count()} JAX device(s); "
          f"steps: median of {m['rounds']} rounds; rates: best of {m['rounds']} x "
          f"{ceiling.RATE_REPEATS} timings)")
    config = {"systems": [s["name"] for s in m["systems"]],
              "steps_per_call": [s["steps_per_call"] for s in m["systems"]],
              "rounds": m["rounds"], "cores": len(os.sched_getaffinity(0)),
              "preset": scale.current()}  # fmt: skip
    print("->", results.save("bench/ceiling", config=config, metrics=m,
                             publish=args.publish or None))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
