"""Measurements for the chapters: gradient agreement of SnAP-1 and exact RTRL with BPTT, and the
published row-wise MNIST runs gathered into the rows the chapter shows.

Why this module is long: it serves three chapters (12, 13 and the rule comparison) from one
naming scheme of runs (:class:`MnistRun`, :func:`parse_run_name`): the loaders must agree with
each other on what a configuration is, so they live together.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import report, results
from gridlib.filtergrid.bptt import bptt_grads
from gridlib.filtergrid.cell import GridParams
from gridlib.filtergrid.model import init_params
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap1 import snap1_grads

GROUPS = GridParams._fields
#: Each parameter group as the chapters' tables name it (``GridParams``' fields are code).
GROUP_WORDS = {"w_left": "w_L", "w_top": "w_T", "bias": "bias", "log_tau": "log τ"}


def _relative_errors(keys, xs, n, m, mode):
    """Per-group ``|g - g_bptt| / |g_bptt|`` of SnAP-1 and RTRL for a batch of random problems."""

    def one(key, x):
        p = init_params(key, n, m, tau_min=5e-3, tau_max=200e-3, dtype=x.dtype)
        label = jax.random.randint(key, (), 0, m)
        g_b, g_s, g_r = (f(p, x, label, mode)[2] for f in (bptt_grads, snap1_grads, rtrl_grads))

        def rel(g):
            return jnp.stack([jnp.linalg.norm(a - b) / jnp.linalg.norm(b)
                              for a, b in zip(g, g_b, strict=True)])

        return rel(g_s), rel(g_r)

    return jax.vmap(one)(keys, xs)


def gradient_agreement(ts=(1, 5, 20, 100), n_draws: int = 10, n: int = 4, m: int = 4,
                       mode: str = "sum", seed: int = 0) -> dict:
    """The original gradient check, extended: 4x4 grid, float64, tau in [5, 200] ms, inputs
    0.5 N(0,1). Returns ``{T: {"snap1/<group>": median rel. error, "rtrl/max": max rel. error}}``
    over ``n_draws`` random problems per ``T``. Needs ``jax_enable_x64``."""
    if not jax.config.jax_enable_x64:
        raise ValueError("gradient_agreement measures float64 agreement: enable jax_enable_x64")
    if n_draws < 1 or min(ts) < 1:
        raise ValueError(f"need n_draws >= 1 and every T >= 1, got {n_draws}, {ts}")
    fn = jax.jit(_relative_errors, static_argnums=(2, 3, 4))
    out = {}
    for t in ts:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), t)
        keys = jax.random.split(key, n_draws)
        xs = 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (n_draws, t, n), jnp.float64)
        e_snap, e_rtrl = (np.asarray(z) for z in fn(keys, xs, n, m, mode))
        row = {f"snap1/{g}": float(np.median(e_snap[:, q])) for q, g in enumerate(GROUPS)}
        row["rtrl/max"] = float(e_rtrl.max())
        out[int(t)] = row
    return out


# --------------------------------------------------------------------------- row-wise MNIST runs

class MnistRun(NamedTuple):
    """One row-wise MNIST training configuration of ``filtergrid-mnist`` (the seed aside).

    ``window``: truncated BPTT's ``K``; ``every_step``: online SnAP-1 with an optimiser step at
    every time step. The loss is the rule's own: ``"per_t"`` for online SnAP-1, else ``"sum"``.
    """

    rule: str
    optimizer: str = "adam"
    batch_size: int = 32
    epochs: int = 10
    window: int | None = None
    every_step: bool = False

    @property
    def loss(self) -> str:
        return "per_t" if self.rule == "online_snap1" else "sum"

    def name(self, seed, n_train: int = 60000) -> str:
        from gridlib.filtergrid.experiments import run_name

        return run_name(self.rule, self.optimizer, self.batch_size, self.epochs, n_train, seed,
                        self.window, self.every_step)


#: The published row-wise MNIST configurations of *Row-wise MNIST with SnAP-1*: label -> run.
MNIST_RUNS = {
    "SnAP-1, Adam": MnistRun("snap1"),
    "BPTT, Adam": MnistRun("bptt"),
    "SnAP-1, SGD batch 1": MnistRun("snap1", "sgd", 1, 3),
}

#: Every temporal rule at the original budget (Adam, batch 32, 10 epochs): label -> run.
RULE_RUNS = {
    "BPTT": MnistRun("bptt"),
    "truncated BPTT, K = 4": MnistRun("tbptt", window=4),
    "truncated BPTT, K = 1": MnistRun("tbptt", window=1),
    "SnAP-2": MnistRun("snap2"),
    "SnAP-1": MnistRun("snap1"),
    "SnAP-0": MnistRun("snap0"),
    "online SnAP-1 (per-step loss)": MnistRun("online_snap1"),
}

#: Each temporal rule of ``filtergrid-mnist`` in words, as the chapters' tables name it.
RULE_WORDS = {"bptt": "BPTT", "rtrl": "exact RTRL", "tbptt": "truncated BPTT", "snap0": "SnAP-0",
              "snap1": "SnAP-1", "snap2": "SnAP-2", "online_snap1": "online SnAP-1"}  # fmt: skip
_OPTIMIZER_WORDS = {"adam": "Adam", "sgd": "per-group SGD"}


def run_words(config: dict) -> str:
    """A row-wise MNIST run's configuration in words, as the chapters' tables name it: rule,
    optimiser, batch and schedule, e.g. ``"SnAP-1, Adam, batch 32, 10 epochs"`` or
    ``"online SnAP-1 (an update at every time step), per-group SGD, batch 1, up to 15 epochs,
    stopped on validation (patience 3)"``.

    Args:
        config: a record's ``config`` (``rule``, ``optimizer``, ``batch_size``, and ``epochs``
            or ``max_epochs`` and ``patience``; ``window`` for truncated BPTT).
    """
    rule = RULE_WORDS[config["rule"]]
    if config.get("window") is not None:
        rule += f" (K = {config['window']})"
    if config.get("update_every_step"):
        rule += " (an update at every time step)"
    if "max_epochs" in config:
        schedule = (f"up to {config['max_epochs']} epochs, stopped on validation "
                    f"(patience {config['patience']})")
    else:
        schedule = report.plural(int(config["epochs"]), "epoch")
    optimizer = _OPTIMIZER_WORDS.get(config["optimizer"], config["optimizer"])
    return f"{rule}, {optimizer}, batch {config['batch_size']}, {schedule}"


_RUN_NAME = re.compile(r"filtergrid/(?P<label>[a-z0-9_]+?)_(?P<opt>adam|sgd)_b(?P<batch>\d+)"
                       r"_e(?P<epochs>\d+)_n(?P<n>\d+)_seed(?P<seed>\d+|\*)")


def parse_run_name(name: str) -> tuple[MnistRun, int, str] | None:
    """``(run, n_train, seed)`` of a :func:`~gridlib.filtergrid.experiments.run_name`, or
    ``None`` for another name: the inverse of ``MnistRun.name``."""
    from gridlib.filtergrid.temporal import TEMPORAL_RULES

    m = _RUN_NAME.fullmatch(name)
    if m is None:
        return None
    label, every = m["label"], m["label"].endswith("_everystep")
    label = label.removesuffix("_everystep")
    rule, window = label, None
    if label not in TEMPORAL_RULES and label.startswith("tbptt") and label[5:].isdigit():
        rule, window = "tbptt", int(label[5:])
    if rule not in TEMPORAL_RULES:
        return None
    run = MnistRun(rule, m["opt"], int(m["batch"]), int(m["epochs"]), window, every)
    return run, int(m["n"]), m["seed"]


def mnist_expect(rule: str | MnistRun, optimizer: str = "adam", batch_size: int = 32,
                 epochs: int = 10, n_train: int = 60000) -> dict:  # fmt: skip
    """The configuration the book relies on for one row-wise MNIST run, as ``results.load``'s
    ``expect``: the full test set, the 28x10 grid, gain 10, tau in [1, 20] ms, the rule's loss,
    Adam's lr 3e-3 or SGD's eta0 1e-2, and a full-scale run. ``rule`` may be a whole
    :class:`MnistRun` (then its window and per-step updates are expected too)."""
    run = rule if isinstance(rule, MnistRun) else MnistRun(rule, optimizer, batch_size, epochs)
    expect = {"rule": run.rule, "optimizer": run.optimizer, "batch_size": run.batch_size,
              "epochs": run.epochs, "n_train": n_train, "n_test": 10000, "grid": [28, 10],
              "gain": 10.0, "tau_min": 1e-3, "tau_max": 20e-3, "loss": run.loss,
              "provenance.scale": "full"}
    expect.update({"lr": 3e-3} if run.optimizer == "adam" else {"eta0": 1e-2})
    if run.window is not None:
        expect["window"] = run.window
    if run.every_step:
        expect["update_every_step"] = True
    return expect


def mnist_command(rule: str | MnistRun, optimizer: str = "adam", batch_size: int = 32,
                  epochs: int = 10, seed: int | str = 0, n_train: int = 60000) -> str:  # fmt: skip
    """The command that makes one run."""
    run = rule if isinstance(rule, MnistRun) else MnistRun(rule, optimizer, batch_size, epochs)
    extra = f" --n-train {n_train}" if n_train != 60000 else ""
    extra += f" --window {run.window}" if run.window is not None else ""
    extra += " --update-every-step true" if run.every_step else ""
    return (f"python -m gridlib filtergrid-mnist --rule {run.rule} --optimizer {run.optimizer} "
            f"--batch-size {run.batch_size} --epochs {run.epochs}{extra} --seed {seed} --publish")


def load_mnist_runs(seeds=(0, 1, 2), runs: dict[str, MnistRun] | None = None,
                    n_train: int = 60000) -> tuple[dict[str, dict[str, dict]], list[str]]:  # fmt: skip
    """The published seeds of each configuration of ``runs`` (default :data:`MNIST_RUNS`).

    Returns ``({label: {result name: record}}, commands of the missing seeds)``. Each group is
    read with :func:`gridlib.results.load_group`, so a file whose configuration differs from
    :func:`mnist_expect`, or seeds that differ in anything but the seed, raise
    :class:`gridlib.results.ResultsError`.
    """
    groups, missing = {}, []
    for label, run in (runs or MNIST_RUNS).items():
        wanted = {run.name(s, n_train): s for s in seeds}
        group = results.load_group(run.name("*", n_train), expect=mnist_expect(run, n_train=n_train),
                                   allow_empty=True)
        groups[label] = {n: group[n] for n in wanted if n in group}
        missing += [mnist_command(run, seed=s, n_train=n_train) for n, s in wanted.items()
                    if n not in group]
    return groups, missing


def final_accuracies(group: dict[str, dict]) -> list[float]:
    """Final full-test-set accuracy of each run of a group, in the group's (seed) order."""
    return [float(rec["metrics"]["test/acc"]) for rec in group.values()]


