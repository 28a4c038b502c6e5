"""What the EP chapters show: typeset algebra, gradient comparisons, and the results files loaded
with the configuration the prose relies on, with the tables and figures built from them.

A chapter cell reads ``summary.load_ep_runs()`` or ``report.table(summary.ep_rows(found))``; the
bookkeeping (which config fields a results file must have, how seeds are grouped, how rows are
formatted) lives here, where it is tested. Every loader declares its expectations, so a file of
another configuration (a short trial, another split) raises instead of being shown, and a missing
file or seed raises :class:`MissingResults`, naming the commands that make them (with
``allow_missing=True`` a loader returns ``None`` or an empty group instead): a chapter cell shows
only the load and the result.

- :func:`math_rows`, :func:`product_rows`, :func:`sci_tex`, :func:`entries`,
  :func:`symbol_values`, :func:`over_power`, :func:`free_energy_trace`, :func:`cosine`, :func:`relative_error`,
  :func:`beta_rows`, :func:`cosine_rows`                      the derivation
- :data:`SEED_FAILURES_EXPECT`, :func:`load_seed_failures`,
  :func:`seed_failure_rows`, :func:`seed_failure_figure`      the seed's failures
- :data:`EP_RUNS`, :func:`ep_expect`, :func:`load_ep_runs`,
  :func:`ep_rows`, :func:`ep_curves`, :func:`curves_figure`,
  :func:`missing_commands`, :class:`MissingResults`,
  :func:`paired_differences`, :func:`spread_words`, :func:`step_ratio_text`,
  :data:`EP_OVER_BACKPROP`,
  :data:`MLP_RUNS`, :func:`mlp_expect`, :func:`load_mlp_runs`,
  :func:`comparison_rows`, :func:`backprop_gaps`, :func:`gap_text`,
  :func:`headline_text`, :func:`load_bptt_sweep`,
  :func:`bptt_rows`, :func:`load_bench`, :data:`PUBLISHED`    EP on MNIST
- :data:`DATASET_NAMES`, :func:`cross_ep_expect`, :func:`cross_mlp_expect`,
  :func:`relu_pattern`, :func:`load_cross_runs`, :func:`cross_rows`, :func:`locality_gaps`,
  :func:`gap_rows`, :func:`cross_curves`, :func:`cross_figure`,
  :func:`cross_missing`, :func:`wrap_command`                  EP on Fashion-MNIST

Why this module is long: it serves the four EP chapters (the derivation, the seed's failures,
MNIST and Fashion-MNIST), one section each, so that what the pages load and show stays next to
the configurations they check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import report, results
from gridlib.ep.model import EPConfig, energy, relax_step, zero_states

#: The records of one configuration, by result name (one per seed).
Group = dict[str, dict[str, Any]]

# --------------------------------------------------------------------------------------------
# The derivation chapter (ep-derivation)
# --------------------------------------------------------------------------------------------


def math_rows(rows: Sequence[tuple[str, Any]], relation: str = "=", gap: str = "4pt",
              terms_per_line: int | None = None) -> Any:  # fmt: skip
    """:func:`gridlib.report.math_rows` with the EP chapters' 4pt gap between lines."""
    return report.math_rows(rows, relation, gap, terms_per_line)


def sci_tex(x: float, digits: int = 0) -> str:
    """:func:`gridlib.report.sci_tex` inside ``$...$``, e.g. ``$4 \\times 10^{-16}$``."""
    return f"${report.sci_tex(x, digits)}$"


def entries(name: str, *shape: int) -> Any:
    """Symbols for the entries of a matrix (``shape = (rows, cols)``: a sympy ``Matrix``) or a
    vector (``shape = (n,)``: a list), typeset as ``name`` with the index below, e.g.
    ``entries("W^{(1)}", 3, 2)[0, 1]`` prints as :math:`W^{(1)}_{01}`."""
    import sympy as sp

    if len(shape) == 1:
        return [sp.Symbol(f"{name}_{{{i}}}", real=True) for i in range(shape[0])]
    if len(shape) == 2:
        return sp.Matrix(*shape, lambda i, j: sp.Symbol(f"{name}_{{{i}{j}}}", real=True))
    raise ValueError(f"entries of a vector or a matrix, not of shape {shape}")


def symbol_values(*pairs: tuple[Any, Any]) -> dict:
    """A sympy substitution dict from ``(symbols, values)`` pairs.

    ``symbols`` is a sympy ``Matrix`` (``values`` then an array of its shape), a sequence of
    symbols (``values`` a sequence of the same length) or a single symbol (``values`` a number).
    Values become Python floats.
    """
    import sympy as sp

    out: dict = {}
    for syms, vals in pairs:
        if isinstance(syms, sp.MatrixBase):
            vals = np.asarray(vals, dtype=float)
            if vals.shape != syms.shape:
                raise ValueError(f"matrix of shape {syms.shape} given values of shape {vals.shape}")
            out.update({syms[i, j]: float(vals[i, j]) for i in range(syms.rows) for j in range(syms.cols)})
        elif isinstance(syms, sp.Basic):
            out[syms] = float(vals)
        else:
            syms, vals = list(syms), list(np.asarray(vals, dtype=float).ravel())
            if len(syms) != len(vals):
                raise ValueError(f"{len(syms)} symbols given {len(vals)} values")
            out.update(dict(zip(syms, map(float, vals), strict=True)))
    return out


def over_power(expr: Any, unit: Any, unit_symbol: Any, base: Any, base_symbol: Any,
               max_power: int = 8) -> Any:  # fmt: skip
    """Rewrite ``expr = unit * q`` as ``unit_symbol * p / base_symbol**k`` with ``p`` polynomial.

    For the one-hidden-unit chain of the derivation chapter: ``unit`` is the output error at the free fixed
    point, ``y^0 - d``, and ``base`` the determinant ``1 - w_2^2``; every gradient and bias term is
    then a short polynomial times ``e / D^k``. Raises if ``expr / unit`` has another denominator.
    """
    import sympy as sp

    ratio = sp.cancel(expr / unit)
    for k in range(max_power + 1):
        num, den = sp.fraction(sp.cancel(ratio * base**k))
        if not den.free_symbols:
            return sp.factor(num / den) * unit_symbol / base_symbol**k
    raise ValueError(f"{expr} / ({unit}) is not a polynomial over a power of {base} up to {max_power}")


