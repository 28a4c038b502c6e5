"""Throughput of a GLE seed ensemble split over 1, 2 and 4 forced CPU devices.

The ensemble is ``gle-mnist1d``'s task (the 15k network, plateau schedule off) on random
sequences of the published length; the values do not change the work. Each device count runs
in its own subprocess, started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
(JAX fixes the count at start-up), and times the same jitted chunk of minibatches that
:func:`gridlib.experiment.fit` runs, split over the devices by
:func:`gridlib.devices.shard_ensemble_task`. Prints seed-examples per second (wall and per
CPU-second of the subprocess) and the ratio to the 1-device run of the same invocation; saves
``results/bench/devices.json`` (``runs/results/`` unless published).

Forced CPU devices share this machine's cores, so this measures overhead, not a speed-up: no
hardware is added. A wall-time ratio above 1 means only that each forced device runs its share
on a thread of its own, so small products that one device leaves on one core spread over
several; per CPU-second the ratio shows what the split costs. Neither predicts GPUs.

Run: ``python benchmarks/devices.py [n_seeds] [n_batches] [seq_len]`` (defaults 4, 2, 360;
device counts that do not divide ``n_seeds`` are skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from gridlib import cli, flags

COUNTS = (1, 2, 4)


def child(n_devices: int, n_seeds: int, n_batches: int, seq_len: int) -> dict:
    """Time the ensemble on ``n_devices`` devices of this process (the subprocess's work)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gridlib import devices
    from gridlib.experiment import make_epoch_chunk
    from gridlib.gle import mnist1d as m1d

    assert jax.local_device_count() == n_devices, jax.devices()
    setup = m1d.setup_for("e2e15k", schedule=False, seq_len=seq_len)
    task = m1d.make_task(setup, tuple(range(n_seeds)), n_train=setup.batch * n_batches)
    task = devices.shard_ensemble_task(task, devices.local_mesh(n_devices), n_seeds)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(n_batches, setup.batch, seq_len)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 10, (n_batches, setup.batch)))
    steps = jnp.arange(n_batches, dtype=jnp.uint32)
    chunk, key = make_epoch_chunk(task.train_step), jax.random.PRNGKey(0)
    state = task.init(key)
    state, _ = chunk(state, xs, ys, steps, key)  # compile
    jax.block_until_ready(state)
    wall = cpu = float("inf")
    for _ in range(2):  # the better of two: other work on a shared machine only slows a run
        t0, c0 = time.perf_counter(), time.process_time()
        state, _ = chunk(state, xs, ys, steps, key)
        jax.block_until_ready(state)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    n = n_seeds * n_batches * setup.batch
    return {"devices": n_devices, "seed-examples/s (wall)": n / wall, "seed-examples per CPU-s": n / cpu}


def main(n_seeds: int = 4, n_batches: int = 2, seq_len: int = 360) -> dict:
    from gridlib import report, results

    rows = []
    for n in (c for c in COUNTS if n_seeds % c == 0):
        xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
        env = {**os.environ, "XLA_FLAGS": xla_flags.strip(), "JAX_PLATFORMS": "cpu"}
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), str(n_seeds),
                               str(n_batches), str(seq_len)], env=env, capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"the {n}-device run failed: {proc.stderr.strip()[-2000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for r in rows:
        r["ratio to 1 device (wall)"] = r["seed-examples/s (wall)"] / base["seed-examples/s (wall)"]
        r["ratio to 1 device (CPU-s)"] = r["seed-examples per CPU-s"] / base["seed-examples per CPU-s"]
    print(report.markdown_table(rows, floatfmt=".3g"))
    print(f"({n_seeds} seeds of the GLE 15k network, {n_batches} minibatches of 100 sequences of "
          f"{seq_len} steps per timed call, training only; {os.cpu_count()} CPU cores.)")
    print("Forced CPU devices share this machine's cores: this measures overhead, not a speed-up "
          "(a wall ratio above 1 is more threads on the same cores); GPUs are not measured here.")
    results.save("bench/devices", config={"arch": "e2e15k", "n_seeds": n_seeds, "n_batches": n_batches,
                                          "seq_len": seq_len, "device_counts": [r["devices"] for r in rows]},
                 metrics={"rows": rows})  # fmt: skip
    return {"rows": rows}


def parser() -> cli.OneLineParser:
    """This script's arguments, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/devices.py", description=__doc__.split("\n")[0])
    p.add_flag("n_seeds", flags.integer(1, 1024), 4, help="seeds in the ensemble")
    p.add_flag("n_batches", flags.integer(1, 1000), 2, help="minibatches per timed call")
    p.add_flag("seq_len", flags.integer(1, 100_000), 360, help="steps per sequence")
    return p


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # this script's own subprocess, not a user's command
        print(json.dumps(child(*(int(a) for a in sys.argv[2:]))))
    else:
        raise SystemExit(cli.run_script(lambda argv: main(**vars(parser().parse_args(argv)))))