def final_accuracy_by_seed(group: dict[str, dict]) -> dict[int, float]:
    """``{seed: final test accuracy}`` (a fraction) of a group's runs."""
    return {rec["provenance"]["seed"]: float(rec["metrics"]["test/acc"]) for rec in group.values()}


def paired_differences(group_a: dict[str, dict], group_b: dict[str, dict]) -> dict[int, float]:
    """``{seed: acc_a - acc_b}`` of the final test accuracies, for the seeds both groups ran
    (:func:`gridlib.report.paired_differences`)."""
    return report.paired_differences(final_accuracy_by_seed(group_a), final_accuracy_by_seed(group_b))


def final_param_distance(record_a: dict, record_b: dict) -> float:
    """Largest absolute difference between the final parameters of two runs."""
    pa, pb = record_a["extra"]["final_params"], record_b["extra"]["final_params"]
    if set(pa) != set(pb):
        raise ValueError(f"the runs hold different parameter groups: {sorted(pa)} vs {sorted(pb)}")
    return float(max(np.max(np.abs(np.asarray(pa[k]) - np.asarray(pb[k]))) for k in pa))


# --------------------------------------------------------------------------- the original's rerun

#: The original code's own rerun (``python -m gridlib filtergrid-original``), as the chapter expects it.
ORIGINAL_RUN = "filtergrid/original_snap1_adam_b32_e10_n60000_seed0"
ORIGINAL_EXPECT = {"code": "original", "epochs": 10, "train_size": 60000, "batch_size": 32,
                   "optimizer": "adam", "lr": 3e-3, "seed": 0}
