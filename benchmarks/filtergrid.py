"""Throughput of the analog-filter grid on row-wise MNIST shapes (28 x 10 grid, T = 28, float32).

Measures examples/second for the forward pass, BPTT, exact RTRL and SnAP-1 (the vectorised
hyperplane schedules), the naive per-cell raster loop of the original code (forward and SnAP-1),
and whole training steps as ``fit`` runs them (SnAP-1 + Adam at batch 32, SnAP-1 + per-group SGD
at batch 1, many steps per jitted call). Prints a table with the ratio to the naive loop and the
implied seconds per 60k-example epoch, and saves it as ``results/bench/filtergrid.json``.

Side by side with the original code (``gridlib.filtergrid.anchor``; skipped with a message when
its folder is absent, the naive loop above then stands in for it): the original's own training
step (its scripts' jitted step, one Python call per step) and the library's, on identical
batches and from identical parameters, alternated round by round in this one process, at
batch 32 (SnAP-1 + Adam) and batch 1 (SnAP-1 + per-group SGD). The library is timed both one
jitted call per step (like for like: :func:`gridlib.experiment.make_train_step`, each step's
minibatch handed over as a ready array, as to the original) and as ``fit`` runs it (many steps
per call). Ratios taken in one run are fair under load; absolute times are not.

    flock /tmp/gridlib-cpu.lock .venv/bin/python benchmarks/filtergrid.py
    .venv/bin/python benchmarks/filtergrid.py --only-side-by-side   # prints, saves nothing
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import cli, flags, results
from gridlib.experiment import make_epoch_chunk, make_train_step
from gridlib.filtergrid import model, reference
from gridlib.filtergrid.bptt import bptt_grads
from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE, image_rows, make_task
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap1 import default_chain, snap1_batch_grads

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


#: Goals of the side-by-side ratios (original time per step / library time per step).
GOALS = {32: 25.0, 1: 100.0}


def _mnist_like(key, shape):
    """Sparse images with pixels ``k/256`` like :func:`gridlib.data.load_mnist`'s."""
    k1, k2 = jax.random.split(key)
    return jnp.floor(256 * jax.random.uniform(k1, shape)) / 256 * (jax.random.uniform(k2, shape) < 0.2)