def product_rows(rows: Sequence[tuple[str, Any]], terms_per_line: int = 2, gap: str = "8pt") -> Any:
    """Typeset ``(left LaTeX, sympy product)`` pairs as one aligned display (an IPython
    ``Math``), one pair per line; a product with a long sum among its factors (as
    :func:`over_power` returns: ``e * p / D**k`` with ``p`` a polynomial) is written as the
    rest of the product times the sum in brackets, ``terms_per_line`` terms of the sum per line,
    so that the display stays narrow (a phone's width)."""
    import sympy as sp
    from IPython.display import Math

    blocks = []
    for left, expr in rows:
        sums = [f for f in sp.Mul.make_args(expr) if isinstance(f, sp.Add)]
        if not sums or len(sums[0].args) <= terms_per_line:
            blocks.append(f"{left} &= {sp.latex(expr)}")
            continue
        rest = sp.Mul(*[f for f in sp.Mul.make_args(expr) if f is not sums[0]])
        terms = [sp.latex(t) for t in sums[0].as_ordered_terms()]
        chunks = []
        for start in range(0, len(terms), terms_per_line):
            text = ""
            for t in terms[start:start + terms_per_line]:
                text += (f" {t}" if t.startswith("-") else f" + {t}") if text or start else t
            chunks.append(text.strip())
        lines = [f"{left} &= {sp.latex(rest)}\\,\\Big({chunks[0]}"]
        lines += [f"&\\qquad {c}" for c in chunks[1:]]
        blocks.append(" \\\\ ".join(lines) + "\\Big)")
    return Math(r"\begin{aligned}" + f" \\\\[{gap}] ".join(blocks) + r"\end{aligned}")


def free_energy_trace(params, x, cfg: EPConfig, n_steps: int):
    """The free relaxation from zero states, ``n_steps`` steps of :func:`~gridlib.ep.relax_step`.

    Returns ``(energies, states)``: the energy of every example after each step, shape
    ``(n_steps + 1, B)`` (the zero state first), and the final states.
    """
    from gridlib.ep.model import input_drive

    drive = input_drive(params, x, cfg)
    target = jnp.zeros((x.shape[0], cfg.sizes[-1]), x.dtype)

    def step(s, _):
        s = relax_step(params, drive, s, target, 0.0, cfg)
        return s, energy(params, x, s, cfg)

    s0 = zero_states(x.shape[0], cfg.sizes, x.dtype)
    s, es = jax.lax.scan(step, s0, None, length=n_steps)
    return jnp.concatenate([energy(params, x, s0, cfg)[None], es]), s


def _flat(tree) -> jnp.ndarray:
    return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


def cosine(a, b) -> float:
    """Cosine between two gradients (any pytrees of the same structure), all parameters flattened."""
    u, v = _flat(a), _flat(b)
    return float(u @ v / (jnp.linalg.norm(u) * jnp.linalg.norm(v)))


def relative_error(estimate, reference) -> float:
    """``|estimate - reference| / |reference|`` over all parameters flattened."""
    u, v = _flat(estimate), _flat(reference)
    return float(jnp.linalg.norm(u - v) / jnp.linalg.norm(v))


def beta_rows(betas: Sequence[float], one_sided: np.ndarray, centered: np.ndarray) -> list[dict]:
    """One row per ``|beta|``: cosine and relative error of both estimators against the reference
    (``one_sided`` and ``centered`` have rows ``(cosine, relative error)``)."""
    return [{r"$\lvert\beta\rvert$": f"{b:g}",
             "cosine, one-sided": f"{o[0]:.6f}", "cosine, centered": f"{c[0]:.6f}",
             "rel. error, one-sided": f"{o[1]:.2e}", "rel. error, centered": f"{c[1]:.2e}"}
            for b, o, c in zip(betas, one_sided, centered, strict=True)]  # fmt: skip


def cosine_rows(cosines: Mapping[tuple[str, str], float]) -> list[dict]:
    """A table of ``cosines[estimate, reference]``: one row per estimate, one column per reference."""
    estimates = list(dict.fromkeys(e for e, _ in cosines))
    refs = list(dict.fromkeys(r for _, r in cosines))
    return [{"estimate": e, **{f"cosine with {r}": f"{cosines[e, r]:.3f}" for r in refs}} for e in estimates]


# --------------------------------------------------------------------------------------------
# The seed notebook's failures (ep-seed-failures)
# --------------------------------------------------------------------------------------------

SEED_FAILURES = "ep/seed_failures"
#: What the seed-failures chapter describes: one epoch of every variant on the full 60k/10k split, each a change
#: of the reference configuration.
SEED_FAILURES_EXPECT = {"epochs": 1, "n_train": 60000, "n_test": 10000,
                        "base": results.to_jsonable(EPConfig()._asdict()), "provenance.scale": "full"}  # fmt: skip
SEED_FAILURES_COMMAND = "python -m gridlib ep-seed-failures"
#: The variants with the reference semantics (everything else is a bug).
HARMLESS = ("reference", "square-u")


class MissingResults(FileNotFoundError):
    """A chapter's published results are missing; the message lists the commands that make them."""

    def __init__(self, what: str, commands: Sequence[str]):
        self.commands = list(commands)
        super().__init__(f"{what} missing from {results.results_dir()}; the commands that make "
                         "them:\n" + "\n".join(self.commands))  # fmt: skip


def _require(found: Any, what: str, commands: Sequence[str], allow_missing: bool) -> Any:
    """``found``, unless ``commands`` (what is missing) is non-empty and missing is not allowed."""
    if commands and not allow_missing:
        raise MissingResults(what, commands)
    return found


def _load_one(name: str, expect: Mapping[str, Any], command: str,
              allow_missing: bool) -> dict[str, Any] | None:  # fmt: skip
    """One published record checked against ``expect``; :class:`MissingResults` (or ``None``
    with ``allow_missing``) when it does not exist."""
    if not results.exists(name):
        return _require(None, f"results/{name}.json", [command], allow_missing)
    return results.load(name, expect=expect)


def load_seed_failures(allow_missing: bool = False) -> dict[str, Any] | None:
    """The published seed-failure runs, checked against :data:`SEED_FAILURES_EXPECT`.

    Raises:
        MissingResults: when they are not published (``None`` instead with ``allow_missing``).
    """
    return _load_one(SEED_FAILURES, SEED_FAILURES_EXPECT, SEED_FAILURES_COMMAND, allow_missing)