PROTOCOLS = "filtergrid/protocols"


def check_protocols_current(protocols: dict) -> None:
    """Refuse the protocols record (``filtergrid/protocols``) made from other runs than those
    published now: it evaluates each run's stored parameters, so a run remade since leaves it
    stale.

    Raises:
        gridlib.results.ResultsError: naming the first run whose test accuracy moved, and the
            command that remakes the record.
    """
    for run, row in protocols["metrics"].items():
        if not results.exists(run):
            continue
        m = results.load(run)["metrics"]
        now = m.get("test/acc", m.get("test_acc"))
        if now != row["published_test_acc"]:
            raise results.ResultsError(
                f"{PROTOCOLS} evaluated {run} when its test accuracy was {row['published_test_acc']}; "
                f"it is {now} now: remake it with `python -m gridlib filtergrid-protocols --overwrite`")


def protocol_rows() -> tuple[list[dict], dict] | None:
    """Rows of the original's rerun and of our Adam runs, each on both evaluation protocols.

    Protocols: the original's (a random 2,000-image test subset, drawn as its script draws it
    after the last epoch) and ours (all 10,000 test images), in percent with two decimals.
    Returns ``(rows, records)``, or ``None`` when either results file is missing.
    """
    if not (results.exists(ORIGINAL_RUN) and results.exists(PROTOCOLS)):
        return None
    original = results.load(ORIGINAL_RUN, expect=ORIGINAL_EXPECT)
    protocols = results.load(PROTOCOLS, expect={"val_subset": 2000})
    check_protocols_current(protocols)
    m = original["metrics"]

    def pct(x: float) -> str:
        return f"{100 * float(x):.2f} %"

    rows = [{"code": "original (its README run)", "seed": 0, "2k subset": pct(m["subset2k_acc"]),
             "full 10k": pct(m["test_acc"])}]
    rows += [{"code": "this library", "seed": r["seed"], "2k subset": pct(r["subset2k_acc"]),
              "full 10k": pct(r["test_acc"])}
             for r in protocols["metrics"].values()
             if r["code"] == "library" and r["optimizer"] == "adam"]
    return rows, {ORIGINAL_RUN: original, PROTOCOLS: protocols}


# --------------------------------------------------------------------------- the robustness study

ROBUSTNESS_RUNS = "filtergrid/robustness/all_e{epochs}_n{n_train}_seed*"
ORIGINAL_ROBUSTNESS = "filtergrid/original_robustness"
BREAK = 0.05
"""A drop in accuracy of at least this much is a "break", as in the original's report."""


class RobustnessRuns(NamedTuple):
    """The seeds of one robustness study, as arrays.

    Attributes:
        config: the shared configuration (conditions, sweeps, sweep index, values, setting).
        seeds: ``(S,)`` seeds.
        acc: ``(S, C)`` final full-test accuracy of every condition.
        curves: per seed, ``(E, C)`` test accuracy after every epoch.
        records: ``{name: record}`` for provenance.
    """

    config: dict
    seeds: list
    acc: np.ndarray
    curves: list
    records: dict


def robustness_expect(epochs: int, n_train: int) -> dict:
    """What the chapter relies on: every sweep, Adam 3e-3 at batch 32, the full test set."""
    from gridlib.filtergrid.experiments import SWEEPS

    return {"sweeps": list(SWEEPS), "epochs": epochs, "n_train": n_train, "n_test": 10000,
            "batch_size": 32, "lr": 3e-3, "optimizer": "adam", "grid": [28, 10], "gain": 10.0,
            "provenance.scale": "full"}


def load_robustness(epochs: int = 5, n_train: int = 6000) -> RobustnessRuns | None:
    """The published seeds of the study (``None`` if there are none), refused unless every
    record matches :func:`robustness_expect` and they differ in the seed alone."""
    group = results.load_group(ROBUSTNESS_RUNS.format(epochs=epochs, n_train=n_train),
                               expect=robustness_expect(epochs, n_train), allow_empty=True)
    if not group:
        return None
    recs = list(group.values())
    return RobustnessRuns(
        config=recs[0]["config"], seeds=[r["provenance"]["seed"] for r in recs],
        acc=np.array([r["metrics"]["test/acc"] for r in recs], float),
        curves=[np.asarray(r["history"]["test/acc"], float) for r in recs], records=group)


def robustness_rows(runs: RobustnessRuns, original: dict | None = None) -> list[dict]:
    """One row per sweep and value: accuracy (mean, sd over seeds) and its drop below the
    unperturbed condition, **paired by seed** (each seed's own baseline), beside the original's
    single-seed accuracy and drop where ``original`` (its report's metrics) has the condition."""
    cfg = runs.config
    base = runs.acc[:, _baseline(cfg)]
    rows = []
    for sweep, idx in cfg["sweep_index"].items():
        orig = (original or {}).get("sweeps", {}).get(sweep)
        for value, c in zip(cfg["sweep_values"][sweep], idx, strict=True):
            drop = base - runs.acc[:, c]
            label = "exact" if sweep == "3_weight_bits" and not value else f"{value:g}"
            row = {"sweep": sweep, "value": float(value), "label": label, "n": len(runs.seeds),
                   "acc": float(runs.acc[:, c].mean()), "acc_sd": _sd(runs.acc[:, c]),
                   "drop": float(drop.mean()), "drop_sd": _sd(drop)}
            if orig is not None and float(value) in orig["values"]:
                j = orig["values"].index(float(value))
                row["original_acc"] = orig["val_acc"][j]
                row["original_drop"] = original["baseline"] - orig["val_acc"][j]
            rows.append(row)
    return rows


def _sd(x: np.ndarray) -> float:
    """Sample standard deviation (0 for a single seed)."""
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def _baseline(config: dict) -> int:
    """Index of the unperturbed condition (the empty one)."""
    return config["conditions"].index({})


