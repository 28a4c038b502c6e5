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
per call). At batch 32 the library is also timed one call per step with each minibatch split
over one forced CPU device per core (``library_split``: ``make_task(mesh=...)``,
:func:`gridlib.devices.cpu_mesh`; the same gradient up to summation order), the form that uses
both cores where one call of the one-device step keeps to one. Ratios taken in one run are fair
under load; absolute times are not.

With XLA's small-loop option (:data:`XLA_OPTION`): XLA:CPU runs a ``while`` loop one operation at
a time (a thunk per operation and iteration) unless the loop's bytes accessed are below a
threshold, 1,024 bytes by default (:data:`XLA_DEFAULT_BYTES`); below it, a loop free of dots,
convolutions, scatters and custom calls is compiled into one kernel. The original's step is
made of such loops, larger than the default, so a setting its authors could have used changes
its speed. Each round therefore also times the original and the library (one call per step
and as ``fit`` runs it) in a child process of this script whose ``XLA_FLAGS`` add
``--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=`` :data:`XLA_BYTES`
(:class:`XlaChild`), on the same batches from the same parameters, alternating with this
process's round (the first to run alternates too). The record's config states both thresholds
(``xla_flag``); each side-by-side row gains ``xla_flag``:

- ``original_ms_per_step``, ``library_ms_per_step``, ``library_fit_ms_per_step``: the child's
  best round, as the row's own fields are this process's;
- ``ratio``, ``ratio_fit`` (and ``ratio_median_rounds``, ``ratio_cpu``): the original over the
  library with the option set for both; the row's own ``ratio``/``ratio_fit``, from the same
  alternated rounds, are the ratios with XLA's default;
- ``original_speedup``, ``library_speedup``: each code's best time with the default over its
  best time with the option;
- ``first_step_loss`` in the child, and ``small_loop_hoisted``: whether a probe loop larger than
  the default threshold compiled into one kernel there (:func:`small_loop_hoisted`; ``True``
  shows that XLA read the option).

    flock /tmp/gridlib-cpu.lock .venv/bin/python benchmarks/filtergrid.py
    .venv/bin/python benchmarks/filtergrid.py --only-side-by-side   # prints, saves nothing

The record's config gained ``xla_flag``: the first run after that change replaces the
published record only with ``--overwrite``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import cli, devices, flags, results
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

#: The side-by-side's two steps: label, optimizer, batch, steps per ``fit`` call.
PAIRS = (("SnAP-1 + Adam", "adam", 32, 64), ("SnAP-1 + per-group SGD", "sgd", 1, 2048))

#: XLA:CPU's backend option read by its ``SmallWhileLoopHoistingPass`` (``xla/service/cpu``): a
#: ``while`` loop without dots, convolutions, scatters or custom calls whose bytes accessed are
#: below it is compiled into one kernel instead of run one operation per thunk. It is an entry
#: of ``--xla_backend_extra_options`` (which has the only help text: "Extra options to pass to a
#: backend"), not a flag of its own: ``XLA_FLAGS=--xla_cpu_small_while_loop_byte_threshold=N``
#: stops the process ("Unknown flag in XLA_FLAGS").
XLA_OPTION = "xla_cpu_small_while_loop_byte_threshold"
#: XLA's own threshold in bytes, used when the option is not set (``cpu_options.cc``).
XLA_DEFAULT_BYTES = 1024
#: The threshold the child process sets, bytes. Counted in the compiled steps (``xla_cpu_small_call``
#: in the optimised HLO): at 1,024 bytes 5 of the original's loops are hoisted, at 64 KiB 14 (batch 1)
#: and 12 (batch 32), from 512 KiB on 15 and 14 -- every loop the pass can take, at both batch
#: sizes, the library's two included; 1 GiB hoists no more. So any value from 512 KiB compiles the
#: same programs; 1 MiB leaves a margin.
XLA_BYTES = 2**20
#: What the child times: the original, and the library both ways the ratios use.
XLA_RUNS = ("original", "library", "library_fit")
#: Prefix of the child's answers on its standard output (anything else there is passed over).
_MARK = "@@filtergrid-child "


def xla_config() -> dict:
    """The record's ``config["xla_flag"]``: the option, XLA's default and the value set."""
    return {"option": XLA_OPTION, "xla_default_bytes": XLA_DEFAULT_BYTES, "bytes": XLA_BYTES,
            "XLA_FLAGS": f"--xla_backend_extra_options={XLA_OPTION}={XLA_BYTES}"}


