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


#: The published row-wise MNIST configurations of chapter 12: label -> run.
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

_RUN_NAME = re.compile(r"filtergrid/(?P<label>[a-z0-9_]+?)_(?P<opt>adam|sgd)_b(?P<batch>\d+)"
                       r"_e(?P<epochs>\d+)_n(?P<n>\d+)_seed(?P<seed>\d+|\*)")


def parse_run_name(name: str) -> tuple[MnistRun, int, str] | None:
    """``(run, n_train, seed)`` of a :func:`~gridlib.filtergrid.experiments.run_name`, or
    ``None`` for another name: the inverse of :meth:`MnistRun.name`."""
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


def mean_epoch_time(group: dict[str, dict]) -> float:
    """Mean wall-clock seconds per training epoch over every epoch of every run of a group."""
    return float(np.mean([t for rec in group.values() for t in rec["history"]["epoch_time_s"]]))


def paired_differences(group_a: dict[str, dict], group_b: dict[str, dict]) -> dict[int, float]:
    """``{seed: acc_a - acc_b}`` of the final test accuracies, for the seeds both groups ran."""
    seed_a = {rec["provenance"]["seed"]: rec for rec in group_a.values()}
    seed_b = {rec["provenance"]["seed"]: rec for rec in group_b.values()}
    return {s: float(seed_a[s]["metrics"]["test/acc"] - seed_b[s]["metrics"]["test/acc"])
            for s in sorted(set(seed_a) & set(seed_b))}


def mnist_table(groups: dict[str, dict[str, dict]], reported: dict[str, dict]) -> list[dict]:
    """One row per configuration with runs: label and number of seeds, final test accuracy
    (mean ± sd), the original's reported accuracy and epoch time where ``reported[label]`` has
    ``acc`` / ``epoch_s``, and our mean epoch time."""
    rows = []
    for label, group in groups.items():
        if not group:
            continue
        acc = final_accuracies(group)
        rep = reported.get(label, {})
        mean_sd = report.format_mean_sd(acc, 3, n=False) if len(acc) > 1 else f"{acc[0]:.3f}"
        rows.append({
            "run": f"{label} ({len(acc)} seed{'s' if len(acc) > 1 else ''})",
            "test acc (10k)": mean_sd.replace(" ± ", "\u00a0±\u00a0"),  # kept on one line
            "reported": f"{rep['acc']:.3f}" if "acc" in rep else "not run",
            "s / epoch": f"{mean_epoch_time(group):.1f}",
            "reported s / epoch": f"≈ {rep['epoch_s']:g}" if "epoch_s" in rep else "–",
        })
    return rows


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


def protocol_rows() -> tuple[list[dict], dict] | None:
    """Rows of the original's rerun and of our Adam runs, each on both evaluation protocols.

    Protocols: the original's (a random 2,000-image test subset, drawn as its script draws it
    after the last epoch) and ours (all 10,000 test images). Returns ``(rows, records)``, or
    ``None`` when either results file is missing.
    """
    if not (results.exists(ORIGINAL_RUN) and results.exists(PROTOCOLS)):
        return None
    original = results.load(ORIGINAL_RUN, expect=ORIGINAL_EXPECT)
    protocols = results.load(PROTOCOLS, expect={"val_subset": 2000})
    m = original["metrics"]
    rows = [{"code": "original (its README run)", "seed": 0, "2k subset": f"{m['subset2k_acc']:.3f}",
             "full 10k": f"{m['test_acc']:.3f}"}]
    for r in protocols["metrics"].values():
        if r["code"] == "library" and r["optimizer"] == "adam":
            rows.append({"code": "this library", "seed": r["seed"], "2k subset": f"{r['subset2k_acc']:.3f}",
                         "full 10k": f"{r['test_acc']:.3f}"})
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


def first_breaks(rows: list[dict], threshold: float = BREAK) -> dict[str, dict]:
    """Per sweep, the first swept value (in the order swept away from 0) whose drop reaches
    ``threshold``: ours (mean over seeds) and the original's; ``None`` where none does. Also
    whether our break is clear of the seed spread (mean drop > 2 sd / sqrt(n))."""
    out: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r["sweep"], abs(r["value"]))):
        o = out.setdefault(r["sweep"], {"ours": None, "clear": None, "original": None})
        if o["ours"] is None and r["drop"] >= threshold:
            o["ours"] = r["value"]
            o["clear"] = bool(r["drop"] > 2 * r["drop_sd"] / np.sqrt(max(r["n"], 1)))
        if o["original"] is None and r.get("original_drop", 0.0) >= threshold:
            o["original"] = r["value"]
    return out


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
        ax.set_xticks(x, [r["label"] for r in rs], fontsize=7)
        ax.set_title(labels.get(sweep, sweep), fontsize=9)
    for ax in axes.flat[len(sweeps):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("drop (points)")
    handles, texts = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles, texts, loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0.0), fontsize=8)
    return fig