def robustness_figure(rows: list[dict], labels: dict[str, str], threshold: float = BREAK):
    """One panel per sweep: drop in full-test accuracy (percentage points) at every swept value,
    mean ± sd over seeds, beside the original's single-seed drop (open markers); the dashed line
    is the "break" threshold. Values sit at equal spacing, labelled with their value."""
    import matplotlib.pyplot as plt

    from gridlib.plotting import PALETTE

    sweeps = list(dict.fromkeys(r["sweep"] for r in rows))
    ncols = 3
    nrows = -(-len(sweeps) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.2, 2.1 * nrows), sharey=True, squeeze=False)
    for ax, sweep in zip(axes.flat, sweeps, strict=False):
        rs = [r for r in rows if r["sweep"] == sweep]
        x = np.arange(len(rs))
        ax.errorbar(x, [100 * r["drop"] for r in rs], yerr=[100 * r["drop_sd"] for r in rs],
                    fmt="o-", ms=3.5, capsize=2, color=PALETTE[0], label=f"this study ({rs[0]['n']} seeds)")
        if any("original_drop" in r for r in rs):
            xo = [i for i, r in enumerate(rs) if "original_drop" in r]
            ax.plot(xo, [100 * rs[i]["original_drop"] for i in xo], "s", mfc="none", ms=4.5,
                    color=PALETTE[1], label="original (1 seed, 2k subset)")
        ax.axhline(100 * threshold, ls="--", lw=0.8, color="0.4")
        ax.axhline(0, lw=0.6, color="0.6")
        ax.set_xticks(x, [r["label"] for r in rs], fontsize=9)
        ax.set_title(labels.get(sweep, sweep), fontsize=9)
    for ax in axes.flat[len(sweeps):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("drop (points)")
    handles, texts = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles, texts, loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0.0), fontsize=9)
    return fig


BIAS_SWEEPS = ("1a_leak", "1b_gain_sym", "1b_gain_asym_A", "1b_gain_asym_B", "1c_subtraction")
NOISE_SWEEPS = ("2a_eps_noise", "2b_msg_noise", "2c_combined_noise")


def _sem(r: dict) -> float:
    return r["drop_sd"] / np.sqrt(max(r["n"], 1))


# ---------------------------------------- presentation helpers of *SnAP-1 on imperfect hardware*

def sweep_label(sweep: str) -> str:
    """The words a reader sees for a sweep (its ``label`` in
    :data:`~gridlib.filtergrid.experiments.SWEEPS`), never its identifier."""
    from gridlib.filtergrid.experiments import SWEEPS

    return SWEEPS[sweep].label if sweep in SWEEPS else sweep


def _half(sem: float, n: int) -> float:
    """Half-width of the 95 % t interval of a mean over ``n`` seeds with standard error ``sem``:
    the book's one spread rule (:data:`gridlib.report.SPREAD_RULE`, as in
    :func:`gridlib.report.beyond_spread`). A single seed has no interval (infinite half-width)."""
    return report.t95(n - 1) * sem if n > 1 else float("inf")


def _flat(g) -> jax.Array:
    return jnp.concatenate([z.ravel() for z in g])


_JITTED = {}


def _perturbed_rule():
    """The perturbed SnAP-1 rule, jitted once per process."""
    if "rule" not in _JITTED:
        from gridlib.filtergrid.perturb import perturbed_snap1_batch_grads

        _JITTED["rule"] = jax.jit(perturbed_snap1_batch_grads, static_argnames=("mode", "dt"))
    return _JITTED["rule"]


def _exact_snap1(params, xs, ys) -> jax.Array:
    from gridlib.filtergrid.snap1 import snap1_batch_grads

    return _flat(snap1_batch_grads(params, xs, ys)[2])


def gradient_distortion(params, xs, ys, key=None, exact=None,
                        **knobs) -> tuple[float, float]:  # fmt: skip
    """How far the perturbed rule's gradient is from exact SnAP-1 on one batch.

    Args:
        params: grid parameters (``GridParams`` of ``(N, M)`` arrays).
        xs: ``(B, T, N)`` input sequences; ys: ``(B,)`` labels.
        key: PRNG key for the noise (default ``PRNGKey(1)``).
        exact: the flattened exact SnAP-1 gradient, if already computed.
        **knobs: keyword arguments of :func:`~gridlib.filtergrid.perturb.perturbation`
            (none: the identity, which is SnAP-1).

    Returns:
        ``(cosine, relative distance)`` of the flattened gradient with the exact SnAP-1 one.
    """
    from gridlib.filtergrid.perturb import perturbation

    exact = _exact_snap1(params, xs, ys) if exact is None else exact
    key = jax.random.PRNGKey(1) if key is None else key
    g = _flat(_perturbed_rule()(params, xs, ys, perturbation(**knobs), key)[2])
    cos = float(g @ exact / (jnp.linalg.norm(g) * jnp.linalg.norm(exact)))
    return cos, float(jnp.linalg.norm(g - exact) / jnp.linalg.norm(exact))


def distortion_rows(params, xs, ys) -> list[dict]:
    """Table rows: for every sweep of the rule's readings (the weight-bits sweep aside), the
    gradient's cosine with exact SnAP-1 and relative distance from it, at the sweep's largest
    value (see :func:`gradient_distortion`; shapes as there)."""
    from gridlib.filtergrid.experiments import SWEEPS

    rows, exact = [], _exact_snap1(params, xs, ys)
    for name, sweep in SWEEPS.items():
        if name.startswith("3"):
            continue  # weight quantisation changes the network, not the rule's readings
        value = max(sweep.values, key=abs)
        cos, rel = gradient_distortion(params, xs, ys, exact=exact, **sweep.knobs(value))
        rows.append({"what it models": sweep.label,
                     "largest value": f"{value:g}", "cosine with exact": f"{cos:.3f}",
                     "relative distance": f"{rel:.2f}"})
    return rows