def xla_child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment by default) with the option added to ``XLA_FLAGS``.

    Raises:
        ValueError: if ``XLA_FLAGS`` already sets ``xla_backend_extra_options``: this process
            would then not run with XLA's defaults, and the child's setting would replace it.
    """
    env = dict(os.environ if base is None else base)
    have = env.get("XLA_FLAGS", "")
    if "xla_backend_extra_options" in have:
        raise ValueError(f"XLA_FLAGS already sets xla_backend_extra_options ({have!r}); "
                         "the side by side needs XLA's default in its own process")
    env["XLA_FLAGS"] = f"{have} {xla_config()['XLA_FLAGS']}".strip()
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), *filter(None, [env.get("PYTHONPATH")])])
    return env


def small_loop_hoisted() -> bool:
    """Whether this process compiles a small loop (100 iterations over 4 KiB, above XLA's
    default threshold, far below :data:`XLA_BYTES`) into one kernel: ``True`` where the option
    is set, ``False`` with XLA's default."""
    loop = jax.jit(lambda v: jax.lax.fori_loop(0, 100, lambda i, u: 0.5 * jnp.sin(u) + u, v))
    return "xla_cpu_small_call" in loop.lower(jnp.zeros(1024, jnp.float32)).compile().as_text()


def _mnist_like(key, shape):
    """Sparse images with pixels ``k/256`` like :func:`gridlib.data.load_mnist`'s."""
    k1, k2 = jax.random.split(key)
    return jnp.floor(256 * jax.random.uniform(k1, shape)) / 256 * (jax.random.uniform(k2, shape) < 0.2)


def _contestants(g, fns, opt: str, bs: int, chunk_k: int, n: int, names=None, mesh=None):
    """The side-by-side's runs at one batch size, each ``(fn(state) -> losses, steps)``, with
    ``fresh()`` (a copy of the start state) and each run's first loss (which compiles it).

    The original for ``n`` steps, the library one jitted call per step on the same batches
    (:func:`gridlib.experiment.make_train_step`), indexing the epoch per step
    (``library_indexed``), and as ``fit`` runs it (one call of ``chunk_k`` steps whose first
    ``n`` batches are the same); with ``mesh`` (a batch it divides), one call per step with the
    minibatch split over its devices (``library_split``); only ``names`` where given, and no
    ``original`` where ``g`` (the loaded anchor) is ``None``. Every process that builds them gets the same batches and
    parameters (fixed keys).
    """
    from gridlib.filtergrid import anchor

    key = jax.random.PRNGKey(0)
    task = make_task(rule="snap1", optimizer=opt)
    state0 = task.init(jax.random.PRNGKey(0))
    if g is not None:
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
    # separately ("library_indexed").
    pick = (lambda a, i: a[i]) if opt == "adam" else (lambda a, i: a[i, 0])
    orig_in = jax.block_until_ready([(pick(seqs, i), pick(y_img, i)) for i in range(n)])
    lib_in = jax.block_until_ready([(x_img[i], y_img[i]) for i in range(n)])

    def original(_):
        p, o, losses = p0, o0, []
        for seq, tgt in orig_in:
            if opt == "adam":
                p, o, loss, _ = fns.train_step(p, o, seq, tgt)
            else:
                p, loss, _ = fns.sgd_step(p, seq, tgt)
            losses.append(float(loss))  # the scripts read every step's loss
        return losses

    def library(s):
        losses = []
        for x, y in lib_in:
            s, m = lib_step(s, x, y, key)
            losses.append(float(m["loss"]))  # read every step's loss, as the original
        return losses

    split_step = None
    if mesh is not None and mesh.size > 1 and bs % mesh.size == 0:
        split_task = make_task(rule="snap1", optimizer=opt, mesh=mesh)
        split_step = make_train_step(split_task.train_step, split_task.compiler_options)

    def library_split(s):
        losses = []
        for x, y in lib_in:
            s, m = split_step(s, x, y, key)
            losses.append(float(m["loss"]))
        return losses

    def library_indexed(s):
        losses = []
        for i in range(n):
            s, m = lib_step(s, x_img[i], y_img[i], key)
            losses.append(float(m["loss"]))
        return losses

    def library_fit(_):
        _, m = chunk(state0, x_img, y_img, step_ids, key)
        return np.asarray(m["loss"]).tolist()

    def fresh():  # a donated state is used up: each run starts from a copy
        return jax.block_until_ready(jax.tree.map(jnp.copy, state0))

    runs = {"original": (original, n), "library": (library, n),
            "library_indexed": (library_indexed, n), "library_fit": (library_fit, chunk_k)}
    if split_step is not None:
        runs["library_split"] = (library_split, n)
    runs = {k: v for k, v in runs.items()
            if (names is None or k in names) and (g is not None or k != "original")}
    first = {name: fn(fresh())[0] for name, (fn, _) in runs.items()}  # compiles every step once
    return runs, fresh, first