BIAS_SWEEPS = ("1a_leak", "1b_gain_sym", "1b_gain_asym_A", "1b_gain_asym_B", "1c_subtraction")
NOISE_SWEEPS = ("2a_eps_noise", "2b_msg_noise", "2c_combined_noise")


def _sem(r: dict) -> float:
    return r["drop_sd"] / np.sqrt(max(r["n"], 1))


def _verdict(agree: bool, margin: float, sem: float) -> str:
    """"survives" / "does not survive", or "unclear" when the deciding drop lies within two
    standard errors of the line it is judged against."""
    if abs(margin) < 2 * sem:
        return "unclear"
    return "survives" if agree else "does not survive"


def original_claims(rows: list[dict], threshold: float = BREAK) -> list[dict]:
    """The original report's conclusions, each re-read from the rows (drops with seeds and the
    full test set): what it claimed, what the same reading gives here, and a verdict.

    Claims: (1) the worst noise condition costs more than the worst bias condition; (2) the leak,
    (3) the symmetric gain and (4) the subtraction mismatch stay below the break line over their
    whole range; (5) both sign-asymmetric gains break; (6) message noise breaks already at its
    smallest value.
    """
    by = {s: [r for r in rows if r["sweep"] == s] for s in dict.fromkeys(r["sweep"] for r in rows)}
    # the worst perturbed condition of each sweep (the unperturbed one is the reference, drop 0)
    worst = {s: max([r for r in rs if r["value"] != 0] or rs, key=lambda r: r["drop"])
             for s, rs in by.items()}
    out = []

    def fmt(r: dict) -> str:
        return f"{100 * r['drop']:.1f} ± {100 * r['drop_sd']:.1f} points ({r['sweep']} at {r['value']:g})"

    def orig(r: dict) -> str:
        return f"{100 * r['original_drop']:.1f} points" if "original_drop" in r else "–"

    wb = max((worst[s] for s in BIAS_SWEEPS if s in worst), key=lambda r: r["drop"])
    wn = max((worst[s] for s in NOISE_SWEEPS if s in worst), key=lambda r: r["drop"])
    ob = max((r for s in BIAS_SWEEPS for r in by.get(s, [])), key=lambda r: r.get("original_drop", -1))
    on = max((r for s in NOISE_SWEEPS for r in by.get(s, [])), key=lambda r: r.get("original_drop", -1))
    out.append({"claim": "noise costs more than bias (worst condition of each)",
                "original": f"noise {orig(on)}; bias {orig(ob)}",
                "this study": f"noise {fmt(wn)}; bias {fmt(wb)}",
                "verdict": _verdict(wn["drop"] > wb["drop"], wn["drop"] - wb["drop"],
                                    float(np.hypot(_sem(wn), _sem(wb))))})
    for sweep, what in (("1a_leak", "the leak is tolerated up to 0.2"),
                        ("1b_gain_sym", "a symmetric gain error is tolerated up to 0.2"),
                        ("1c_subtraction", "a subtraction mismatch is tolerated up to ±0.1")):
        if sweep in worst:
            w = worst[sweep]
            out.append({"claim": what, "original": orig(max(by[sweep], key=lambda r: r.get("original_drop", -1))),
                        "this study": f"worst drop {fmt(w)}",
                        "verdict": _verdict(w["drop"] < threshold, threshold - w["drop"], _sem(w))})
    for sweep in ("1b_gain_asym_A", "1b_gain_asym_B"):
        if sweep in worst:
            w = worst[sweep]
            out.append({"claim": f"a sign-asymmetric gain ({sweep[-1]}) breaks within ±0.2",
                        "original": orig(max(by[sweep], key=lambda r: r.get("original_drop", -1))),
                        "this study": f"worst drop {fmt(w)}",
                        "verdict": _verdict(w["drop"] >= threshold, w["drop"] - threshold, _sem(w))})
    if "2b_msg_noise" in by:
        first = min((r for r in by["2b_msg_noise"] if r["value"] > 0), key=lambda r: r["value"])
        out.append({"claim": f"message noise breaks already at sigma = {first['value']:g}",
                    "original": orig(first), "this study": f"drop {fmt(first)}",
                    "verdict": _verdict(first["drop"] >= threshold, first["drop"] - threshold,
                                        _sem(first))})
    for row in out:
        row.setdefault("original", "–")
    return out
