"""How close each system's training step runs to what this machine can do at best.

A training step cannot run faster than its arithmetic allows at this machine's best rates, nor
faster than its loop iterations that must follow one another. :func:`measure_rates` measures, in
the calling process, four rates of this CPU as JAX compiles for it:

- **matmul**: FLOP/s of a float32 product of two ``n x n`` matrices (``2n^3`` FLOPs), the
  fastest of several ``n`` up to 2048;
- **elementwise**: operations/s of a fused chain of multiply-adds on an array that fits the
  cache (every operation :func:`gridlib.flops.count_ops` counts as *other*);
- **transcendental**: evaluations/s of ``sin``, ``exp`` and ``tanh``, each a chain of the same
  function on the same array;
- **scan step**: seconds per iteration of a ``lax.scan`` whose body is one ``8 x 8`` matrix
  product: the fixed cost of a sequential stage that runs at least one kernel (XLA compiles a
  body of a few elementwise operations into one loop of a few nanoseconds per iteration;
  every stage of the systems here runs kernels).

:func:`lower_bound` turns a step's operations (:class:`gridlib.flops.OpCounts`) and sequential
stages (:func:`gridlib.flops.count_stages`) into a time no program for that step can beat here:

.. math::

    t \\ge \\max\\Big(&\\frac{F_\\mathrm{mm}}{r_\\mathrm{mm}} + \\sum_f \\frac{n_f}{r_f} \\\\
        &\\quad + \\frac{n_\\mathrm{other}}{r_\\mathrm{el}},\\; S\\, t_\\mathrm{stage}\\Big)

with ``sin`` and ``cos`` at the sine rate, ``tanh`` at the tanh rate and every other
transcendental at the exponential rate. The first term assumes every operation runs at its
best rate, back to back; the second, that a stage costs nothing but its fixed cost. The larger
names what limits the step: *matmul*, *transcendental*, *elementwise* (the largest part of the
first term) or *sequential stages*. The operations are counted from the program as written,
before XLA fuses or simplifies it, so a compiler that removes work could in principle beat the
bound; none of the steps here comes close.

:func:`measure` times every system's training step as :func:`gridlib.experiment.fit` runs it
(``K`` minibatches in one jitted ``lax.scan``, compiled first) in the same process, the rate
kernels and the steps alternating round by round, so that load from other work on the machine
reaches them alike. Each rate kernel is a few milliseconds long and runs
:data:`RATE_REPEATS` times per round; its best timing counts (what the CPU attains: noise
only slows a timing down). Each step runs once per round; its median round counts. ``benchmarks/ceiling.py`` saves the result as the
record :data:`NAME`; :func:`record` reads it (or measures the CI preset now), :func:`rows` and
:func:`term_rows` tabulate it for the book, and :func:`finding` states it in one sentence.

Why this module is long: the rate kernels, the bound and every system's step are one
measurement. The kernels' work and the steps' operations are counted by the same counter and
timed in the same alternating rounds; kept apart, their units and timings would have to be
kept in step across files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import scale
from gridlib.flops import OpCounts, count_ops, count_stages

#: The terms of the bound, in the order :func:`lower_bound` reports them.
TERMS = ("matmul", "transcendental", "elementwise", "sequential stages")
#: Timings of each rate kernel per round (the best of all counts).
RATE_REPEATS = 10
#: The transcendental functions whose rates :func:`measure_rates` measures.
MEASURED_TRANSCENDENTALS = ("sin", "exp", "tanh")


class Rates(NamedTuple):
    """This machine's best rates (see the module docstring).

    Attributes:
        matmul: FLOP/s of a large float32 matrix product.
        elementwise: operations/s of a fused chain of multiply-adds.
        transcendental: evaluations/s of each of :data:`MEASURED_TRANSCENDENTALS`.
        scan_step: seconds per iteration of a small sequential ``lax.scan``.
    """

    matmul: float
    elementwise: float
    transcendental: Mapping[str, float]
    scan_step: float


def transcendental_rate(rates: Rates, primitive: str) -> float:
    """The rate a transcendental ``primitive`` is charged at: ``sin`` and ``cos`` at the sine
    rate, ``tanh`` at the tanh rate, every other one at the exponential rate."""
    family = {"sin": "sin", "cos": "sin", "tanh": "tanh"}.get(primitive, "exp")
    return float(rates.transcendental[family])


def lower_bound(ops: OpCounts, stages: int, rates: Rates) -> dict[str, Any]:
    """The least time of a step with ``ops`` and ``stages`` at ``rates``.

    Returns:
        A dict with ``terms_s`` (seconds for each of ``TERMS``), ``compute_s``,
        ``sequential_s``, ``bound_s`` and ``limit``: the compute time is the sum of the first
        three terms, the bound the larger of the compute and sequential times, and ``limit``
        the term that sets it.

    >>> r = Rates(matmul=1e9, elementwise=1e9, transcendental={"sin": 1e8, "exp": 1e8,
    ...           "tanh": 1e8}, scan_step=1e-6)
    >>> b = lower_bound(OpCounts(matmul=10**9, transcendental={"sin": 10**8}), 10, r)
    >>> b["bound_s"], b["limit"]
    (2.0, 'matmul')
    """
    terms = {
        "matmul": ops.matmul / rates.matmul,
        "transcendental": sum(n / transcendental_rate(rates, p)
                              for p, n in ops.transcendental.items()),
        "elementwise": ops.other / rates.elementwise,
    }  # fmt: skip
    compute = sum(terms.values())
    sequential = stages * rates.scan_step
    limit = "sequential stages" if sequential > compute else max(terms, key=terms.__getitem__)
    return {"terms_s": {**terms, "sequential stages": sequential}, "compute_s": compute,
            "sequential_s": sequential, "bound_s": max(compute, sequential), "limit": limit}


# --------------------------------------------------------------------------------------------
# the rate kernels: (jitted function, arguments, operations per call)
# --------------------------------------------------------------------------------------------


class _Kernel(NamedTuple):
    fn: Callable[..., Any]
    args: tuple
    work: float  # operations (or iterations) per call


def _chain(f: Callable[[jax.Array], jax.Array], size: int, iters: int, depth: int) -> Callable:
    """``iters`` loop iterations, each applying ``f`` ``depth`` times to an array of ``size``."""

    def run(x):
        def body(_, v):
            for _ in range(depth):
                v = f(v)
            return v

        return jax.lax.fori_loop(0, iters, body, x)

    return run


def _kernels(ci: bool) -> dict[str, _Kernel]:
    """The rate kernels, each a few milliseconds long (short calls find the quiet moments of
    a shared machine): products of several sizes, of which the fastest counts."""
    out = {}
    for n in (256, 512) if ci else (256, 512, 1024, 2048):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32) / np.sqrt(n)
        out[f"matmul {n}"] = _Kernel(jax.jit(jnp.matmul), (a, b),
                                     count_ops(jnp.matmul, a, b).matmul)
    size = 1 << 14  # 64 KiB of float32: stays in cache
    x = jax.random.uniform(jax.random.PRNGKey(2), (size,), jnp.float32, 0.1, 1.0)
    el = _chain(lambda v: v * 0.999 + 0.001, size, 50, 16)
    out["elementwise"] = _Kernel(jax.jit(el), (x,), count_ops(el, x).other)
    # each chain stays in range: sin and tanh shrink towards 0 slowly, exp(-v) maps (0, 1] into
    # itself; the one negation per exp is left uncounted (the rate errs high, the bound low)
    for name, f in (("sin", jnp.sin), ("exp", lambda v: jnp.exp(-v)), ("tanh", jnp.tanh)):
        fn = _chain(f, size, 10, 8)
        out[name] = _Kernel(jax.jit(fn), (x,), count_ops(fn, x).transcendental[name])
    # one small product per iteration: a loop body XLA runs as a kernel of its own (a body of
    # a few elementwise operations it compiles into one loop, a few ns per iteration)
    length = 2000
    eye = jnp.eye(8, dtype=jnp.float32)

    def scan(c):
        return jax.lax.scan(lambda v, _: (v @ eye, None), c, None, length=length)[0]

    out["scan_step"] = _Kernel(jax.jit(scan), (eye,), length)
    return out


def _rates(kernels: Mapping[str, _Kernel], best: Mapping[str, float]) -> Rates:
    return Rates(
        matmul=max(k.work / best[n] for n, k in kernels.items() if n.startswith("matmul")),
        elementwise=kernels["elementwise"].work / best["elementwise"],
        transcendental={f: kernels[f].work / best[f] for f in MEASURED_TRANSCENDENTALS},
        scan_step=best["scan_step"] / kernels["scan_step"].work,
    )


def measure_rates(ci: bool | None = None, rounds: int = 3) -> Rates:
    """This machine's :class:`Rates`, the best of ``rounds`` x :data:`RATE_REPEATS` timings of
    each kernel (the CI preset's smaller products when ``ci``, by default at
    ``GRIDLIB_SCALE=ci``)."""
    kernels = _kernels(scale.is_ci() if ci is None else ci)
    times = _time_rounds({k: (v.fn, v.args) for k, v in kernels.items()}, rounds,
                         dict.fromkeys(kernels, RATE_REPEATS))
    return _rates(kernels, {k: min(v) for k, v in times.items()})


def _time_rounds(calls: Mapping[str, tuple[Callable, tuple]], rounds: int,
                 repeats: Mapping[str, int] | None = None) -> dict[str, list[float]]:
    """Seconds of every call in each of ``rounds`` rounds, the calls alternating within a round,
    each ``repeats[name]`` times in a row (default 1; each compiled and run once first)."""
    for fn, args in calls.values():
        jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, (fn, args) in calls.items():
            for _ in range((repeats or {}).get(name, 1)):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*args))
                times[name].append(time.perf_counter() - t0)
    return times


# --------------------------------------------------------------------------------------------
# every system's training step, as fit runs it
# --------------------------------------------------------------------------------------------


class System(NamedTuple):
    """One system's training step, set up to be counted and timed.

    Attributes:
        name: the row label, e.g. ``"filter grid, SnAP-1 + Adam, batch 32"``.
        config: what the step trains (shapes, batch, rule), for the record.
        fn: ``fn(*args)``: ``steps`` training steps in one jitted call (``fit``'s chunk).
        args: the call's arguments (state, minibatches, step numbers, key).
        steps: training steps per call.
        counted: the same call compiled without the task's compiler options (a jaxpr cannot be
            traced through a ``jax.jit`` that carries them), for counting.
        stages_formula: the sequential stages of one step as the model states them, where the
            jaxpr's count needs a reading (e.g. SnAP-1's hyperplane ``T + N + M - 2``).
    """

    name: str
    config: Mapping[str, Any]
    fn: Callable[..., Any]
    args: tuple
    steps: int
    counted: Callable[..., Any]
    stages_formula: str = ""


def _chunk_system(name: str, config: Mapping[str, Any], task: Any, x: jax.Array, y: jax.Array,
                  stages_formula: str = "") -> System:  # fmt: skip
    """``task``'s train step as ``fit`` runs it on the minibatches ``x: (K, B, ...)``."""
    from gridlib.experiment import make_epoch_chunk

    chunk = make_epoch_chunk(task.train_step, task.compiler_options)
    k = x.shape[0]
    args = (task.init(jax.random.PRNGKey(0)), x, y, jnp.arange(k, dtype=jnp.uint32),
            jax.random.PRNGKey(1))
    return System(name, dict(config), chunk, args, k, make_epoch_chunk(task.train_step),
                  stages_formula)