def seed_failure_rows(table: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """One row per variant: what changes, its running training error and its test error."""
    return [{"variant": k, "what changes": v["description"],
             "train error (running)": f"{100 * v['train_err_running']:.1f} %",
             "test error": f"{100 * v['test_err']:.1f} %"} for k, v in table.items()]  # fmt: skip


def seed_failure_figure(table: Mapping[str, Mapping[str, Any]], epochs: int = 1):
    """Horizontal bars of every variant's test error, the harmless ones green, chance marked."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = list(table)[::-1]
    errs = [100 * table[k]["test_err"] for k in names]
    colors = ["C2" if k in HARMLESS else "C3" for k in names]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.barh(names, errs, color=colors)
    ax.axvline(90, color="0.3", ls=":", lw=1.2)
    ax.set(xlabel=f"test error after {report.plural(epochs, 'epoch')} (%)", xlim=(0, 100))
    handles = [Patch(color="C2", label="reference semantics"), Patch(color="C3", label="a bug"),
               plt.Line2D([], [], color="0.3", ls=":", lw=1.2, label="chance (90 %)")]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# --------------------------------------------------------------------------------------------
# EP on MNIST (ep-mnist)
# --------------------------------------------------------------------------------------------


class EPRun(NamedTuple):
    """A published EP configuration: how the chapter names it, its config, epochs and command."""

    label: str
    cfg: EPConfig
    epochs: int
    command: str


_DEEP = EPConfig(sizes=(784, 256, 256, 10), beta=1.0, alphas=(0.4, 0.1, 0.01), n_free=100, n_nudge=6,
                 n_eval=150)  # fmt: skip

#: The EP runs of the MNIST chapter, by results tag (``results/ep/<tag>_seed<s>.json``).
EP_RUNS: dict[str, EPRun] = {
    "mnist_784-500-10_ep": EPRun("784-500-10, EP (reference)", EPConfig(), 25,
                                 "python -m gridlib ep-mnist --seed {s}"),
    "mnist_784-500-10_symmetric": EPRun("784-500-10, centered EP", EPConfig(estimator="symmetric"), 25,
                                        "python -m gridlib ep-mnist --estimator symmetric --seed {s}"),
    "mnist_784-256-256-10_ep": EPRun(
        "784-256-256-10, EP", _DEEP, 30,
        "python -m gridlib ep-mnist --hidden 256,256 --beta 1.0 --alphas 0.4,0.1,0.01 --n-free 100 "
        "--n-nudge 6 --n-eval 150 --epochs 30 --seed {s}"),
}  # fmt: skip
SEEDS = (0, 1, 2)
BATCH_SIZE = 20
N_TRAIN, N_TEST = 60000, 10000

#: What the papers report, as the chapter quotes it. ``scellier2017``: 784-500-10 reaches 0.00 %
#: training and between 2 and 3 % test error (no exact figure per architecture).
#: ``laborieux2022holomorphic``: classic EP on 784-256-256-10 reaches about 98 % test accuracy
#: after 50 epochs (final accuracy in the study's logs, three seeds) with another protocol.
PUBLISHED = {
    "784-500-10": {"train_err": 0.0, "test_err_range": (0.02, 0.03), "source": "scellier2017"},
    "784-256-256-10": {"test_acc": 0.98, "epochs": 50, "source": "laborieux2022holomorphic"},
}


def ep_expect(tag: str) -> dict[str, Any]:
    """Every config field the chapter relies on for ``tag``: the whole :class:`EPConfig`
    (sizes, estimator, beta, steps, learning rates...), the epochs, minibatches of 20 and the full
    60k/10k split, at full scale."""
    run = EP_RUNS[tag]
    return {**results.to_jsonable(run.cfg._asdict()), "epochs": run.epochs, "batch_size": BATCH_SIZE,
            "n_train": N_TRAIN, "n_test": N_TEST, "provenance.scale": "full"}  # fmt: skip


def load_ep_runs(allow_missing: bool = False) -> dict[str, Group]:
    """The published seeds of every :data:`EP_RUNS` configuration, via
    :func:`gridlib.results.load_group` with :func:`ep_expect`.

    Raises:
        MissingResults: when a seed of ``SEEDS`` is missing (with ``allow_missing``, the
            groups hold what there is, an empty group for a configuration without seeds).
    """
    found = {tag: results.load_group(f"ep/{tag}_seed*", expect=ep_expect(tag), allow_empty=True)
             for tag in EP_RUNS}  # fmt: skip
    return _require(found, "EP seeds", missing_commands(found), allow_missing)


def final_errors(group: Group) -> list[float]:
    """The final test error of each seed of an EP group."""
    return [r["metrics"]["test_err"] for r in group.values()]


def ep_rows(found: Mapping[str, Group]) -> list[dict]:
    """One row per EP configuration with results: seeds, epochs, steps, beta, test error and
    final running training error (the speed of a step is the benchmark's, :func:`load_bench`)."""
    rows = []
    for tag, group in found.items():
        if not group:
            continue
        c = next(iter(group.values()))["config"]
        recs = list(group.values())
        rows.append({
            "network": EP_RUNS[tag].label, "seeds": len(recs), "epochs": c["epochs"],
            "steps (free / nudged), β": f"{c['n_free']} / {c['n_nudge']}, {c['beta']:g}",
            "test error": report.format_mean_sd(final_errors(group), 2, True, n=False,
                                                key=report.group_key(group, "test_err")),
            "train error (running)": report.format_mean_sd(
                [r["metrics"]["train_err_running"] for r in recs], 2, True, n=False),
        })  # fmt: skip
    return rows


def ep_curves(found: Mapping[str, Group]) -> dict[str, dict[str, Any]]:
    """Per configuration with results: epochs and the test and running training error in percent,
    one column per seed (for :func:`gridlib.plotting.learning_curves`)."""
    curves = {}
    for tag, group in found.items():
        if not group:
            continue
        hists = [r["history"] for r in group.values()]
        n = min(len(h["test/err"]) for h in hists)
        curves[EP_RUNS[tag].label] = {
            "epoch": hists[0]["epoch"][:n],
            "test/err": np.stack([np.asarray(h["test/err"][:n]) * 100 for h in hists], 1),
            "train/err": np.stack([np.asarray(h["train/err"][:n]) * 100 for h in hists], 1),
        }
    return curves


def curves_figure(found: Mapping[str, Group]):
    """Test error (with the published 2-3 % range of 784-500-10 shaded) and running training error
    (log scale) per epoch, mean ± sd over seeds; one legend below both panels."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from gridlib import plotting

    curves = ep_curves(found)
    fig, axes = plt.subplots(2, 1, figsize=(6.5, 6.8), sharex=True)
    low, high = PUBLISHED["784-500-10"]["test_err_range"]
    axes[0].axhspan(100 * low, 100 * high, color="0.85", lw=0)
    plotting.learning_curves(curves, "test/err", ax=axes[0], ylabel="test error (%)")
    plotting.learning_curves(curves, "train/err", ax=axes[1], ylabel="training error,\nrunning (%)",
                             logy=True)  # fmt: skip
    axes[0].set_ylim(0, 8)
    axes[0].set_xlabel("")
    handles, _ = axes[0].get_legend_handles_labels()
    handles.append(Patch(color="0.85", label="published test error, 784-500-10 (2–3 %)"))
    for ax in axes:
        ax.get_legend().remove()
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def missing_commands(found: Mapping[str, Group], seeds: Iterable[int] = SEEDS) -> list[str]:
    """The commands that make the missing seeds of every EP configuration (empty when complete)."""
    out = []
    for tag, run in EP_RUNS.items():
        have = {r["provenance"]["seed"] for r in found.get(tag, {}).values()}
        out += [run.command.format(s=s) for s in seeds if s not in have]
    return out


#: The backprop baselines: hidden sizes -> ``python -m gridlib mlp`` flag.
MLP_RUNS = {"784-500-10": "500", "784-256-256-10": "256,256"}
#: The baseline MLPs' epochs.
MLP_EPOCHS = 25
#: The baseline MLPs' Adam learning rate.
MLP_LR = 1e-3


def mlp_expect(arch: str) -> dict[str, Any]:
    """The baseline the chapter describes: MNIST, ``arch``, the clipped activation, Adam at
    :data:`MLP_LR`, minibatches of 20, 25 epochs on all 60,000 training images."""
    return {"dataset": "mnist", "sizes": [int(n) for n in arch.split("-")], "activation": "hard_sigmoid01",
            "epochs": MLP_EPOCHS, "batch_size": BATCH_SIZE, "lr": MLP_LR, "n_train": N_TRAIN,
            "validation": 0, "provenance.scale": "full"}  # fmt: skip


def mlp_command(arch: str, seed: int = 0, dataset: str = "mnist") -> str:
    """The command that makes one seed of the ``arch`` baseline on ``dataset``."""
    flag = "" if dataset == "mnist" else f"--dataset {dataset} "
    return (f"python -m gridlib mlp {flag}--hidden {MLP_RUNS[arch]} --activation hard_sigmoid01 "
            f"--epochs {MLP_EPOCHS} --batch-size {BATCH_SIZE} --seed {seed}")  # fmt: skip


def load_mlp_runs(allow_missing: bool = False) -> dict[str, Group]:
    """The published seeds of every backprop baseline.

    Raises:
        MissingResults: when a seed of ``SEEDS`` is missing (with ``allow_missing``, an
            empty group for an architecture without seeds).
    """
    found = {arch: results.load_group(f"baselines/mnist-mlp-{arch}_seed*", expect=mlp_expect(arch),
                                      allow_empty=True) for arch in MLP_RUNS}  # fmt: skip
    todo = [f"{mlp_command(arch, s)} --publish" for arch, group in found.items() for s in SEEDS
            if s not in {r["provenance"]["seed"] for r in group.values()}]  # fmt: skip
    return _require(found, "backprop baseline seeds", todo, allow_missing)


def mlp_errors(group: Group) -> list[float]:
    """The final test error of each seed of a baseline group."""
    return [1 - r["metrics"]["test/acc"] for r in group.values()]


def comparison_rows(found: Mapping[str, Group], mlps: Mapping[str, Group]) -> list[dict]:
    """Backprop baselines and EP runs side by side: rule, seeds, epochs, test error."""
    rows = []
    for arch, group in mlps.items():
        if group:
            rows.append({"network": arch, "rule": "backprop (MLP, Adam)",
                         "seeds": len(group), "epochs": MLP_EPOCHS,
                         "test error": report.format_mean_sd(mlp_errors(group), 2, True, n=False,
                                                             key=report.group_key(group, "test_err"))})  # fmt: skip
    for tag, group in found.items():
        if group:
            arch, rule = EP_RUNS[tag].label.split(", ", 1)
            rows.append({"network": arch, "rule": rule, "seeds": len(group), "epochs": EP_RUNS[tag].epochs,
                         "test error": report.format_mean_sd(final_errors(group), 2, True, n=False,
                                                             key=report.group_key(group, "test_err"))})  # fmt: skip
    return rows


BPTT_SWEEP = "ep/bptt_sweep"
#: The sweep the MNIST chapter describes: two epochs on 10,000 images, 10,000 held-out validation
#: images, the reference configuration at the EP learning rates times 1, 0.3, 0.1 and 0.03.
BPTT_SWEEP_EXPECT = {"epochs": 2, "n_train": 10000, "validation": 10000,
                     "base": results.to_jsonable(EPConfig()._asdict()), "scales": [1.0, 0.3, 0.1, 0.03],
                     "provenance.scale": "full"}  # fmt: skip


def load_bptt_sweep(allow_missing: bool = False) -> dict[str, Any] | None:
    """The published BPTT sweep checked against :data:`BPTT_SWEEP_EXPECT`.

    Raises:
        MissingResults: when it is not published (``None`` instead with ``allow_missing``).
    """
    return _load_one(BPTT_SWEEP, BPTT_SWEEP_EXPECT, "python -m gridlib ep-bptt-sweep", allow_missing)


def sweep_runs(sweep: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The runs of the sweep (``"ep x1"``, ``"bptt x0.3"``...), without the summary numbers."""
    return {k: v for k, v in sweep["metrics"].items() if isinstance(v, dict)}


def sweep_label(key: str) -> str:
    """A run of the sweep in words: ``"ep x1"`` -> ``"EP"``, ``"bptt x0.3"`` -> ``"backprop,
    EP rates × 0.3"`` (backprop through the relaxation at 0.3 times EP's learning rates)."""
    estimator, _, factor = key.partition(" x")
    name = {"ep": "EP", "bptt": "backprop"}[estimator]
    return name if (estimator, factor) == ("ep", "1") else f"{name}, EP rates × {factor}"


def bptt_rows(sweep: Mapping[str, Any]) -> list[dict]:
    """One row per rule and learning-rate scale: rates, validation error per epoch, and the
    fraction of examples whose target output unit is pinned at 0 after training."""
    return [{"rule": sweep_label(k), "learning rates": ", ".join(f"{a:g}" for a in v["alphas"]),
             "validation error per epoch": ", ".join(f"{100 * e:.1f} %" for e in v["val_err"]),
             "target output pinned at 0 (after)": f"{100 * v['pinned_target_after']:.0f} %"}
            for k, v in sweep_runs(sweep).items()]  # fmt: skip


BENCH = "bench/ep"
BENCH_EXPECT = {**results.to_jsonable(EPConfig()._asdict()), "batch_size": BATCH_SIZE,
                "provenance.scale": "full"}  # fmt: skip


def load_bench(allow_missing: bool = False) -> dict[str, Any] | None:
    """The published EP benchmark (the reference configuration, minibatches of 20).

    Raises:
        MissingResults: when it is not published (``None`` instead with ``allow_missing``).
    """
    return _load_one(BENCH, BENCH_EXPECT, "python benchmarks/ep.py --publish", allow_missing)


def headline_text(found: Mapping[str, Group]) -> str:
    """What the 784-500-10 and 784-256-256-10 EP runs reach, each against its published number
    (Markdown); says so when the runs are absent."""
    text = []
    ref, deep = found.get("mnist_784-500-10_ep"), found.get("mnist_784-256-256-10_ep")
    if ref:
        low, high = PUBLISHED["784-500-10"]["test_err_range"]
        text.append(f"The 784-500-10 network trained by EP reaches a test error of "
                    f"{in_range_text(final_errors(ref), low, high)}.")  # fmt: skip
    if deep:
        pub = PUBLISHED["784-256-256-10"]
        accs = [r["metrics"]["test_acc"] for r in deep.values()]
        text.append(
            f"The deeper 784-256-256-10 network, after {EP_RUNS['mnist_784-256-256-10_ep'].epochs} "
            f"epochs, reaches a test accuracy of {report.versus(accs, pub['test_acc'], digits=2)}. "
            f"The published number is the final accuracy of classic EP after {pub['epochs']} epochs "
            "with another protocol (350 relaxation steps, $\\beta = 0.1$, a smooth sigmoid); ours "
            "uses the reference code's settings and a shorter budget, so it is a lower bound of what "
            "this configuration reaches, not a failed reproduction of that protocol.")  # fmt: skip
    return " ".join(text) or "The full runs are absent here (the commands are listed below)."


def backprop_gaps(found: Mapping[str, Group], mlps: Mapping[str, Group]) -> dict[str, float]:
    """Per architecture with both: EP's mean test error minus backprop's, in points."""
    pairs = {"784-500-10": "mnist_784-500-10_ep", "784-256-256-10": "mnist_784-256-256-10_ep"}
    return {arch: 100 * (np.mean(final_errors(found[tag])) - np.mean(mlp_errors(mlps[arch])))
            for arch, tag in pairs.items() if found.get(tag) and mlps.get(arch)}  # fmt: skip


def gap_text(gaps: Mapping[str, float], found: Mapping[str, Group] | None = None,
             mlps: Mapping[str, Group] | None = None) -> str:  # fmt: skip
    """``"784-500-10: EP's test error is 0.45 points above backprop's."`` per architecture.

    Given the runs (``found``, ``mlps``), each gap also says whether it is within the seeds'
    spread (:func:`spread_words`), and the text ends with the rule
    (:data:`gridlib.report.SPREAD_RULE`)."""
    parts = []
    for arch, g in gaps.items():
        where = f"{abs(g):.2f} points {'above' if g > 0 else 'below'} backprop's"
        if found is not None and mlps is not None:
            where += ", " + spread_words(final_errors(found[f"mnist_{arch}_ep"]), mlp_errors(mlps[arch]))
        parts.append(f"{arch}: EP's test error is {where}.")
    if found is not None and mlps is not None:
        parts.append(f"Here, as throughout the book, {report.SPREAD_RULE}.")
    return " ".join(parts)


def in_range_text(values: Sequence[float], low: float, high: float) -> str:
    """``"2.55 ± 0.14 % (n=3), inside the published 2–3 % range"`` (or below / above it)."""
    m, _ = report.mean_sd(values)
    where = "inside" if low <= m <= high else ("below" if m < low else "above")
    return (f"{report.format_mean_sd(values, 2, percent=True)}, {where} the published "
            f"{100 * low:g}–{100 * high:g} % range")  # fmt: skip


# --------------------------------------------------------------------------------------------
# The same network on Fashion-MNIST (ep-fashion-mnist)
# --------------------------------------------------------------------------------------------

#: How the Fashion-MNIST chapter names its data sets, in the order of its tables.
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
#: The network the Fashion-MNIST chapter carries over: the MNIST chapter's reference EP
#: configuration.
CROSS_ARCH = "784-500-10"
CROSS_CFG = EP_RUNS["mnist_784-500-10_ep"].cfg
#: Its epochs, the same for EP and the backprop baseline.
CROSS_EPOCHS = EP_RUNS["mnist_784-500-10_ep"].epochs


def cross_ep_pattern(dataset: str) -> str:
    """``ep/<dataset>_784-500-10_ep_seed*``: the seeds of the reference EP run on ``dataset``
    (the names ``python -m gridlib ep-mnist --dataset`` writes)."""
    from gridlib.ep.experiments import results_tag

    return f"ep/{results_tag(CROSS_CFG, dataset)}_seed*"


def cross_ep_expect(dataset: str) -> dict[str, Any]:
    """:func:`ep_expect` of the reference run, plus ``dataset`` for any data set but MNIST (MNIST
    records predate the field; see :func:`gridlib.ep.experiments.record_config`)."""
    exp = ep_expect("mnist_784-500-10_ep")
    return exp if dataset == "mnist" else {**exp, "dataset": dataset}


def cross_mlp_expect(dataset: str) -> dict[str, Any]:
    """:func:`mlp_expect` of the 784-500-10 baseline on ``dataset``."""
    return {**mlp_expect(CROSS_ARCH), "dataset": dataset}


def cross_commands(dataset: str, seed: int) -> tuple[str, str]:
    """The EP and the backprop command that make and publish one seed of ``dataset``."""
    flag = "" if dataset == "mnist" else f" --dataset {dataset}"
    return (f"python -m gridlib ep-mnist{flag} --seed {seed} --publish",
            f"{mlp_command(CROSS_ARCH, seed, dataset)} --publish")  # fmt: skip


def wrap_command(command: str, width: int = 60) -> str:
    """``command`` as shell lines of at most about ``width`` characters, continued with ``\\``
    and never split between a flag and its value (a phone-wide block of commands)."""
    groups: list[str] = []  # the program and its arguments, then each flag with its value
    for token in command.split():
        if token.startswith("--") or not groups:
            groups.append(token)
        else:
            groups[-1] += " " + token
    lines = [groups[0]]
    for g in groups[1:]:
        if len(lines[-1]) + 1 + len(g) > width:
            lines.append("    " + g)
        else:
            lines[-1] += " " + g
    return " \\\n".join(lines)


class CrossRuns(NamedTuple):
    """What the Fashion-MNIST chapter loads: per data set, the EP and backprop seeds of 784-500-10 and the ReLU
    control; the NeuralGrid blog configuration's seeds on Fashion-MNIST, the blog's own accuracy
    and epochs."""

    ep: dict[str, Group]
    mlp: dict[str, Group]
    relu: dict[str, Group]
    neuralgrid: Group
    neuralgrid_published: float
    neuralgrid_epochs: int


def relu_pattern(dataset: str) -> str:
    """The seeds of the Fashion-MNIST chapter's control on ``dataset``: the baseline with ReLU hidden units
    instead of the clip, under its own name (the baseline's default name does not hold the
    activation)."""
    return f"baselines/{dataset}-mlp-relu-{CROSS_ARCH}_seed*"


def relu_command(dataset: str, seed: int) -> str:
    """The command that makes and publishes one seed of the ReLU control on ``dataset``."""
    return (mlp_command(CROSS_ARCH, seed, dataset).replace("hard_sigmoid01", "relu")
            + f" --name {relu_pattern(dataset).replace('*', str(seed))} --publish")  # fmt: skip


def load_cross_runs(allow_missing: bool = False) -> CrossRuns:
    """Every group of :class:`CrossRuns`, each checked against the configuration the chapter
    describes. NeuralGrid's are the NeuralGrid chapter's runs, checked with its expectations
    (:data:`gridlib.neuralgrid.summary.BLOG_EXPECT`).

    Raises:
        MissingResults: when a seed is missing (:func:`cross_missing`) or NeuralGrid has no
            run; with ``allow_missing``, the groups hold what there is (empty when nothing).
    """
    from gridlib.neuralgrid.experiments import BLOG, BLOG_TEST_ACC
    from gridlib.neuralgrid.summary import BLOG_EXPECT

    ep = {ds: results.load_group(cross_ep_pattern(ds), expect=cross_ep_expect(ds), allow_empty=True)
          for ds in DATASET_NAMES}  # fmt: skip
    mlp = {ds: results.load_group(f"baselines/{ds}-mlp-{CROSS_ARCH}_seed*", expect=cross_mlp_expect(ds),
                                  allow_empty=True) for ds in DATASET_NAMES}  # fmt: skip
    relu = {ds: results.load_group(relu_pattern(ds), expect={**cross_mlp_expect(ds), "activation": "relu"},
                                   allow_empty=True) for ds in DATASET_NAMES}  # fmt: skip
    ng = results.load_group("neuralgrid/fashion_mnist_blog_seed*", expect=BLOG_EXPECT, allow_empty=True)
    runs = CrossRuns(ep, mlp, relu, ng, BLOG_TEST_ACC, BLOG.epochs)
    todo = cross_missing(runs) + ([] if ng else ["python -m gridlib neuralgrid-fashion --preset blog --seed 0"])
    return _require(runs, "Fashion-MNIST seeds", todo, allow_missing)


def ep_accuracies(group: Group) -> list[float]:
    """The final test accuracy of each seed of an EP group."""
    return [r["metrics"]["test_acc"] for r in group.values()]


def mlp_accuracies(group: Group) -> list[float]:
    """The final test accuracy of each seed of a backprop group."""
    return [r["metrics"]["test/acc"] for r in group.values()]


def neuralgrid_accuracies(group: Group) -> list[float]:
    """The final test accuracy of each seed of a NeuralGrid group."""
    return [r["metrics"]["test_acc"] for r in group.values()]


def ep_train_accuracies(group: Group) -> list[float]:
    """Each EP seed's running training accuracy over the last epoch (before each update)."""
    return [1 - r["metrics"]["train_err_running"] for r in group.values()]


def mlp_train_accuracies(group: Group) -> list[float]:
    """Each backprop seed's running training accuracy over the last epoch (before each update)."""
    return [r["metrics"]["train/acc"] for r in group.values()]


def _row(system: str, rule: str, group: Group, test: list[float], train: list[float] | None) -> dict:
    return {"system": system, "rule": rule, "epochs": next(iter(group.values()))["config"]["epochs"],
            "seeds": len(group),
            "test accuracy": report.format_mean_sd(test, 2, True, n=False, key=report.group_key(group)),
            "training accuracy": report.format_mean_sd(train, 2, True, n=False) if train else "–"}  # fmt: skip


def cross_rows(runs: CrossRuns, dataset: str = "fashion_mnist") -> list[dict]:
    """One row per system with results on ``dataset``: what is trained, by which rule, for how
    many epochs, its seeds, and its test and running training accuracy (mean ± sd over seeds); the
    ReLU control; on Fashion-MNIST also NeuralGrid, reproduced and as
    published (no training accuracy recorded)."""
    rows = []
    ep, mlp, relu = runs.ep.get(dataset), runs.mlp.get(dataset), runs.relu.get(dataset)
    if ep:
        rows.append(_row(f"{CROSS_ARCH} network", "EP (SGD, squared error)", ep, ep_accuracies(ep),
                         ep_train_accuracies(ep)))  # fmt: skip
    if mlp:
        rows.append(_row(f"{CROSS_ARCH} MLP", "backprop (Adam, cross-entropy)", mlp, mlp_accuracies(mlp),
                         mlp_train_accuracies(mlp)))  # fmt: skip
    if relu:
        rows.append(_row(f"{CROSS_ARCH} MLP, ReLU (control)", "backprop (Adam, cross-entropy)", relu,
                         mlp_accuracies(relu), mlp_train_accuracies(relu)))  # fmt: skip
    if dataset != "fashion_mnist":
        return rows
    if runs.neuralgrid:
        c = next(iter(runs.neuralgrid.values()))["config"]
        rows.append(_row(f"NeuralGrid {c['height']}×{c['width']} (ours)", "backprop (Adam)", runs.neuralgrid,
                         neuralgrid_accuracies(runs.neuralgrid), None))  # fmt: skip
    rows.append({"system": "NeuralGrid 64×64 (blog)", "rule": "backprop (Adam)", "epochs": runs.neuralgrid_epochs,
                 "seeds": "1 run", "test accuracy": f"{100 * runs.neuralgrid_published:.1f} %",
                 "training accuracy": "–"})  # fmt: skip
    return rows


def locality_gaps(runs: CrossRuns, control: bool = False) -> dict[str, float]:
    """Per data set with both: backprop's mean test accuracy minus EP's, in points (positive: EP
    is behind); with ``control``, the ReLU control's instead of the baseline's."""
    bp = runs.relu if control else runs.mlp
    return {ds: 100 * (np.mean(mlp_accuracies(bp[ds])) - np.mean(ep_accuracies(runs.ep[ds])))
            for ds in DATASET_NAMES if runs.ep.get(ds) and bp.get(ds)}  # fmt: skip


def gap_rows(runs: CrossRuns) -> list[dict]:
    """One row per data set with both rules: EP, backprop and backprop minus EP, in points; then
    the same for the ReLU control ("–" where it has no runs)."""
    gaps, control = locality_gaps(runs), locality_gaps(runs, control=True)
    rows = []
    for ds, g in gaps.items():
        relu = runs.relu.get(ds)
        rows.append({"data set": DATASET_NAMES[ds],
                     "EP": report.format_mean_sd(ep_accuracies(runs.ep[ds]), 2, True, n=False,
                                                 key=report.group_key(runs.ep[ds])),
                     "backprop": report.format_mean_sd(mlp_accuracies(runs.mlp[ds]), 2, True, n=False,
                                                       key=report.group_key(runs.mlp[ds])),
                     "backprop − EP": f"{report.signed(g)} points",
                     "backprop, ReLU": report.format_mean_sd(mlp_accuracies(relu), 2, True, n=False,
                                                             key=report.group_key(relu)) if relu else "–",
                     "ReLU − EP": f"{report.signed(control[ds])} points" if ds in control else "–"})  # fmt: skip
    return rows


def cross_curves(runs: CrossRuns, dataset: str) -> dict[str, dict[str, Any]]:
    """Test accuracy in percent per epoch, one column per seed, for EP, backprop and the ReLU
    control on ``dataset`` (for :func:`gridlib.plotting.learning_curves`)."""
    curves = {}
    groups = (("EP", runs.ep.get(dataset)), ("backprop", runs.mlp.get(dataset)),
              ("backprop, ReLU", runs.relu.get(dataset)))  # fmt: skip
    for label, group in groups:
        if not group:
            continue
        hists = [r["history"] for r in group.values()]
        n = min(len(h["test/acc"]) for h in hists)
        curves[label] = {"epoch": hists[0]["epoch"][:n],
                         "test/acc": np.stack([100 * np.asarray(h["test/acc"][:n], float) for h in hists], 1)}
    return curves


def cross_figure(runs: CrossRuns):
    """Test accuracy per epoch of EP and backprop (mean ± sd over seeds), one panel per data set;
    on Fashion-MNIST the blog's NeuralGrid accuracy (after its own, longer schedule) dashed."""
    import matplotlib.pyplot as plt

    from gridlib import plotting

    shown = [ds for ds in DATASET_NAMES if cross_curves(runs, ds)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.8), squeeze=False)
    legend: dict[str, Any] = {}
    for ax, ds in zip(axes[0], shown, strict=True):
        ref = 100 * runs.neuralgrid_published if ds == "fashion_mnist" else None
        plotting.learning_curves(cross_curves(runs, ds), "test/acc", ax=ax, ylabel="test accuracy (%)",
                                 reference=ref,
                                 reference_label=f"NeuralGrid, blog ({runs.neuralgrid_epochs} epochs)")  # fmt: skip
        ax.set_title(DATASET_NAMES[ds])
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
        ax.get_legend().remove()
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def live_rows(live: Mapping[str, Any]) -> list[dict]:
    """One row per rule of :func:`gridlib.ep.experiments.run_pair`'s runs: epochs and test
    accuracy."""
    return [{"rule": label, "epochs": len(r.history["epoch"]),
             "test accuracy": f"{100 * r.last['test/acc']:.1f} %"} for label, r in live.items()]  # fmt: skip


def cross_missing(runs: CrossRuns, seeds: Iterable[int] = SEEDS) -> list[str]:
    """The commands that make every missing EP and backprop seed of the Fashion-MNIST chapter
    (empty when none)."""
    def have(group: Group) -> set[int]:
        return {r["provenance"]["seed"] for r in group.values()}

    seeds = tuple(seeds)
    out = []
    for ds in DATASET_NAMES:
        for k, group in enumerate((runs.ep[ds], runs.mlp[ds])):
            out += [cross_commands(ds, s)[k] for s in seeds if s not in have(group)]
        out += [relu_command(ds, s) for s in seeds if s not in have(runs.relu[ds])]
    return out


# --------------------------------------------------------------------------------------------
# Presentation helpers of the chapters' tidy cells
# --------------------------------------------------------------------------------------------


def beta_sweep(params, x, d, free, cfg: EPConfig, reference, betas: Sequence[float],
               n_nudge: int = 500) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """EP's gradient estimates against a reference gradient over a sweep of ``|beta|``.

    For every ``beta`` in ``betas`` the one-sided estimate (:func:`gridlib.ep.ep_gradient`) and
    the centered one (:func:`gridlib.ep.symmetric_gradient`) are computed from the free fixed
    point ``free`` with ``n_nudge`` nudged steps, and compared with ``reference`` (a
    :class:`gridlib.ep.Params` of gradients, e.g. :func:`gridlib.ep.rbp_gradient`).

    Args:
        params, x, d, free, cfg: as for :func:`gridlib.ep.ep_gradient`; ``x`` is ``(B, n_0)``,
            ``d`` the one-hot targets ``(B, n_N)``.
        reference: the gradient to compare with, the same structure as ``params``.
        betas: the nudging strengths, shape ``(K,)``.

    Returns:
        ``(one_sided, centered)``, each of shape ``(K, 2)``: per ``beta`` the :func:`cosine` and
        the :func:`relative_error` of the estimate against ``reference``.
    """
    from gridlib.ep.equilibrium import ep_gradient, symmetric_gradient

    def against(g):
        return cosine(g, reference), relative_error(g, reference)

    one = [against(ep_gradient(params, x, d, free, b, cfg, n_nudge=n_nudge)[0]) for b in betas]
    cen = [against(symmetric_gradient(params, x, d, free, b, cfg, n_nudge=n_nudge)) for b in betas]
    return np.array(one), np.array(cen)


#: The test error Scellier & Bengio (2017) report for *all* their MNIST networks (one to three
#: hidden layers): "between 2 and 3 %". There is no number per architecture.
PAPER_TEST_ERR_RANGE = PUBLISHED["784-500-10"]["test_err_range"]


def range_text(found: Mapping[str, Group]) -> str:
    """Both EP networks of the MNIST chapter against the paper's one 2-3 % range (Markdown).

    Each network with results reads ``"784-500-10: 2.55 ± 0.14 % (n=3), inside the published
    2–3 % range"`` (:func:`in_range_text`); says so when the runs are absent.
    """
    low, high = PAPER_TEST_ERR_RANGE
    parts = []
    for tag in ("mnist_784-500-10_ep", "mnist_784-256-256-10_ep"):
        if found.get(tag):
            arch = EP_RUNS[tag].label.split(",")[0]
            epochs = EP_RUNS[tag].epochs
            parts.append(f"{arch} after {epochs} epochs, "
                         f"{in_range_text(final_errors(found[tag]), low, high)}")
    if not parts:
        return "The full runs are absent here (the commands are listed below)."
    return ("Test error of EP, mean ± sd over seeds: " + "; ".join(parts) + ". The paper "
            "reports one range, 2–3 % test error, for all its networks, and no number per "
            "architecture.")  # fmt: skip


def curves_range_figure(found: Mapping[str, Group]):
    """:func:`curves_figure` with the shaded band labelled as what it is: the paper's one 2-3 %
    test-error range for all its networks (not a number for 784-500-10 alone)."""
    fig = curves_figure(found)
    low, high = PAPER_TEST_ERR_RANGE
    for legend in fig.legends:
        for text in legend.get_texts():
            if text.get_text().startswith("published test error"):
                text.set_text(f"published range, all networks ({100 * low:g}–{100 * high:g} %)")
    return fig


def spread_words(a: Sequence[float], b: Sequence[float]) -> str:
    """``"beyond the seeds' spread"`` or ``"within the seeds' spread"`` for two sets of seeds
    that are not paired (two rules, two codes), by the book's one rule
    (:func:`gridlib.report.groups_differ`, :data:`gridlib.report.SPREAD_RULE`)."""
    return "beyond the seeds' spread" if report.groups_differ(a, b) else "within the seeds' spread"


def paired_differences(a: Group, b: Group, values: Any) -> list[float]:
    """``values(a) - values(b)`` seed by seed, for two groups whose runs share their seeds
    (the same initialisation and minibatch order, e.g. two estimators of one network); only
    the seeds both have. ``values`` maps a group to one number per record, in its order."""
    def by_seed(group: Group) -> dict[Any, float]:
        return {r["provenance"]["seed"]: v for r, v in zip(group.values(), values(group), strict=True)}

    return list(report.paired_differences(by_seed(a), by_seed(b)).values())


#: The ratio of ``bench/ep`` that :func:`step_ratio_text` states (``benchmarks/ep.py`` writes it).
EP_OVER_BACKPROP = "EP's step over backprop's, same network (wall time)"


def bench_rows(bench: Mapping[str, Any]) -> list[dict[str, str]]:
    """The EP benchmark's rows for reading: seconds to one decimal, and which clock each
    column measures (the speed-up is of wall time)."""
    return [{"implementation": r["implementation"], "examples/s": f"{r['examples/s']:,}",
             "s per 60k epoch (wall)": f"{r['s per 60k epoch']:.1f}",
             "CPU-s per 60k epoch": f"{r['CPU-s per 60k epoch']:.1f}",
             "speed-up vs per-example (wall)": f"{r['speed-up vs per-example']:.1f}×"}
            for r in bench["metrics"]["rows"]]  # fmt: skip


def step_ratio_text(bench: Mapping[str, Any]) -> str:
    """EP's training step against backprop's on the same network, both timed in one run of the
    benchmark (Markdown): the ratio of their wall times, with the library's seconds per 60,000
    examples."""
    lib = next(r for r in bench["metrics"]["rows"] if r["implementation"].startswith("gridlib.ep"))
    ratio = bench["metrics"]["like_for_like"][EP_OVER_BACKPROP]
    return (f"In the same run, the library's EP step takes {lib['s per 60k epoch']:.1f} s per "
            f"60,000 examples of wall time, {ratio:.1f}× backprop's on the same network (the "
            "ratios above are of CPU time): every update waits "
            "for the network to settle twice. Centered EP adds a third relaxation per update; "
            "the benchmark does not time it.")


def bench_text(bench: Mapping[str, Any]) -> str:
    """What the EP benchmark's like-for-like ratios say, in one Markdown paragraph: the explicit
    forces against batched ``jax.grad`` with the loss alone and with the library's metrics, and
    the metrics' share of the library step (all in CPU time)."""
    like = bench["metrics"]["like_for_like"]
    loss_only = like["explicit over autodiff, loss only (CPU-s)"]
    with_metrics = like["explicit over autodiff, library metrics (CPU-s)"]
    share = like["library metrics' share of the library step (CPU-s)"]
    return (f"In CPU time, the explicit forces are {loss_only:.2f}× as fast as batched "
            f"`jax.grad` with the loss alone, and {with_metrics:.2f}× with the library's "
            f"metrics; the metrics take {share:.0%} of the library's step. A slower library "
            "row against plain autodiff is the price of its metrics, not of its relaxation.")


def seed_failure_table_rows(table: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """:func:`seed_failure_rows` with both error rates to two decimals, as the chapter's text
    quotes them (one run per variant, so there is no spread to show)."""
    return [{"variant": k, "what changes": v["description"],
             "train error (running)": f"{100 * v['train_err_running']:.2f} %",
             "test error": f"{100 * v['test_err']:.2f} %"} for k, v in table.items()]  # fmt: skip


def bptt_table_rows(sweep: Mapping[str, Any]) -> list[dict]:
    """:func:`bptt_rows` with the validation errors to two decimals, as the chapter's text
    quotes them (one run per rule and learning-rate scale)."""
    return [{"rule": sweep_label(k), "learning rates": ", ".join(f"{a:g}" for a in v["alphas"]),
             "validation error per epoch": ", ".join(f"{100 * e:.2f} %" for e in v["val_err"]),
             "target output pinned at 0 (after)": f"{100 * v['pinned_target_after']:.0f} %"}
            for k, v in sweep_runs(sweep).items()]  # fmt: skip