def _round(runs: dict, fresh) -> dict[str, tuple[float, float]]:
    """One timing round: each run from a fresh start, ``{name: (wall s, CPU s) per step}``
    (CPU time of this process, all threads)."""
    out = {}
    for name, (fn, count) in runs.items():
        start = fresh()
        t0, c0 = time.perf_counter(), time.process_time()
        fn(start)
        out[name] = ((time.perf_counter() - t0) / count, (time.process_time() - c0) / count)
    return out


class XlaChild:
    """This script in a child process whose ``XLA_FLAGS`` add :data:`XLA_OPTION` (see the
    module docstring): it builds the same runs (:data:`XLA_RUNS`) and times one round when
    asked. Its first answer, :attr:`hello`, is its ``XLA_FLAGS`` and
    :func:`small_loop_hoisted`, sent before it loads anything else."""

    def __init__(self, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--xla-child"], env=xla_child_env(env),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._answer()

    def _answer(self) -> dict:
        while line := self.proc.stdout.readline():
            if line.startswith(_MARK):
                return json.loads(line[len(_MARK):])
        raise RuntimeError(f"the child process with {XLA_OPTION} ended (exit status "
                           f"{self.proc.wait()}) without answering")

    def ask(self, *words) -> dict:
        """Send one command (``setup BATCH STEPS`` or ``round BATCH``) and return the answer."""
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> int:
        """End the child (it stops at the end of its input) and return its exit status."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=120)


def _tell(message: dict) -> None:
    print(_MARK + json.dumps(message), flush=True)


def xla_child() -> None:
    """The child's side of :class:`XlaChild`: answer each line of standard input."""
    _tell({"XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "small_loop_hoisted": small_loop_hoisted()})
    built = {}
    while line := sys.stdin.readline():
        cmd, bs, *rest = line.split()
        if cmd == "setup":
            from gridlib.filtergrid import anchor

            g = anchor.load_anchor()
            _, opt, b, chunk_k = next(p for p in PAIRS if p[2] == int(bs))
            runs, fresh, first = _contestants(g, anchor.original_functions(g), opt, b, chunk_k,
                                              int(rest[0]), names=XLA_RUNS)
            built[b] = (runs, fresh)
            _tell({"first_step_loss": first})
        else:
            _tell(_round(*built[int(bs)]))


def xla_fields(default: dict[str, list[float]], flagged: dict[str, list[float]],
               flagged_cpu: dict[str, list[float]], first: dict, hoisted: bool) -> dict:
    """A row's ``xla_flag`` from per-step seconds per round, ``{run: [s, ...]}``: this
    process's (``default``) and the child's (wall and CPU)."""
    best = {k: min(v) for k, v in flagged.items()}
    med = {k: float(np.median(v)) for k, v in flagged.items()}
    cpu = {k: min(v) for k, v in flagged_cpu.items()}
    return {
        "original_ms_per_step": 1e3 * best["original"],
        "library_ms_per_step": 1e3 * best["library"],
        "library_fit_ms_per_step": 1e3 * best["library_fit"],
        "ratio": best["original"] / best["library"],
        "ratio_fit": best["original"] / best["library_fit"],
        "ratio_median_rounds": med["original"] / med["library"],
        "ratio_cpu": cpu["original"] / cpu["library"],
        "original_speedup": min(default["original"]) / best["original"],
        "library_speedup": min(default["library"]) / best["library"],
        "first_step_loss": {"original": first["original"], "library": first["library"]},
        "small_loop_hoisted": hoisted,
    }


def side_by_side(rounds: int = 3, steps: dict[int, int] | None = None, xla: bool = True,
                 mesh=None) -> list[dict]:  # fmt: skip
    """Rows timing the original's training step against the library's (see the module docstring).

    Every round runs, from the same start, the runs of :func:`_contestants`: both codes get
    each step's minibatch as a ready array; the library's one-call loop is also timed indexing
    the epoch per step (``library_indexed``), and split over ``mesh`` where given and the batch
    allows (``library_split``). With ``xla``, each round also runs the original
    and the library in :class:`XlaChild`, alternating with this process's runs. Per-step
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
    child = XlaChild() if xla else None
    print(f"\nside by side with the original code (commit {anchor.ANCHOR_COMMIT[:7]}), "
          f"alternated in one process, {rounds} rounds"
          + (f", and in a child process with XLA_FLAGS {child.hello['XLA_FLAGS']!r}:" if child else ":"),
          flush=True)
    rows = []
    try:
        for label, opt, bs, chunk_k in PAIRS:
            n = min(steps[bs], chunk_k)
            runs, fresh, first = _contestants(g, fns, opt, bs, chunk_k, n, mesh=mesh)
            child_first = child.ask("setup", bs, n)["first_step_loss"] if child else {}
            per_step: dict[str, list[float]] = {name: [] for name in runs}
            cpu: dict[str, list[float]] = {name: [] for name in runs}  # process CPU time
            flagged: dict[str, list[float]] = {name: [] for name in XLA_RUNS}
            flagged_cpu: dict[str, list[float]] = {name: [] for name in XLA_RUNS}
            for r in range(rounds):
                for in_child in ((False, True) if r % 2 == 0 else (True, False)):
                    if in_child and child is None:
                        continue
                    wall_to, cpu_to = (flagged, flagged_cpu) if in_child else (per_step, cpu)
                    times = child.ask("round", bs) if in_child else _round(runs, fresh)
                    for name, (wall, proc) in times.items():
                        wall_to[name].append(wall)
                        cpu_to[name].append(proc)
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
            if "library_split" in best:
                row.update({
                    "library_split_ms_per_step": 1e3 * best["library_split"],
                    "split_devices": mesh.size,
                    "ratio_split": best["original"] / best["library_split"],
                    "ratio_split_median_rounds": med["original"] / med["library_split"],
                    "ratio_split_cpu": best_cpu["original"] / best_cpu["library_split"],
                    "first_step_loss_split": first["library_split"]})  # fmt: skip
                print(f"           library split over {mesh.size} devices, one call per step: "
                      f"{1e3 * best['library_split']:7.3f} ms/step (x{row['ratio_split']:6.1f})",
                      flush=True)  # fmt: skip
            if child:
                row["xla_flag"] = xla_fields(per_step, flagged, flagged_cpu, child_first,
                                             child.hello["small_loop_hoisted"])
            rows.append(row)
            print(f"  batch {bs:2d} {label:24s} original {1e3 * best['original']:8.2f} ms/step | library "
                  f"{1e3 * best['library']:7.3f} ms/step (x{ratio:6.1f}), as fit runs it "
                  f"{1e3 * best['library_fit']:7.3f} ms/step (x{ratio_fit:6.1f}); goal x{GOALS[bs]:.0f}\n"
                  f"           CPU time: x{row['ratio_cpu']:6.1f} one call per step, x{row['ratio_fit_cpu']:6.1f} as fit "
                  f"runs it; first-step loss {first['original']:.6f} vs {first['library']:.6f}\n"
                  f"           library one call per step indexing x[i] in the loop: "
                  f"{1e3 * best['library_indexed']:7.3f} ms/step", flush=True)
            if child:
                x = row["xla_flag"]
                print(f"           with {XLA_OPTION}={XLA_BYTES} (child): original "
                      f"{x['original_ms_per_step']:8.2f} ms/step (x{x['original_speedup']:.1f} faster), "
                      f"library {x['library_ms_per_step']:7.3f} ms/step (x{x['library_speedup']:.2f}); "
                      f"ratio x{x['ratio']:.1f} (default x{ratio:.1f}), as fit runs it "
                      f"x{x['ratio_fit']:.1f}; first-step loss {x['first_step_loss']['original']:.6f} "
                      f"vs {x['first_step_loss']['library']:.6f}", flush=True)
    finally:
        if child:
            child.close()
    return rows


def parser() -> cli.OneLineParser:
    """This script's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/filtergrid.py", description=__doc__.split("\n")[0])
    p.add_flag("--batch", flags.integer(1, 4096), 32, help="examples per step")
    p.add_flag("--min-time", flags.real(0.0, 600.0, open_low=True), 2.0, help="seconds per timing")
    p.add_flag("--rounds", flags.integer(1, 100), 3, help="side-by-side rounds")
    p.add_argument("--only-side-by-side", action="store_true",
                   help="time only the original against the library; print, save nothing")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the published record even where its config differs")
    p.add_argument("--xla-child", action="store_true",
                   help="internal: run as the side by side's child process (commands on stdin)")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.xla_child:
        xla_child()
        return
    mesh = devices.cpu_mesh()  # one CPU device per core, before anything uses JAX
    if args.only_side_by_side:
        side_by_side(args.rounds, mesh=mesh)
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

    rows += side_by_side(args.rounds, mesh=mesh)

    cpu = results.provenance()["cpu"]
    print(f"\n{jax.device_count()} JAX device(s), {cpu}; the original code: about 246 s/epoch "
          "for SnAP-1 at batch 32 on a comparable 2-core CPU")
    results.save("bench/filtergrid", config={"batch": b, "grid": [N, M], "T": T, "chain": chain,
                                             "dtype": "float32", "epoch_examples": EPOCH,
                                             "xla_flag": xla_config()},
                 metrics={r["what"]: r for r in rows}, overwrite=args.overwrite or None)


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