def _images(seed: int, k: int, batch: int, n: int = 784) -> tuple[jax.Array, jax.Array]:
    """``k`` minibatches of sparse images with MNIST's pixel values ``j / 256``, and labels
    (drawn with numpy: nothing to compile)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (k, batch, n)) / 256 * (rng.random((k, batch, n)) < 0.2)
    return jnp.asarray(x, jnp.float32), jnp.asarray(rng.integers(0, 10, (k, batch)))


def _filtergrid(ci: bool) -> list[System]:
    from gridlib.filtergrid.experiments import make_task

    out = []
    for rule, label in (("snap1", "SnAP-1"), ("bptt", "BPTT")):
        # the CI preset: batch 1 only (each shape is one more compilation)
        budgets = (("adam", 32, 16), ("sgd", 1, 128)) if not ci else (("sgd", 1, 4),)
        for opt, batch, k in budgets:
            x, y = _images(3, k, batch)
            how = "Adam" if opt == "adam" else "per-group SGD"
            out.append(_chunk_system(
                f"filter grid, {label} + {how}, batch {batch}",
                {"system": "filtergrid", "rule": rule, "optimizer": opt, "batch": batch,
                 "grid": [28, 10], "T": 28},
                make_task(rule=rule, optimizer=opt), x, y,
                "hyperplane: T + N + M - 2 = 64 stages forward and as many backward, per "
                "example of a lane (a lane's examples run one after another)" if rule == "snap1"
                else "hyperplane: T + N + M - 2 = 64 stages forward, as many in its transpose"))
    return out


def _ep(ci: bool) -> list[System]:
    from gridlib.ep import experiments as epx

    cfg = epx.DEFAULT
    x, y = _images(4, 4 if ci else 64, 20)
    return [_chunk_system("EP 784-500-10, batch 20",
                          {"system": "ep", "sizes": list(cfg.sizes), "batch": 20,
                           "free_steps": cfg.n_free, "nudged_steps": cfg.n_nudge},
                          epx.make_task(cfg), x, y,
                          "free phase, then nudged phase: T1 + T2")]


def _gle(ci: bool) -> list[System]:
    from gridlib.gle import mnist1d as m1d

    setup = m1d.setup_for("e2e15k", schedule=False)
    k = 1 if ci else 8
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((k, setup.batch, setup.seq_len)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, (k, setup.batch)))
    task = m1d.make_task(setup, (0,), n_train=setup.batch * k)
    return [_chunk_system("GLE MNIST-1D 15k, one seed, batch 100",
                          {"system": "gle", "arch": "e2e15k", "batch": setup.batch,
                           "seq_len": setup.seq_len, "seeds": 1},
                          task, x, y, "one stage per time step (the first outside the loop): 359")]


def _neuralgrid(ci: bool) -> list[System]:
    from gridlib.neuralgrid import experiments as ngx

    out = []
    for side, k in ((64, 2),) if ci else ((64, 16), (128, 8)):
        cfg = ngx.Config(height=side, width=side, batch_size=256)
        x, y = _images(7, k, 256)
        out.append(_chunk_system(f"NeuralGrid {side}x{side}, batch 256",
                                 {"system": "neuralgrid", "height": side, "width": side,
                                  "batch": 256},
                                 ngx.make_task(cfg, 60000 // 256), x, y,
                                 "one stage per column, forward and backward: 2 W"))
    return out


def _gridnet(ci: bool) -> list[System]:
    from gridlib.gridnet import experiments as gnx

    batch = 16 if ci else 256
    x, y = _images(8, 1, batch)
    # the CI preset: the chapter's small grid (8^3, one inner step, 8 outer steps)
    cfg = gnx.CPU._replace(grid=8, inner=1, outer=8) if ci else gnx.CPU
    label = "gridnet 8^3" if ci else "gridnet CPU preset"
    return [_chunk_system(f"{label}, batch {batch}",
                          {"system": "gridnet", **cfg._asdict(), "batch": batch},
                          gnx.make_task(cfg), x, y,
                          "the O outer steps, each its I inner steps forward and backward and "
                          "its weight gradient's scan over chunks of the batch")]


def systems(ci: bool | None = None) -> list[System]:
    """Every system's training step.

    The CI preset keeps one shape per system (the filter grid at batch 1, NeuralGrid 64 x 64,
    gridnet on an 8^3 grid at batch 16) and fewer steps per call: each shape costs a
    compilation, which takes longer than the timings.
    """
    ci = scale.is_ci() if ci is None else ci
    return [*_filtergrid(ci), *_ep(ci), *_gle(ci), *_neuralgrid(ci), *_gridnet(ci)]


def measure(ci: bool | None = None, rounds: int | None = None,
            only: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The rates and every system's bound and measured step, in one process.

    ``only``: substrings of the system names to keep (all by default). ``rounds`` defaults to
    3 (CI preset) or 5.

    Returns:
        ``{"rates": Rates as a dict, "systems": [row, ...], "rounds"}``, each row with the
        system's ``name``, ``config``, ``ops`` (per step, :meth:`gridlib.flops.OpCounts.as_dict`), ``stages``
        (per step, from the jaxpr), ``stages_formula``, the :func:`lower_bound` fields per step,
        ``measured_s`` (median round) and ``measured_best_s`` per step, and ``fraction`` =
        bound / measured.
    """
    ci = scale.is_ci() if ci is None else ci
    rounds = rounds or (3 if ci else 5)
    kernels = _kernels(ci)
    chosen = [s for s in systems(ci) if not only or any(o in s.name for o in only)]
    calls = {f"rate:{k}": (v.fn, v.args) for k, v in kernels.items()}
    calls |= {s.name: (s.fn, s.args) for s in chosen}
    times = _time_rounds(calls, rounds, {f"rate:{k}": RATE_REPEATS for k in kernels})
    rates = _rates(kernels, {k: min(times[f"rate:{k}"]) for k in kernels})
    rows = []
    for s in chosen:
        ops = count_ops(s.counted, *s.args)
        stages = count_stages(s.counted, *s.args)
        per_step = OpCounts(ops.matmul // s.steps,
                            {p: n // s.steps for p, n in ops.transcendental.items()},
                            ops.other // s.steps)
        bound = lower_bound(per_step, stages / s.steps, rates)
        measured = float(np.median(times[s.name])) / s.steps
        rows.append({"name": s.name, "config": dict(s.config), "steps_per_call": s.steps,
                     "ops": per_step.as_dict(), "stages": stages / s.steps,
                     "stages_formula": s.stages_formula, **bound, "measured_s": measured,
                     "measured_best_s": min(times[s.name]) / s.steps,
                     "fraction": bound["bound_s"] / measured})  # fmt: skip
    return {"rates": {**rates._asdict(), "transcendental": dict(rates.transcendental)},
            "systems": rows, "rounds": rounds}


# --------------------------------------------------------------------------------------------
# the book's table and sentence
# --------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g}"


def rate_rows(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """The measured rates of :func:`measure`'s result as table rows (rate, value, unit)."""
    r = metrics["rates"]
    rows = [{"rate": "matrix product (float32)", "value": f"{r['matmul'] / 1e9:.3g}",
             "unit": "GFLOP/s"},
            {"rate": "fused multiply-adds", "value": f"{r['elementwise'] / 1e9:.3g}",
             "unit": "G operations/s"}]  # fmt: skip
    rows += [{"rate": f"`{f}`", "value": f"{v / 1e9:.3g}", "unit": "G evaluations/s"}
             for f, v in r["transcendental"].items()]
    rows.append({"rate": "one lax.scan iteration", "value": f"{1e6 * r['scan_step']:.3g}",
                 "unit": "µs"})
    return rows


def rows(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """One table row per system of :func:`measure`'s result: its bound and measured step (ms),
    the fraction bound / measured, and the term that sets the bound."""
    return [{"system": s["name"], "bound (ms)": _ms(s["bound_s"]),
             "measured (ms)": _ms(s["measured_s"]), "fraction": _percent(s["fraction"]),
             "limited by": s["limit"]} for s in metrics["systems"]]  # fmt: skip


def term_rows(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """One table row per system: each term of its bound in ms (:data:`TERMS`) and its
    sequential stages per step."""
    return [{"system": s["name"], **{f"{t} (ms)": _ms(s["terms_s"][t]) for t in TERMS},
             "stages": f"{s['stages']:.0f}"} for s in metrics["systems"]]  # fmt: skip


def _percent(f: float) -> str:
    """``"26 %"``, ``"8.8 %"``: the book's percent, a no-break space before the sign."""
    return f"{100 * f:.0f}\u00a0%" if f >= 0.1 else f"{100 * f:.1f}\u00a0%"


def finding(metrics: Mapping[str, Any]) -> str:
    """One sentence on :func:`measure`'s result, leading with the answer in words: whether the
    steps run near their bounds, the closest, median and farthest fractions, and what limits."""
    systems = sorted(metrics["systems"], key=lambda s: s["fraction"])
    worst, best = systems[0], systems[-1]
    median = float(np.median([s["fraction"] for s in systems]))
    few = len(systems) < 3  # a median and two ends of two steps would say one thing thrice
    which = "Both training steps" if len(systems) == 2 else "Most training steps"
    lead = f"{which} run {'far from' if median < 0.5 else 'close to'} what this CPU could do"
    stage_bound = [s["name"] for s in systems if s["limit"] == "sequential stages"]
    limits = ("no step is held by its sequential stages: arithmetic sets every bound"
              if not stage_bound else f"sequential stages bound {', '.join(stage_bound)}")
    where = (" and ".join(f"{s['name']} reaches {_percent(s['fraction'])}" for s in systems)
             if few else
             f"the median step reaches {_percent(median)}; the closest is {best['name']} at "
             f"{_percent(best['fraction'])}, the farthest {worst['name']} at "
             f"{_percent(worst['fraction'])}")  # fmt: skip
    return (f"{lead}: against the least time its operations and sequential stages allow at "
            f"this machine's own rates, {where}; {limits}.")


#: The results file of ``benchmarks/ceiling.py``.
NAME = "bench/ceiling"


#: The systems a chapter measures live at CI scale (a matmul-bound and a rule-bound step).
CI_SYSTEMS = ("SnAP-1 +", "EP 784")


def record(name: str = NAME) -> dict[str, Any]:
    """The published record of ``benchmarks/ceiling.py`` at full scale; at CI scale, or while
    it is not published, the CI preset of :func:`measure` run now for :data:`CI_SYSTEMS` (the
    cheapest to compile), in a record of the same form (``metrics``, and ``provenance`` of this
    process with ``"live": True``)."""
    from gridlib import results

    if not scale.is_ci() and results.exists(name):
        return results.load(name, expect={"preset": "full"})
    return {"name": name, "metrics": measure(ci=True, only=CI_SYSTEMS),
            "provenance": {**results.provenance(), "live": True}}


__all__ = ["CI_SYSTEMS", "MEASURED_TRANSCENDENTALS", "NAME", "RATE_REPEATS", "TERMS", "Rates", "System", "finding",
           "lower_bound", "measure", "measure_rates", "rate_rows", "record", "rows",
           "systems", "term_rows", "transcendental_rate"]