def side_by_side(rounds: int = 3, steps: dict[int, int] | None = None) -> list[dict]:
    """Rows timing the original's training step against the library's (see the module docstring).

    Every round runs, from the same start: the original for ``steps[b]`` steps, the library one
    jitted call per step on the same batches (:func:`gridlib.experiment.make_train_step`), and
    the library as ``fit`` runs it (one call of ``chunk[b]`` steps whose first ``steps[b]``
    batches are the same). Both codes get each step's minibatch as a ready array; the library's
    one-call loop is also timed indexing the epoch per step (``library_indexed``). Per-step
    times are the best round of each; the median round is kept beside it.
    """
    from gridlib.filtergrid import anchor

    if not anchor.available():
        print(f"\nside by side: skipped -- {anchor.unavailable_message()}; the naive raster loop "
              "above is the reference instead", flush=True)
        return []
    steps = steps or {32: 32, 1: 256}
    g = anchor.load_anchor()
    fns = anchor.original_functions(g)  # Adam 3e-3; per-group SGD eta0 = 1e-2: the scripts' values
    print(f"\nside by side with the original code (commit {anchor.ANCHOR_COMMIT[:7]}), "
          f"alternated in one process, {rounds} rounds:", flush=True)
    rows, key = [], jax.random.PRNGKey(0)
    for label, opt, bs, chunk_k in (("SnAP-1 + Adam", "adam", 32, 64),
                                    ("SnAP-1 + per-group SGD", "sgd", 1, 2048)):
        n = min(steps[bs], chunk_k)
        task = make_task(rule="snap1", optimizer=opt)
        state0 = task.init(jax.random.PRNGKey(0))
        p0 = anchor.to_block_params(g, state0.params)
        o0 = fns.opt.init(p0)
        x_img = _mnist_like(jax.random.PRNGKey(5), (chunk_k, bs, N * T))
        y_img = jax.random.randint(jax.random.PRNGKey(6), (chunk_k, bs), 0, M)
        # the original's input: exactly the sequences the library's step builds from the images
        seqs = image_rows(x_img.reshape(-1, N * T), N, 10.0, MNIST_PIXEL_SCALE).reshape(chunk_k, bs, T, N)
        lib_step = make_train_step(task.train_step, task.compiler_options)  # state donated
        chunk = make_epoch_chunk(task.train_step, task.compiler_options)
        step_ids = jnp.arange(chunk_k, dtype=jnp.uint32)
        # Each step's minibatch as a ready array, for both codes, as a data loader hands them
        # over: indexing the epoch per step (x[i]) is an eager dispatch of its own, timed
        # separately below ("library_indexed").
        pick = (lambda a, i: a[i]) if opt == "adam" else (lambda a, i: a[i, 0])
        orig_in = jax.block_until_ready([(pick(seqs, i), pick(y_img, i)) for i in range(n)])
        lib_in = jax.block_until_ready([(x_img[i], y_img[i]) for i in range(n)])

        def original(_, orig_in=orig_in, p0=p0, o0=o0, opt=opt):
            p, o, losses = p0, o0, []
            for seq, tgt in orig_in:
                if opt == "adam":
                    p, o, loss, _ = fns.train_step(p, o, seq, tgt)
                else:
                    p, loss, _ = fns.sgd_step(p, seq, tgt)
                losses.append(float(loss))  # the scripts read every step's loss
            return losses

        def library(s, lib_in=lib_in, lib_step=lib_step):
            losses = []
            for x, y in lib_in:
                s, m = lib_step(s, x, y, key)
                losses.append(float(m["loss"]))  # read every step's loss, as the original
            return losses

        def library_indexed(s, n=n, x_img=x_img, y_img=y_img, lib_step=lib_step):
            losses = []
            for i in range(n):
                s, m = lib_step(s, x_img[i], y_img[i], key)
                losses.append(float(m["loss"]))
            return losses

        def library_fit(_, state0=state0, x_img=x_img, y_img=y_img, chunk=chunk, step_ids=step_ids):
            _, m = chunk(state0, x_img, y_img, step_ids, key)
            return np.asarray(m["loss"]).tolist()

        def fresh(state0=state0):  # a donated state is used up: each run starts from a copy
            return jax.block_until_ready(jax.tree.map(jnp.copy, state0))

        runs = {"original": (original, n), "library": (library, n),
                "library_indexed": (library_indexed, n), "library_fit": (library_fit, chunk_k)}
        first = {name: fn(fresh())[0] for name, (fn, _) in runs.items()}  # compiles every step once
        per_step: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}  # process CPU time, all threads
        for _ in range(rounds):
            for name, (fn, count) in runs.items():
                start = fresh()
                t0, c0 = time.perf_counter(), time.process_time()
                fn(start)
                per_step[name].append((time.perf_counter() - t0) / count)
                cpu[name].append((time.process_time() - c0) / count)
        best = {name: min(v) for name, v in per_step.items()}
        med = {name: float(np.median(v)) for name, v in per_step.items()}
        best_cpu = {name: min(v) for name, v in cpu.items()}
        ratio, ratio_fit = best["original"] / best["library"], best["original"] / best["library_fit"]
        row = {
            "what": f"side by side: {label}, batch {bs}",
            "original_ms_per_step": 1e3 * best["original"],
            "library_ms_per_step": 1e3 * best["library"],
            "library_fit_ms_per_step": 1e3 * best["library_fit"],
            "library_indexed_ms_per_step": 1e3 * best["library_indexed"],
            "inputs": "each step's minibatch a ready array, for both codes",
            "ratio": ratio, "ratio_fit": ratio_fit,
            "ratio_median_rounds": med["original"] / med["library"],
            "ratio_fit_median_rounds": med["original"] / med["library_fit"],
            "cpu_ms_per_step": {k: 1e3 * v for k, v in best_cpu.items()},
            "ratio_cpu": best_cpu["original"] / best_cpu["library"],
            "ratio_fit_cpu": best_cpu["original"] / best_cpu["library_fit"],
            "goal": GOALS[bs], "rounds": rounds, "original_steps_per_round": n,
            "fit_steps_per_call": chunk_k,
            "first_step_loss": {"original": first["original"], "library": first["library"]},
            "examples_per_s": bs / best["library_fit"], "epoch_s": EPOCH * best["library_fit"] / bs,
            "speedup_vs_naive": None,
        }
        rows.append(row)
        print(f"  batch {bs:2d} {label:24s} original {1e3 * best['original']:8.2f} ms/step | library "
              f"{1e3 * best['library']:7.3f} ms/step (x{ratio:6.1f}), as fit runs it "
              f"{1e3 * best['library_fit']:7.3f} ms/step (x{ratio_fit:6.1f}); goal x{GOALS[bs]:.0f}\n"
              f"           CPU time: x{row['ratio_cpu']:6.1f} one call per step, x{row['ratio_fit_cpu']:6.1f} as fit "
              f"runs it; first-step loss {first['original']:.6f} vs {first['library']:.6f}\n"
              f"           library one call per step indexing x[i] in the loop: "
              f"{1e3 * best['library_indexed']:7.3f} ms/step", flush=True)
    return rows


def parser() -> cli.OneLineParser:
    """This script's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/filtergrid.py", description=__doc__.split("\n")[0])
    p.add_flag("--batch", flags.integer(1, 4096), 32, help="examples per step")
    p.add_flag("--min-time", flags.real(0.0, 600.0, open_low=True), 2.0, help="seconds per timing")
    p.add_flag("--rounds", flags.integer(1, 100), 3, help="side-by-side rounds")
    p.add_argument("--only-side-by-side", action="store_true",
                   help="time only the original against the library; print, save nothing")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.only_side_by_side:
        side_by_side(args.rounds)
        return
    b = args.batch
    params = model.init_params(jax.random.PRNGKey(0), N, M)
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
        jax.jit(jax.vmap(lambda p, x: model.forward(p, x).y, in_axes=(None, 0))), params, xs,
        min_time=mt), b, naive_fwd)
    chain = default_chain(b)
    add(f"hyperplane: SnAP-1 gradient ({b // chain} lanes of {chain} examples)", timed(
        jax.jit(snap1_batch_grads), params, xs, labels, min_time=mt), b, naive_snap)
    add("hyperplane: SnAP-1 gradient (one example per lane)", timed(
        jax.jit(functools.partial(snap1_batch_grads, chain=1)), params, xs, labels, min_time=mt),
        b, naive_snap)
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

    rows += side_by_side(args.rounds)

    cpu = results.provenance()["cpu"]
    print(f"\n{jax.device_count()} JAX device(s), {cpu}; the original code: about 246 s/epoch "
          "for SnAP-1 at batch 32 on a comparable 2-core CPU")
    results.save("bench/filtergrid", config={"batch": b, "grid": [N, M], "T": T, "chain": chain,
                                             "dtype": "float32", "epoch_examples": EPOCH},
                 metrics={r["what"]: r for r in rows})


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