def message_noise_by_row(params, xs, ys, sigma: float = 0.01,
                         draws: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Row by row, the exact SnAP-1 gradient and the change that message noise makes to it.

    Args:
        params, xs, ys: as in :func:`gradient_distortion`.
        sigma: the message noise ``sigma_m``.
        draws: noise draws averaged (keys ``PRNGKey(0 .. draws-1)``).

    Returns:
        ``(signal, deviation)``, each ``(N,)``: the norm over each grid row (all four parameter
        types) of the exact gradient, and the mean norm of the noise's change to it.
    """
    from gridlib.filtergrid.perturb import perturbation
    from gridlib.filtergrid.snap1 import snap1_batch_grads

    def by_row(g):
        return jnp.sqrt(sum(jnp.sum(z**2, axis=1) for z in g))

    rule = _perturbed_rule()
    g_exact = snap1_batch_grads(params, xs, ys)[2]
    p = perturbation(message_noise=sigma)
    dev = [by_row(jax.tree.map(jnp.subtract, rule(params, xs, ys, p, jax.random.PRNGKey(k))[2],
                               g_exact)) for k in range(draws)]
    return np.asarray(by_row(g_exact)), np.mean(np.asarray(dev), axis=0)


def message_noise_figure(signal: np.ndarray, deviation: np.ndarray, sigma: float = 0.01):
    """Row by row, on a log axis, the exact SnAP-1 gradient's norm and the change message noise
    makes to it (both ``(N,)``, from :func:`message_noise_by_row`). Returns the figure (6.2 in
    wide, text at 9 pt or more at the book's column width)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    ax.semilogy(signal, "o-", ms=3, label="exact SnAP-1 gradient")
    ax.semilogy(deviation, "s-", ms=3,
                label=rf"change from message noise, $\sigma_m = {sigma:g}$")
    ax.set_xlabel(f"grid row (0 = top, {len(signal) - 1} = readout)")
    ax.set_ylabel("norm over the row")
    ax.legend(fontsize=9)
    return fig


def _bounds(r: dict) -> tuple[float, float]:
    """The 95 % t interval over seeds of a row's drop (:func:`_half`)."""
    half = _half(_sem(r), r["n"])
    return r["drop"] - half, r["drop"] + half


def _pts(x: float, sd: float | None = None) -> str:
    """A fraction in points, two decimals (more where a spread ``sd`` would round to zero),
    with a true minus sign (U+2212)."""
    return report.plus_minus(100 * x, None if sd is None else 100 * sd)


def clear_breaks(rows: list[dict], threshold: float = BREAK) -> list[dict]:
    """Table rows, one per sweep of the original: the first swept value (away from 0) whose drop
    reaches ``threshold`` in the original's single run, in our mean over seeds, and clearly in
    ours (the lower end of the drop's 95 % t interval over seeds at or above ``threshold``)."""
    out = []
    for sweep in dict.fromkeys(r["sweep"] for r in rows):
        if sweep.startswith("3"):
            continue
        rs = sorted((r for r in rows if r["sweep"] == sweep and r["value"] != 0),
                    key=lambda r: abs(r["value"]))

        def first(ok, rs=rs):
            return next((f"{r['value']:g}" for r in rs if ok(r)), "none")

        out.append({"sweep": sweep_label(sweep),
                    "original: first break": first(
                        lambda r: r.get("original_drop", 0.0) >= threshold),
                    "ours: first mean drop ≥ 5": first(lambda r: r["drop"] >= threshold),
                    "ours: first clear break": first(lambda r: _bounds(r)[0] >= threshold)})
    return out


def judged_claims(rows: list[dict], threshold: float = BREAK) -> list[dict]:
    """The original report's seven conclusions, each judged by one criterion.

    A claim *survives* only if the measured effect is clear of the seed spread in the stated
    direction: the deciding quantity's 95 % t interval over seeds lies wholly on the claimed side
    of its line (:data:`gridlib.report.SPREAD_RULE`). It is *contradicted* if it is that clear on the
    other side, and *not shown* otherwise. The quantities and lines:

    - "noise costs more than bias": worst noise drop minus worst bias drop (worst by mean; errors
      combined in quadrature) against 0;
    - "X is tolerated over its range": every value's drop below ``threshold``; the deciding
      value is the one with the highest upper bound;
    - "X breaks": some value's drop at or above ``threshold``; the deciding value is the one with
      the highest lower bound (for message noise, the smallest sigma alone).

    Returns rows with ``claim``, ``original`` (its single-seed drop, points), ``this study``
    (mean ± sd over seeds, points), ``bound`` (the end of the 95 % t interval, points), ``verdict``,
    ``margin`` (a fraction: how far the bound lies on the claimed side of the line; negative
    where it does not), ``topic`` (a short name) and ``kind`` (``"tolerated"``, ``"breaks"`` or
    ``"compares"``).
    """
    by = {s: [r for r in rows if r["sweep"] == s and r["value"] != 0]
          for s in dict.fromkeys(r["sweep"] for r in rows)}

    def verdict(low: float, high: float, line: float, above: bool) -> dict:
        if (low > line) if above else (high < line):
            word = "survives"
        elif (high < line) if above else (low >= line):
            word = "contradicted"
        else:
            word = "not shown"
        return {"verdict": word, "margin": (low - line) if above else (line - high)}

    def where(r: dict) -> str:
        return f"{sweep_label(r['sweep'])} at {r['value']:g}"

    def shown(r: dict) -> str:
        return f"{_pts(r['drop'], r['drop_sd'])} ({where(r)})"

    def orig(rs: list[dict]) -> str:
        known = [r for r in rs if "original_drop" in r]
        if not known:
            return "–"
        r = max(known, key=lambda r: r["original_drop"])
        return f"{_pts(r['original_drop'])} ({where(r)})"

    out = []
    bias = [r for s in BIAS_SWEEPS for r in by.get(s, [])]
    noise = [r for s in NOISE_SWEEPS for r in by.get(s, [])]
    if bias and noise:
        wb = max(bias, key=lambda r: r["drop"])
        wn = max(noise, key=lambda r: r["drop"])
        diff = wn["drop"] - wb["drop"]
        half = _half(float(np.hypot(_sem(wn), _sem(wb))), min(wn["n"], wb["n"]))
        out.append({"claim": "noise costs more than bias (worst condition of each)",
                    "original": f"noise {orig(noise)}; bias {orig(bias)}",
                    "this study": f"noise {shown(wn)}; bias {shown(wb)}",
                    "bound": f"difference {_pts(diff)}, ≥ {_pts(diff - half)}",
                    "topic": "noise costs more than bias", "kind": "compares",
                    **verdict(diff - half, diff + half, 0.0, True)})
    for sweep, what, topic in (
            ("1a_leak", "the leak is tolerated up to 0.2", "a capacitor leak"),
            ("1b_gain_sym", "a symmetric gain error is tolerated up to 0.2",
             "a symmetric gain error"),
            ("1c_subtraction", "a subtraction mismatch is tolerated up to ±0.1",
             "a subtraction mismatch")):
        if by.get(sweep):
            r = max(by[sweep], key=lambda r: _bounds(r)[1])
            low = max(_bounds(q)[0] for q in by[sweep])
            out.append({"claim": what, "original": orig(by[sweep]), "this study": shown(r),
                        "bound": f"≤ {_pts(_bounds(r)[1])}", "topic": topic,
                        "kind": "tolerated",
                        **verdict(low, _bounds(r)[1], threshold, False)})
    for sweep in ("1b_gain_asym_A", "1b_gain_asym_B"):
        if by.get(sweep):
            r = max(by[sweep], key=lambda r: _bounds(r)[0])
            high = max(_bounds(q)[1] for q in by[sweep])
            out.append({"claim": f"a sign-asymmetric gain ({sweep[-1]}) breaks within 0.2",
                        "original": orig(by[sweep]), "this study": shown(r),
                        "bound": f"≥ {_pts(_bounds(r)[0])}", "kind": "breaks",
                        "topic": f"sign-asymmetric gain {sweep[-1]}",
                        **verdict(_bounds(r)[0], high, threshold, True)})
    if by.get("2b_msg_noise"):
        r = min(by["2b_msg_noise"], key=lambda r: r["value"])
        low, high = _bounds(r)
        out.append({"claim": f"message noise breaks already at sigma = {r['value']:g}",
                    "original": orig([r]), "this study": shown(r),
                    "bound": f"≥ {_pts(low)}", **verdict(low, high, threshold, True),
                    "topic": f"message noise at sigma = {r['value']:g}", "kind": "breaks"})
    return out


def condition_rows(rows: list[dict]) -> list[dict]:
    """Table rows of every condition: accuracy and drop (mean ± sd over seeds, in percent and
    points, two decimals) beside the original's single-seed drop."""
    out = []
    for r in rows:
        orig = r.get("original_drop")
        out.append({"sweep": sweep_label(r["sweep"]), "value": r["label"],
                    "test accuracy (%)": _pts(r['acc'], r['acc_sd']),
                    "drop (points)": _pts(r['drop'], r['drop_sd']),
                    "original drop": "–" if orig is None else _pts(orig)})
    return out


def bits_rows(rows: list[dict]) -> list[dict]:
    """Table rows of the weight-bits sweep: bits, quantisation step over ``[-2, 2]``, accuracy and
    drop (mean ± sd over seeds)."""
    out = []
    for r in rows:
        if r["sweep"] != "3_weight_bits":
            continue
        out.append({"weights": "exact" if not r["value"] else f"{r['label']} bits",
                    "step": "0" if not r["value"] else f"{4 / 2 ** r['value']:g}",
                    "test accuracy (%)": _pts(r['acc'], r['acc_sd']),
                    "drop (points)": _pts(r['drop'], r['drop_sd'])})
    return out


#: What each sweep's value is, for the x axis of its panel.
SWEEP_AXES = {"1a_leak": r"leak $\delta_\ell$", "1b_gain_sym": r"gain error $\delta$",
              "1b_gain_asym_A": r"gain error $\delta$", "1b_gain_asym_B": r"gain error $\delta$",
              "1c_subtraction": r"mismatch $\delta_s$", "2a_eps_noise": r"$\sigma_\varepsilon$",
              "2b_msg_noise": r"$\sigma_m$", "2c_combined_noise": r"$\sigma_\varepsilon = \sigma_m$",
              "3_weight_bits": "bits per weight"}


def robustness_panels(rows: list[dict], labels: dict[str, str], threshold: float = BREAK):
    """:func:`robustness_figure` at a readable size: one panel per sweep, drop in points (mean ±
    sd over seeds, paired by seed) against the swept value, the original's single-seed drop as
    open squares, the ``threshold`` line dashed; an x label (:data:`SWEEP_AXES`) on every panel
    and no text below 9 pt at the book's column width (the figure is 6.3 in wide, shown
    unscaled). Returns the figure."""
    import textwrap

    import matplotlib.pyplot as plt

    from gridlib.plotting import PALETTE

    sweeps = list(dict.fromkeys(r["sweep"] for r in rows))
    ncols = 3
    nrows = -(-len(sweeps) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.3, 2.75 * nrows), sharey=True,
                             squeeze=False)
    for ax, sweep in zip(axes.flat, sweeps, strict=False):
        rs = [r for r in rows if r["sweep"] == sweep]
        x = np.arange(len(rs))
        ax.errorbar(x, [100 * r["drop"] for r in rs], yerr=[100 * r["drop_sd"] for r in rs],
                    fmt="o-", ms=4, capsize=2, color=PALETTE[0],
                    label=f"this study (mean ± sd, {rs[0]['n']} seeds)")
        xo = [i for i, r in enumerate(rs) if "original_drop" in r]
        if xo:
            ax.plot(xo, [100 * rs[i]["original_drop"] for i in xo], "s", mfc="none", ms=5,
                    color=PALETTE[1], label="original (1 seed, 2k subset)")
        ax.axhline(100 * threshold, ls="--", lw=0.8, color="0.4")
        ax.axhline(0, lw=0.6, color="0.6")
        ax.set_xticks(x, [r["label"] for r in rs], fontsize=9, rotation=60)
        ax.tick_params(axis="y", labelsize=9)
        ax.set_xlabel(SWEEP_AXES.get(sweep, "value"), fontsize=9)
        ax.set_title(textwrap.fill(labels.get(sweep, sweep), 20), fontsize=9)
    for ax in axes.flat[len(sweeps):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("drop (points)", fontsize=10)
    handles, texts = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles, texts, loc="lower center", ncol=1, bbox_to_anchor=(0.5, 0.0),
               fontsize=9)
    return fig


# ---------------------------------------- presentation helpers of *Row-wise MNIST with SnAP-1*

def mnist_rows(groups: dict[str, dict[str, dict]], reported: dict[str, dict],
               rerun: dict[str, float] | None = None) -> list[dict]:
    """The final-accuracy table: per configuration with runs, our full-test accuracy (mean ± sd
    over seeds, percent, two decimals, keyed), the original's reported number and the original
    code's own rerun beside it.

    Args:
        groups: ``{label: {result name: record}}`` from :func:`load_mnist_runs`.
        reported: ``{label: {"acc": fraction}}``, the original's report.
        rerun: ``{label: full-test accuracy}`` of the original code rerun (as a fraction).

    Returns:
        One row per configuration with runs.
    """
    rows = []
    for label, group in groups.items():
        if not group:
            continue
        acc = final_accuracies(group)
        rep = reported.get(label, {})
        again = (rerun or {}).get(label)
        rows.append({
            "run": f"{label} ({report.plural(len(acc), 'seed')})",
            "test accuracy (10k)": report.format_mean_sd(acc, 2, percent=True, n=False,
                                                         key=report.group_key(group)),
            "reported (2k)": f"{100 * rep['acc']:.2f} %" if "acc" in rep else "not run",
            "original's code, rerun (10k)": "–" if again is None else f"{100 * again:.2f} %",
        })
    return rows


def mnist_curves_figure(groups: dict[str, dict[str, dict]], reported: dict[str, dict]):
    """Test accuracy (%, as the tables give it) after every epoch of every seed, Adam (SnAP-1
    and BPTT) and per-group SGD in two panels, with the original's reported SnAP-1 curve
    (dashed) and chance (dotted).

    Args:
        groups: as in :func:`mnist_rows` (labels of :data:`MNIST_RUNS`).
        reported: ``{label: {"curve": [accuracy after each epoch, as a fraction]}}``.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    from gridlib.plotting import PALETTE

    fig, axes = plt.subplots(1, 2, figsize=(6.2, 3.8), sharey=True)
    panels = {"Adam, batch 32": ("SnAP-1, Adam", "BPTT, Adam"),
              "per-group SGD, batch 1": ("SnAP-1, SGD batch 1",)}
    for ax, (title, labels) in zip(axes, panels.items(), strict=True):
        for label in labels:
            color = PALETTE[list(MNIST_RUNS).index(label)]
            for k, rec in enumerate(groups[label].values()):
                h = rec["history"]
                ax.plot(h["epoch"], 100 * np.asarray(h["test/acc"]), "o-", ms=3, lw=1, color=color,
                        label=f"{label} ({len(groups[label])} seeds)" if k == 0 else None)
        curve = reported[labels[0]]["curve"]
        ax.plot(range(1, len(curve) + 1), 100 * np.asarray(curve), "--", color="k", lw=1.2,
                label="reported, SnAP-1 (1 seed, 2k)")
        ax.axhline(10, color="gray", lw=0.6, ls=":")
        ax.text(len(curve), 11, "chance", fontsize=9, color="gray", ha="right")  # clear of the first epochs
        ax.set_xticks(range(1, len(curve) + 1))
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("test accuracy (%, full 10k)")
    handles, texts = [], []
    for ax in axes:  # one legend under both panels; the reported curve once
        for h, txt in zip(*ax.get_legend_handles_labels(), strict=True):
            if txt not in texts:
                handles.append(h)
                texts.append(txt)
    fig.tight_layout(rect=(0, 0.19, 1, 1))
    # 10 pt: on a phone the whole figure shrinks to about half, the legend with it
    fig.legend(handles, texts, loc="lower center", ncol=2, fontsize=10,
               bbox_to_anchor=(0.5, 0.0))
    return fig


def short_run_rows(records: dict[str, dict]) -> list[dict]:
    """Rows for the short training check: per rule, the largest difference of its final
    parameters from BPTT's (``records`` maps ``"rtrl"``, ``"bptt"``, ``"snap1"`` to loaded
    records of the same batches from the same initialisation)."""
    return [{"rule": RULE_WORDS[rule],
             "max |θ − θ_BPTT| at the end": f"{final_param_distance(rec, records['bptt']):.2e}"}
            for rule, rec in records.items()]


def epoch_one_rows(named: dict[str, dict]) -> list[dict]:
    """Rows of test accuracy and test loss after the first epoch of each history in ``named``
    (``{label: history}``)."""
    return [{"after epoch 1": name, "test accuracy (10k)": f"{100 * h['test/acc'][0]:.2f} %",
             "test loss": f"{h['test/loss'][0]:.4f}"} for name, h in named.items()]


#: The configuration of the filter-grid benchmark that *Row-wise MNIST with SnAP-1* shows.
BENCH_EXPECT = {"grid": [28, 10], "T": 28, "batch": 32, "epoch_examples": 60000}


def load_bench() -> dict:
    """The published filter-grid benchmark (``results/bench/filtergrid.json``, made by
    ``benchmarks/filtergrid.py``), checked against :data:`BENCH_EXPECT`."""
    return results.load("bench/filtergrid", expect=BENCH_EXPECT)


#: The configuration of the live page's benchmark: the page's SnAP-1 training, Adam, batch 32.
LIVE_BENCH_EXPECT = {"rule": "snap1", "optimizer": "adam", "batch": 32}


def load_live_bench() -> dict:
    """The live page's benchmark (``results/bench/live.json``, made by ``benchmarks/live.py``):
    SnAP-1 training in headless Chromium next to the library's and the original's batch-32 step,
    timed in one run; checked against :data:`LIVE_BENCH_EXPECT`."""
    return results.load("bench/live", expect=LIVE_BENCH_EXPECT)


def rtrl_over_bptt(bench: dict) -> float:
    """How many times as long an exact-RTRL gradient takes as a BPTT gradient (forward mode
    against ``jax.grad``, both on the hyperplanes), timed in the same benchmark run."""
    m = bench["metrics"]
    return (m["hyperplane: exact RTRL gradient (forward mode)"]["epoch_s"]
            / m["hyperplane: BPTT gradient (jax.grad)"]["epoch_s"])


def bench_rows(bench: dict) -> list[dict]:
    """Rows of the filter-grid benchmark (``results`` record ``bench/filtergrid``): examples per
    second, seconds per 60k epoch and the ratio to the naive raster loop, per path (the
    side-by-side entries aside)."""
    return [{"path": name, "examples / s": f"{r['examples_per_s']:,.0f}",
             "s per 60k epoch": f"{r['epoch_s']:.1f}",
             "× naive": ("1 (reference)" if not r["speedup_vs_naive"]
                         else f"{r['speedup_vs_naive']:.1f}" if r["speedup_vs_naive"] >= 1
                         else f"{r['speedup_vs_naive']:.2g}")}  # RTRL's 0.033, not "0.0"
            for name, r in bench["metrics"].items() if not name.startswith("side by side")]


def side_by_side_rows(bench: dict) -> list[dict]:
    """Rows of the benchmark's side-by-side runs of the original code's training step and the
    library's: milliseconds per step, and the ratio with one call per step, with one call per
    step and the minibatch split over the cores (where the benchmark timed it: a batch the
    cores divide), and as ``fit`` runs it (many steps per jitted call). Each ratio is that of
    the two codes' best rounds, with that of their median rounds in brackets where the record
    has it."""
    rows = [(k, r) for k, r in bench["metrics"].items() if k.startswith("side by side")]
    split = any("ratio_split" in r for _, r in rows)

    def ratio(r: dict, key: str) -> str:
        median = r.get(key + "_median_rounds")
        return f"{r[key]:.1f}" + ("" if median is None else f" ({median:.1f})")

    return [{"step": k.removeprefix("side by side: "),
             "original (ms)": f"{r['original_ms_per_step']:.1f}",
             "library (ms)": f"{r['library_ms_per_step']:.2f}",
             "× one call per step": ratio(r, "ratio"),
             **({"× split over the cores": ratio(r, "ratio_split") if "ratio_split" in r else "–"}
                if split else {}),
             "× as fit runs it": ratio(r, "ratio_fit")}
            for k, r in rows]  # fmt: skip


# ---------------------------------------- presentation helpers of *SnAP-1: a local rule for the filter grid*

def agreement_rows(agreement: dict[int, dict], reported: dict[int, tuple]) -> list[dict]:
    """Rows of the gradient-agreement table: per parameter group, SnAP-1's median relative error
    against BPTT at every ``T`` beside the original's reported one, and exact RTRL's largest.

    Args:
        agreement: ``{T: row}`` as :func:`gradient_agreement` returns it.
        reported: ``{T: (w_L, bias, log tau)}``, the original's reported relative errors.

    Returns:
        Rows with one column per ``T`` (values as ``1.2e-03``).
    """
    ts = sorted(agreement)

    def cols(values):
        return {f"T = {t}": f"{v:.1e}" for t, v in zip(ts, values, strict=True)}

    rows = []
    for group, label in GROUP_WORDS.items():
        rows.append({"relative error vs BPTT": f"SnAP-1, {label} (median)",
                     **cols(agreement[t][f"snap1/{group}"] for t in ts)})
        if group != "w_top":  # the original reported w_L, bias and log tau
            q = ("w_left", "bias", "log_tau").index(group)
            rows.append({"relative error vs BPTT": f"original, {label}",
                         **cols(reported[t][q] for t in ts)})
    rows.append({"relative error vs BPTT": "exact RTRL (max)",
                 **cols(agreement[t]["rtrl/max"] for t in ts)})
    return rows


# ---------------------------------------- presentation helpers of *The analog-filter cell and its grid*

def digit_figure(image: np.ndarray, label: int, trajectory, show=(4, 8, 12, 16, 20)):
    """A digit passing through the grid: the image, the cell outputs ``y`` at the steps in
    ``show``, and below them the cumulative readout of the bottom row (the logits so far), one
    line per class in distinct colours, the true class drawn thick.

    Args:
        image: ``(784,)`` pixels of the digit.
        label: its class.
        trajectory: :func:`gridlib.filtergrid.model.forward`'s trajectory for the digit's
            ``(T, N)`` rows (``y`` of shape ``(T, N, M)``).
        show: the time steps whose outputs are drawn.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    from gridlib.filtergrid import model

    fig = plt.figure(figsize=(6.3, 6.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.05])
    axes = top.subplots(1, len(show) + 1,
                        gridspec_kw={"width_ratios": [2.2] + [1] * len(show),
                                     "wspace": 0.35})
    axes[0].imshow(np.asarray(image).reshape(28, 28), cmap="gray")
    axes[0].set_title(f"digit ({label})", fontsize=9)
    for ax, t in zip(axes[1:], show, strict=True):
        im = ax.imshow(np.asarray(trajectory.y[t]), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"t = {t}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].set_ylabel("grid row i", fontsize=9)
    axes[1].set_xlabel("column j", fontsize=9)
    top.colorbar(im, ax=list(axes[1:]), shrink=0.9, label="cell output y at step t")
    ax = bottom.subplots()
    logits = np.cumsum(np.asarray(model.readout(trajectory)), axis=0)
    colours = plt.get_cmap("tab10").colors
    for j in range(logits.shape[1]):
        ax.plot(np.arange(1, len(logits) + 1), logits[:, j], lw=2.4 if j == label else 1,
                color=colours[j % len(colours)],
                label=f"{j} (true class)" if j == label else str(j))
    ax.set_xlabel("time step t (image row)")
    ax.set_ylabel("logit so far")
    ax.set_title("cumulative readout of the bottom row (the logits)", fontsize=10)
    ax.legend(title="class", fontsize=9, title_fontsize=9, ncol=5, loc="upper center",
              bbox_to_anchor=(0.5, -0.25), borderaxespad=0)
    return fig
