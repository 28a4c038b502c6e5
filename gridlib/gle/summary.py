"""What the GLE chapters show: measured transfer functions, results loaded with the configuration
the prose relies on, the tables and figures built from them.

A chapter cell reads ``summary.load_lagline()`` or ``summary.mnist1d_rows(found)``; the
bookkeeping (which config fields a results file must have, how seeds are merged, how rows are
formatted) lives here, where it is tested.

- *Generalized latent equilibrium, derived*: typeset sympy and a neuron's measured response:
  :func:`math_rows`,
  :func:`measure_transfer`, :func:`transfer_rows`, :func:`transfer_figure`;
- *GLE teacher–student: LagLine and LagNet*: :func:`load_lagline`, :func:`lagline_rows`,
  :func:`lagline_figure`, :func:`trace_figure`, :func:`load_lagnet`, :func:`lagnet_figure`,
  :func:`lagnet_correlations`;
- *GLE on MNIST-1D, end to end*: :func:`mnist1d_expect`, :func:`load_mnist1d`, :func:`mnist1d_rows`,
  :func:`mnist1d_figure`, :func:`arch_rows`, :func:`reproduction_text`,
  :func:`load_bench`, :func:`bench_rows`, :func:`fraction_rows`, :func:`speed_summary`,
  :func:`speed_text`, :func:`ceiling_rows`, :func:`ceiling_fraction_rows`,
  :func:`ceiling_minutes_rows`, :func:`ceiling_fractions`.

Why this module is long: it serves the three GLE chapters (30, 31 and 32), one section each,
so that what the pages load and show stays next to the configurations they check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from gridlib import report, results
from gridlib.gle import mnist1d as m1d
from gridlib.gle import teachers
from gridlib.gle.model import (
    Config,
    Layer,
    error_transfer,
    euler_transfer,
    forward_transfer,
    init_state,
    simulate,
)
from gridlib.report import math_rows as math_rows  # re-exported for the chapters
from gridlib.report import sci_tex as sci_tex

# --------------------------------------------------------------------------------------------
# Generalized latent equilibrium, derived: the transfer function of one library neuron, measured
# --------------------------------------------------------------------------------------------


def measure_transfer(omega: float, dt: float, tau_m: float, tau_r: float,
                     periods: int = 12) -> tuple[complex, complex]:  # fmt: skip
    """Drive one linear library neuron with ``cos(omega t)`` and project onto the drive.

    Returns ``(h_forward, h_error)``: the complex response of the prospective potential
    ``u_breve`` to the input, and of the error ``e`` to a sinusoidal target (with ``W = 0`` the
    rate stays 0, so the error neuron's input is the target itself). The first quarter of the
    whole number of periods simulated is left out as the transient. Runs in JAX's default float
    precision (float64 when ``jax_enable_x64`` is set).
    """
    n = int(round(periods * 2 * np.pi / omega / dt))
    n = int(round(np.floor(n * dt * omega / (2 * np.pi)) * 2 * np.pi / omega / dt))  # whole periods
    drive = jnp.cos(omega * jnp.arange(n) * dt)[:, None, None]
    lay = Layer(jnp.ones((1, 1)), jnp.zeros(1), jnp.array([tau_m]), jnp.array([tau_r]))
    cfg = Config(("linear",), dt=dt, loss="mse")
    _, (so, _) = simulate((lay,), init_state((lay,), 1), drive, None, cfg, record=True)
    lay0 = lay._replace(W=jnp.zeros((1, 1)))
    _, (se, _) = simulate((lay0,), init_state((lay0,), 1), 0 * drive, drive, cfg, record=True)
    skip = n // 4
    basis = np.exp(-1j * omega * np.arange(n) * dt)[skip:]
    h_f = 2 * np.mean(np.asarray(so.u_breve[0])[skip:, 0, 0] * basis)
    h_e = 2 * np.mean(np.asarray(se.errors[0])[skip:, 0, 0] * basis)
    return complex(h_f), complex(h_e)


def transfer_rows(omegas: Sequence[float], dt: float, tau_m: float, tau_r: float) -> list[dict]:
    """Per ``omega``: how far the measured forward and error responses are from the discrete
    (Euler, z-domain) and the continuous transfer functions."""
    rows = []
    for om in omegas:
        h_f, h_e = measure_transfer(om, dt, tau_m, tau_r)
        rows.append({
            "ω": f"{om:g}",
            "forward − H(z)": abs(h_f - euler_transfer(om, dt, tau_m, tau_r)),
            "forward − continuous": abs(h_f - forward_transfer(om, tau_m, tau_r)),
            "error − H(z)": abs(h_e - euler_transfer(om, dt, tau_r, tau_m)),
            "error − continuous": abs(h_e - error_transfer(om, tau_m, tau_r)),
        })
    return rows


# --------------------------------------------------------------------------------------------
# GLE teacher–student: LagLine and LagNet
# --------------------------------------------------------------------------------------------

LAGLINE_MODELS = ("gle", "bp", "bptt_tw4", "bptt_tw2", "bptt_tw1")
LAGLINE_LABELS = {"gle": "GLE", "bp": "BP (instantaneous)", "bptt_tw4": "BPTT, window 4",
                  "bptt_tw2": "BPTT, window 2", "bptt_tw1": "BPTT, window 1"}  # fmt: skip


def lagline_expect(model: str) -> dict[str, Any]:
    """The published LagLine configuration the chapter describes (every setup field)."""
    return {"model": model, **results.to_jsonable(teachers.LagLineSetup()._asdict())}


def load_lagline(models: Sequence[str] = LAGLINE_MODELS) -> tuple[dict[str, dict], list[str]]:
    """``(runs, missing)``: the published LagLine records that exist, checked against
    :func:`lagline_expect`, and the models without a results file."""
    runs = {m: results.load(f"gle/lagline/{m}", expect=lagline_expect(m))
            for m in models if results.exists(f"gle/lagline/{m}")}  # fmt: skip
    return runs, [m for m in models if m not in runs]


def lagline_rows(runs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The final parameters and loss of each LagLine learner, with the teacher's first."""
    cols = ("$w_1$", "$w_2$", "$\\tau_{m,1}$", "$\\tau_{m,2}$")
    rows = [{"learner": "teacher", **dict(zip(cols, (1.0, 2.0, 1.0, 2.0), strict=True)), "final MSE": "–"}]
    for m, rec in runs.items():
        met = rec["metrics"]
        rows.append({"learner": LAGLINE_LABELS[m],
                     **dict(zip(cols, (*met["final_w"], *met["final_tau_m"]), strict=True)),
                     "final MSE": met["final_loss"]})  # fmt: skip
    return rows


def lagline_figure(runs: Mapping[str, Mapping[str, Any]]):
    """Weights, time constants and loss of every LagLine learner against time (2 x 2 panels,
    the fourth holding the legend, so no legend covers a curve)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(2, 2, figsize=(6.2, 5.4), sharex=True)
    ax_w, ax_t, ax_l, ax_leg = axes.ravel()
    handles = []
    for i, (m, rec) in enumerate(runs.items()):
        ex = rec["extra"]
        t = np.asarray(ex["t"])
        c = f"C{i}"
        ax_w.plot(t, np.asarray(ex["w"])[:, 1], color=c)
        ax_w.plot(t, np.asarray(ex["w"])[:, 0], color=c, ls=":")
        ax_t.plot(t, np.asarray(ex["tau_m"])[:, 1], color=c)
        ax_t.plot(t, np.asarray(ex["tau_m"])[:, 0], color=c, ls=":")
        ax_l.semilogy(t, np.asarray(ex["loss"]), color=c)
        handles.append(Line2D([], [], color=c, label=LAGLINE_LABELS[m]))
    for ax, title in ((ax_w, "weights"), (ax_t, "membrane time constants")):
        for v in (1.0, 2.0):
            ax.axhline(v, color="0.4", ls="--", lw=0.8)
        ax.set(title=title)
    ax_w.set(ylabel="$w$")
    ax_t.set(ylabel="$\\tau_m$ (a.u.)", xlabel="time (a.u.)")
    ax_t.xaxis.set_tick_params(labelbottom=True)
    ax_l.set(xlabel="time (a.u.)", ylabel="MSE (mean over 4 a.u.)", title="loss")
    handles += [Line2D([], [], color="0.2", label="second neuron"),
                Line2D([], [], color="0.2", ls=":", label="first neuron"),
                Line2D([], [], color="0.4", ls="--", lw=0.8, label="teacher's values")]
    ax_leg.axis("off")
    ax_leg.legend(handles=handles, loc="center", fontsize=10)
    fig.tight_layout()
    return fig


def trace_figure(rec: Mapping[str, Any], dt: float = 0.01):
    """One stream of the GLE LagLine student at the start and at the end of learning: its
    output against the teacher's, and the two neurons' errors."""
    import matplotlib.pyplot as plt

    ex = rec["extra"]
    fig, axes = plt.subplots(2, 2, figsize=(6.2, 4.6), sharex=True)
    for col, when in enumerate(("first", "last")):
        tt = np.arange(len(ex[f"trace_{when}_out"])) * dt
        axes[0, col].plot(tt, ex[f"trace_{when}_target"], label="teacher", color="0.3", ls="--")
        axes[0, col].plot(tt, ex[f"trace_{when}_out"], label="student", color="C0", alpha=0.8)
        axes[1, col].plot(tt, ex[f"trace_{when}_e1"], label="error $e_1$", color="C1")
        axes[1, col].plot(tt, ex[f"trace_{when}_e2"], label="error $e_2$", color="C2")
        axes[0, col].set_title(f"{'start' if when == 'first' else 'end'} of learning")
        axes[1, col].set_xlabel("time in the window (a.u.)")
    axes[0, 0].set_ylabel("output $r_2$")
    axes[1, 0].set_ylabel("error")
    fig.legend(*_handles(axes[0, 0], axes[1, 0]), loc="lower center", ncol=4, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _handles(*axes):
    hs, ls = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        hs += h
        ls += lab
    return hs, ls


def lagnet_expect() -> dict[str, Any]:
    """The published LagNet configuration (every setup field, and the 100,100 steps)."""
    return {"n_steps": 100_100, **results.to_jsonable(teachers.LagNetSetup()._asdict())}


def load_lagnet() -> dict[str, Any] | None:
    """The published LagNet record checked against :func:`lagnet_expect`, or ``None``."""
    if not results.exists("gle/lagnet"):
        return None
    return results.load("gle/lagnet", expect=lagnet_expect())


def lagnet_correlations(rec: Mapping[str, Any], cut: int = 300) -> tuple[float, float]:
    """Correlation of the GLE error with the exact adjoint, instantaneous and lagging neuron,
    leaving out the last ``cut`` steps (where the windowed adjoint is cut off)."""
    ex = rec["extra"]
    e, lam = np.asarray(ex["trace_e_gle"]), np.asarray(ex["trace_lambda"])
    inst, lag = (float(np.corrcoef(e[:-cut, i], lam[:-cut, i])[0, 1]) for i in range(2))
    return inst, lag


def lagnet_figure(rec: Mapping[str, Any]):
    """First-layer weights and loss of GLE and the adjoint method (AM), and the GLE error of
    each first-layer neuron against the exact adjoint after learning (2 x 2 panels)."""
    import matplotlib.pyplot as plt

    ex = rec["extra"]
    fig, axes = plt.subplots(2, 2, figsize=(6.2, 5.4))
    (ax_w, ax_l), (ax_e0, ax_e1) = axes
    for i in range(2):
        c = f"C{i}"
        ax_w.plot(ex["t_gle"], np.asarray(ex["w_gle"])[:, i], color=c, label=f"GLE $w_{i + 1}$")
        ax_w.plot(ex["t_am"], np.asarray(ex["w_am"])[:, i], color=c, ls=":", label=f"AM $w_{i + 1}$")
        ax_w.axhline(ex["w_teacher"][i], color=c, ls="--", lw=0.8)
    ax_w.set(xlabel="time (a.u.)", ylabel="weight", title="first-layer weights (teacher dashed)")
    ax_w.legend(fontsize=9, ncol=2, loc="center right")
    ax_l.semilogy(ex["t_gle"], ex["loss_gle"], label="GLE", color="C2")
    ax_l.semilogy(ex["t_am"], ex["loss_am"], label="AM", color="C3")
    ax_l.set(xlabel="time (a.u.)", ylabel="MSE", title="loss")
    ax_l.legend(fontsize=9)
    tt = np.asarray(ex["trace_t"])
    e, lam = np.asarray(ex["trace_e_gle"]), np.asarray(ex["trace_lambda"])
    for i, (ax, name) in enumerate(((ax_e0, "instantaneous"), (ax_e1, "lagging"))):
        ax.plot(tt, e[:, i] / np.abs(e[:, i]).max(), color="C0", label="GLE error $e$")
        ax.plot(tt, lam[:, i] / np.abs(lam[:, i]).max(), color="C1", ls="--", label="adjoint $\\lambda$")
        ax.set(xlabel="time (a.u.)", title=f"{name} neuron, scaled to max 1")
    ax_e0.set_ylabel("error")
    fig.legend(*_handles(ax_e0), loc="lower center", ncol=2, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# --------------------------------------------------------------------------------------------
# GLE on MNIST-1D, end to end
# --------------------------------------------------------------------------------------------

ARCH_LABELS = {"e2e15k": "end-to-end GLE, 15k", "e2e42k": "end-to-end GLE, 42k",
               "static": "static lag-net + LE MLP"}  # fmt: skip

#: Setup fields each architecture uses (the static network has no fast/slow hidden units).
_SHARED_FIELDS = ("arch", "tau", "dt", "lr", "batch", "seq_len", "plateau_factor",
                  "plateau_patience", "plateau_threshold", "schedule")  # fmt: skip
_E2E_FIELDS = ("n_fast", "n_slow", "n_hidden", "tau_slow_short", "tau_r_slow")


def mnist1d_expect(arch: str) -> dict[str, Any]:
    """The configuration the chapter describes: 150 epochs on the 4000/1000 split, and the
    published setup fields that ``arch``'s network uses."""
    setup = m1d.setup_for(arch)._asdict()
    fields = _SHARED_FIELDS + (() if arch == "static" else _E2E_FIELDS)
    return {"epochs": 150, "n_train": 4000, "n_test": 1000,
            **{f"setup.{k}": setup[k] for k in fields}}  # fmt: skip


def load_mnist1d(arch: str) -> dict[str, Any] | None:
    """All seeds of ``arch``'s published runs (one file per process), merged along the seed axis.

    Goes through :func:`gridlib.results.load_group` with :func:`mnist1d_expect`, so a file of
    another configuration (a short trial, another split) raises instead of being averaged in.
    Returns ``None`` when no file exists; otherwise a dict of per-epoch arrays ``acc``, ``loss``,
    ``lr`` of shape ``(epochs_done, n_seeds)``, the ``seeds``, the ``records``, ``epochs_done``
    (the fewest any file has) and ``epochs``.
    """
    recs = results.load_group(f"gle/mnist1d/{arch}_seeds*", expect=mnist1d_expect(arch),
                              allow_empty=True)  # fmt: skip
    if not recs:
        return None
    n = min(len(r["history"]["test/acc"]) for r in recs.values())

    def stack(key):
        return np.concatenate([np.asarray(r["history"][key][:n], dtype=float) for r in recs.values()], axis=1)

    return {
        "acc": stack("test/acc"), "loss": stack("test/loss"), "lr": stack("train/lr"),
        "seeds": [s for r in recs.values() for s in r["config"]["seeds"]],
        "records": recs,
        "epochs_done": n,
        "epochs": max(int(r["config"]["epochs"]) for r in recs.values()),
    }  # fmt: skip


def published_text(arch: str) -> str:
    """The published final accuracy of ``arch`` in percent, mean ± sd over its 10 seeds, as the
    paper states them."""
    pub = m1d.PUBLISHED[arch]
    return report.plus_minus(100 * pub["mean"], 100 * pub["std"], 1)


#: Seeds behind each published MNIST-1D mean (the paper's 10-seed statistics).
PUBLISHED_SEEDS = 10


def differs_from_published(values: Sequence[float], arch: str) -> bool:
    """Whether our final accuracies (one per seed) differ from the paper's 10-seed mean ± sd of
    ``arch`` by the book's one spread rule (:data:`gridlib.report.SPREAD_RULE`): the rule of
    :func:`gridlib.report.groups_differ` for two unpaired sets of seeds, with the published set
    known only by its mean and sd (Welch's interval, ``min(n) - 1`` degrees of freedom)."""
    v = np.asarray(values, dtype=np.float64)
    pub = m1d.PUBLISHED[arch]
    if v.size < 2:
        return False
    half = report.t95(min(v.size, PUBLISHED_SEEDS) - 1) * np.sqrt(
        v.var(ddof=1) / v.size + pub["std"] ** 2 / PUBLISHED_SEEDS)
    return bool(abs(v.mean() - pub["mean"]) > half)


def mnist1d_rows(found: Mapping[str, Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per architecture with results: seeds, epochs, our final test accuracy (keyed,
    two decimals), the published one as the paper states it, and the gap in points (only for a
    finished run)."""
    rows = []
    for arch, res in found.items():
        if res is None:
            continue
        final = res["acc"][-1]
        done = res["epochs_done"] >= res["epochs"]
        gap = 100 * (final.mean() - m1d.PUBLISHED[arch]["mean"])
        key = report.quantity_key(f"gle/mnist1d/{arch}_seeds*", "test_acc")
        rows.append({
            "network": ARCH_LABELS[arch], "seeds": len(res["seeds"]),
            "epochs": f"{res['epochs_done']} / {res['epochs']}",
            "test accuracy, ours": report.format_mean_sd(final, percent=True, n=False, key=key),
            "published (%)": published_text(arch),
            "gap (points)": report.signed(gap) if done else "unfinished",
        })  # fmt: skip
    return rows


def schedule_text(found: Mapping[str, Mapping[str, Any] | None]) -> str:
    """Where the plateau schedule leaves the learning rate, in one Markdown sentence: the epoch
    by which the median seed's rate reaches its floor (the smallest rate any seed reaches), and
    how far the mean test accuracy moves from there to the last epoch, per network."""
    names, epochs, moves, floors = [], [], [], []
    for arch, res in found.items():
        if not res:
            continue
        lr, acc = np.asarray(res["lr"]), np.asarray(res["acc"])  # (epochs, seeds)
        floors.append(float(lr.min()))
        at = int(np.median([np.argmax(lr[:, s] <= lr.min() * (1 + 1e-6)) for s in range(lr.shape[1])]))
        names.append(ARCH_LABELS[arch])
        epochs.append(str(at + 1))
        moves.append(report.signed(100 * (acc[-1].mean() - acc[at].mean()), 2))
    if not names:
        return ""
    mantissa, exponent = f"{min(floors):.1e}".split("e")
    last = len(acc)  # every network's runs are 150 epochs long (load_mnist1d checks it)
    return (f"The plateau schedule halves the learning rate until it stops at "
            f"${mantissa} \\times 10^{{{int(exponent)}}}$, which the median seed reaches by epoch "
            f"{report.listing(epochs)} ({'; '.join(names)}{', in that order' if len(names) > 1 else ''}); "
            f"from there to epoch {last} the mean test "
            f"accuracy moves by {report.listing(moves)} points.")


def mnist1d_figure(found: Mapping[str, Mapping[str, Any] | None]):
    """Test accuracy in percent, as the tables give it (mean ± sd over seeds, published means as
    markers), the same zoomed on the last epochs, and the learning rate of each architecture; the
    legend in the fourth panel."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    have = {a: r for a, r in found.items() if r is not None}
    fig, axes = plt.subplots(2, 2, figsize=(6.2, 5.6))
    (ax_a, ax_z), (ax_lr, ax_leg) = axes
    handles = []
    for i, (arch, res) in enumerate(have.items()):
        c = f"C{i}"
        ep = np.arange(1, res["epochs_done"] + 1)
        mean, sd = 100 * res["acc"].mean(axis=1), 100 * res["acc"].std(axis=1, ddof=1)
        curve = {e: 100 * a for e, a in m1d.PUBLISHED[arch]["curve"].items()}
        for ax in (ax_a, ax_z):
            ax.plot(ep, mean, color=c)
            ax.fill_between(ep, mean - sd, mean + sd, color=c, alpha=0.2, lw=0)
            ax.plot(list(curve), list(curve.values()), ls="none", marker="^", ms=7, mfc="white",
                    mec=c, mew=1.5)  # fmt: skip
        ax_lr.semilogy(ep, np.median(res["lr"], axis=1), color=c)
        handles.append(Line2D([], [], color=c, label=f"{ARCH_LABELS[arch]} (n={len(res['seeds'])})"))
    handles.append(Line2D([], [], color="0.3", ls="none", marker="^", mfc="white", ms=7,
                          label="published 10-seed mean"))  # fmt: skip
    ax_a.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(0, 100), title="test accuracy")
    ax_z.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(85, 96), xlim=(50, 152),
             title="epochs 50 to 150, zoomed")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate (median over seeds)")
    ax_leg.axis("off")
    ax_leg.legend(handles=handles + [Patch(color="0.6", alpha=0.4, label="± 1 sd over seeds")],
                  loc="center", fontsize=10)
    fig.tight_layout()
    return fig


def arch_rows(archs: Sequence[str] = ("e2e15k", "e2e42k")) -> list[dict[str, Any]]:
    """Size and learning rate of the end-to-end networks, counted from the networks built."""
    import jax

    rows = []
    for arch in archs:
        setup = m1d.setup_for(arch)
        net, _ = m1d.make_net(jax.random.PRNGKey(0), setup)
        rows.append({"network": ARCH_LABELS[arch], "hidden units per layer": setup.n_fast + setup.n_slow,
                     "fast / slow": f"{setup.n_fast} / {setup.n_slow}", "parameters": m1d.n_params(net),
                     "Adam lr per step": setup.lr})  # fmt: skip
    return rows


def reproduction_text(found: Mapping[str, Mapping[str, Any] | None]) -> str:
    """What remaking the published runs costs, in one Markdown sentence: per architecture with
    results, the minutes its slowest process took (the processes ran side by side, one per core).

    A reproduction-cost note for a reader who remakes the runs, as the records measured it on a
    shared 2-core machine: never a speed, never compared across records or with a benchmark
    (the speed of a step is :func:`speed_summary`'s).
    """
    parts = [f"{_slowest_minutes(res):.0f} min for the {ARCH_LABELS[arch]}" for arch, res in found.items() if res]
    if not parts:
        return ""
    return ("Remaking the published runs takes time: with one process per core on a shared 2-core "
            "machine, the slowest process took " + "; ".join(parts) + ".")


def _slowest_minutes(res: Mapping[str, Any]) -> float:
    recs = res["records"].values()
    return max(float(np.sum(r["history"]["epoch_time_s"])) for r in recs) / 60  # reproduction cost: how long a remake takes


#: The throughput goal: the library's ensemble at this fraction of the network-product ceiling.
CEILING_GOAL = 0.60


def load_bench(one_core: bool = False) -> dict[str, Any] | None:
    """The published GLE benchmark for the ten-seed 15k network, or ``None``: the process on
    every core (``results/bench/gle.json``), or pinned to one (``bench/gle_one_core``)."""
    name = "bench/gle_one_core" if one_core else "bench/gle"
    if not results.exists(name):
        return None
    expect = {"arch": "e2e15k", "batch": 100, "n_seeds": 10, **({"cores": 1} if one_core else {})}
    return results.load(name, expect=expect)


def fraction_rows(benches: Mapping[str, Mapping[str, Any] | None],
                  goal: float = CEILING_GOAL) -> list[dict[str, str]]:
    """Per benchmark run (label -> record) the library ensemble's and the per-layer ensemble's
    fraction of the network-product ceiling measured in that same run, against ``goal``."""
    rows = []
    for label, bench in benches.items():
        if bench is None:
            continue
        by = {r["implementation"]: r for r in bench["metrics"]["rows"]}
        lib = next(r for k, r in by.items() if k.endswith("(library)"))
        old = next(r for k, r in by.items() if k.startswith("per-layer") and "seeds" in k)
        frac = lib["fraction of network-product ceiling"]
        rows.append({"run": label,
                     "per-layer + vmap": f"{old['fraction of network-product ceiling']:.0%}",
                     "packed + lax.map (library)": f"{frac:.0%}",
                     f"goal {goal:.0%} met": "yes" if frac >= goal else "no"})
    return rows


def bench_rows(bench: Mapping[str, Any]) -> list[dict[str, str]]:
    """The benchmark's rows, rounded for reading (rates to whole seed-steps)."""
    return [{"implementation": r["implementation"],
             "seed-steps/s (wall)": f"{r['seed-steps/s (wall)']:,.0f}",
             "seed-steps per CPU-s": f"{r['seed-steps per CPU-s']:,.0f}",
             "speed-up (CPU-s)": f"{r['ratio (CPU-s)']:.2f}",
             "GFLOP per CPU-s": f"{r['GFLOP per CPU-s']:.1f}",
             "10 seeds × 150 epochs (CPU-h)": f"{r['10x150 epochs, CPU-h']:.1f}"}
            for r in bench["metrics"]["rows"]]  # fmt: skip


def speed_text(speed: Mapping[str, Any]) -> str:
    """One Markdown paragraph stating what :func:`speed_summary` found."""
    return (f"One seed-step costs {speed['flops'] / 1e6:.1f} MFLOP; ten seeds × 150 epochs are "
            f"{speed['seed_steps']:,} seed-steps, ${sci_tex(speed['seed_steps'] * speed['flops'], 1)}$ "
            f"FLOP. At the best measured rate that is {speed['cpu_hours']:.1f} CPU-hours, about "
            f"{speed['minutes']:.0f} minutes on two idle cores; the best implementation reaches "
            f"{speed['fraction_of_network_ceiling']:.0%} of the network-product rate.")  # fmt: skip


def ceiling_rows(speed: Mapping[str, Any], target_minutes: float = 15) -> list[dict[str, str]]:
    """One row per product ceiling of :func:`speed_summary`: its rate and the minutes of the
    ten-seed reproduction at that rate, against ``target_minutes``."""
    return [{"ceiling": name.split(",")[0].replace("^3", "³"),
             "GFLOP per CPU-s": f"{c['GFLOP per CPU-s']:.1f}",
             "10-seed reproduction, products only (min)": f"{c['minutes']:.1f}",
             f"within {target_minutes:g} min": "yes" if c["minutes"] <= target_minutes else "no"}
            for name, c in speed["ceilings"].items()]  # fmt: skip


def speed_summary(bench: Mapping[str, Any], epochs: int = 150, n_batches: int = 40,
                  seq_len: int = 360, n_seeds: int = 10, cores: int = 2) -> dict[str, Any]:  # fmt: skip
    """What the benchmark implies for the ten-seed reproduction on ``cores`` cores.

    Returns ``flops`` (FLOP per seed-step), ``seed_steps`` (of the whole reproduction),
    ``best_rate`` (the best implementation's seed-steps per CPU-second), ``cpu_hours`` and
    ``minutes`` (the reproduction at that rate, on ``cores`` idle cores), ``ceilings``: per
    ceiling its GFLOP per CPU-second and the minutes of the reproduction if nothing but its
    products ran at that rate, and ``fraction_of_network_ceiling`` (the best implementation's
    FLOP rate over the network-product ceiling).
    """
    flops = float(bench["config"]["flops_per_seed_step"])
    seed_steps = n_seeds * epochs * n_batches * seq_len
    best = max(r["seed-steps per CPU-s"] for r in bench["metrics"]["rows"])
    ceilings = {name: {"GFLOP per CPU-s": rate, "minutes": seed_steps * flops / (cores * rate * 1e9) / 60}
                for name, rate in bench["metrics"]["ceilings"].items()}  # fmt: skip
    net = "network product, GFLOP per CPU-s"
    return {
        "flops": flops, "seed_steps": seed_steps, "best_rate": best,
        "cpu_hours": seed_steps / best / 3600, "minutes": seed_steps / best / cores / 60,
        "ceilings": ceilings,
        "fraction_of_network_ceiling": best * flops / 1e9 / bench["metrics"]["ceilings"][net],
        "network_ceiling_minutes": ceilings[net]["minutes"],
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Presentation helpers added for the chapters' tidy cells (the GLE derivation and MNIST-1D chapters)
# --------------------------------------------------------------------------------------------


def transfer_figure(omega: np.ndarray, tau_m: float, tau_r: float):
    """Gain and phase of the neuron, the GLE error and the exact adjoint
    (*Generalized latent equilibrium, derived*).

    Args:
        omega: angular frequencies, shape ``(K,)``, positive (a log-spaced grid reads best).
        tau_m, tau_r: the membrane and prospective time constants.

    Returns:
        A figure of gain (log-log) and phase in degrees (log x) against ``omega``, one colour
        per transfer function, the adjoint dashed; one legend below both panels.
    """
    import matplotlib.pyplot as plt

    from gridlib.gle.model import adjoint_transfer

    curves = [("neuron  $D^+_{\\tau_r} I^-_{\\tau_m}$", forward_transfer, "-"),
              ("GLE error  $D^+_{\\tau_m} I^-_{\\tau_r}$", error_transfer, "-"),
              ("adjoint  $I^+_{\\tau_m} D^-_{\\tau_r}$", adjoint_transfer, "--")]  # fmt: skip
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(6.2, 3.4))
    for i, (label, fn, ls) in enumerate(curves):
        h = fn(omega, tau_m, tau_r)
        a1.loglog(omega, np.abs(h), label=label, ls=ls, color=f"C{i}")
        a2.semilogx(omega, np.degrees(np.angle(h)), ls=ls, color=f"C{i}")
    a1.set(xlabel="$\\omega$", ylabel="gain", title="gain")
    a1.set_yticks([0.2, 0.5, 1, 2, 5], labels=["0.2", "0.5", "1", "2", "5"])
    a1.yaxis.set_minor_formatter(plt.NullFormatter())
    a2.set(xlabel="$\\omega$", ylabel="phase (degrees)", title="phase")
    fig.legend(loc="lower center", ncol=3, fontsize=10)
    fig.suptitle(f"transfer functions, $\\tau_m$ = {tau_m}, $\\tau_r$ = {tau_r}")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def ceiling_fraction_rows(benches: Mapping[str, Mapping[str, Any] | None]) -> list[dict[str, str]]:
    """:func:`fraction_rows` without its goal column: per benchmark run, the fraction of the
    network-product ceiling that the per-layer ``vmap`` form and the library's packed form reach,
    both measured in that same run."""
    return [{k: v for k, v in row.items() if not k.startswith("goal")}
            for row in fraction_rows(benches)]


def ceiling_minutes_rows(speed: Mapping[str, Any]) -> list[dict[str, str]]:
    """:func:`ceiling_rows` without its comparison column: per product ceiling, its rate and the
    minutes the ten-seed reproduction would take if nothing but its products ran at that rate."""
    return [{k: v for k, v in row.items() if not k.startswith("within")}
            for row in ceiling_rows(speed)]


def ceiling_fractions(bench: Mapping[str, Any]) -> dict[str, float]:
    """The fraction of the network-product ceiling reached in one benchmark run (a record of
    :func:`load_bench`): ``{"packed": ..., "per-layer": ...}`` for the library's packed ten-seed
    form and the per-layer ``vmap`` form, as plain floats (0.51 is 51 %)."""
    by = {r["implementation"]: r for r in bench["metrics"]["rows"]}
    lib = next(r for k, r in by.items() if k.endswith("(library)"))
    old = next(r for k, r in by.items() if k.startswith("per-layer") and "seeds" in k)
    key = "fraction of network-product ceiling"
    return {"packed": float(lib[key]), "per-layer": float(old[key])}
