"""What the gridnet chapter shows from its results files: the MNIST runs and the benchmark.

Every load declares the configuration the chapter relies on, so a file of another configuration is
refused (:func:`gridlib.results.load`) and only the seeds of one configuration are averaged
(:func:`gridlib.results.load_group`).

- :func:`preset_runs`     the full MNIST runs of a preset (seeds 0-9), checked against the preset
- :func:`run_rows`        one table row per seed
- :func:`epoch_accuracy`  the recorded test accuracy after a given epoch, one value per seed
- :func:`bench_rows`      the benchmark's table (library against the naive gather)
"""

from __future__ import annotations

from typing import Any

from gridlib import report, results
from gridlib.gridnet.experiments import FULL_EPOCHS, PRESETS

Group = dict[str, dict[str, Any]]

#: The seed's CUDA benchmark of one outer step (32³ grid, batch 2, I = 10) on an unnamed GPU:
#: the range of milliseconds per call it reports (nichol2024gridnet, its benchmark script's log).
SEED_CUDA_STEP_MS = (0.39, 1.8)

#: The MNIST split of the full runs.
N_TRAIN, N_TEST = 60_000, 10_000


def preset_expect(preset: str) -> dict[str, Any]:
    """The configuration a full run of ``preset`` records (the library's defaults, full scale)."""
    return {**PRESETS[preset]._asdict(), "preset": preset, "epochs": FULL_EPOCHS[preset],
            "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-3, "optimizer": "adamw",
            "provenance.scale": "full"}  # fmt: skip


def preset_runs(preset: str) -> Group:
    """The published full runs of ``preset`` (``gridnet/<preset>_seed<0-9>``; empty if none).

    Runs with another activation (``..._seed0_relu``) are other configurations and not included.

    Raises:
        gridlib.results.ResultsError: a record differs from the preset, or did not use the full
            MNIST split.
    """
    group = results.load_group(f"gridnet/{preset}_seed[0-9]", expect=preset_expect(preset), allow_empty=True)
    for name, rec in group.items():
        m = rec["metrics"]
        if (m.get("n_train"), m.get("n_test")) != (N_TRAIN, N_TEST):
            raise results.ResultsError(f"{results.path(name)}: trained on {m.get('n_train')} and tested on "
                                       f"{m.get('n_test')} images; the chapter expects {N_TRAIN} and {N_TEST}")
    return group


def run_rows(group: Group) -> list[dict[str, Any]]:
    """One row per seed: epochs, steps, test images and test accuracy (the speed of a step is the
    benchmark's, :func:`bench_rows`)."""
    return [{"seed": r["provenance"]["seed"], "epochs": r["config"]["epochs"], "steps": r["metrics"]["steps"],
             "test images": f"{r['metrics']['n_test']:,}",
             "test accuracy": f"{100 * r['metrics']['test_acc']:.2f} %"} for r in group.values()]  # fmt: skip


def accuracies(group: Group) -> list[float]:
    """The final test accuracy of each seed."""
    return [r["metrics"]["test_acc"] for r in group.values()]


def epoch_accuracy(group: Group, epoch: int) -> list[float]:
    """The test accuracy each seed had after ``epoch`` (1-based) epochs, from its history."""
    return [r["history"]["test/acc"][r["history"]["epoch"].index(epoch)] for r in group.values()]


def bench_rows(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The benchmark's table: configuration, grid, blocks, steps, batch, ms per example, ratio."""
    return [{"configuration": r["name"].replace("one outer step, I=10", "one outer step"), "grid": f"{r['grid']}³", "S": r["block"], "I": r["inner"],
             "O": r["outer"], "batch": r["batch"],
             "library, ms/example": f"{r['fast_ms_per_example']:.2f}",
             "naive, ms/example": f"{r['naive_ms_per_example']:.2f}",
             "ratio": f"{r['speedup']:.1f}×"} for r in bench["metrics"]["rows"]]  # fmt: skip


def load_bench() -> dict[str, Any] | None:
    """The benchmark record (``None`` before it is made; CI-scale runs are never published)."""
    if results.exists("bench/gridnet"):
        return results.load("bench/gridnet", expect={"device": "cpu:0"})
    return None


def seed_preset_steps() -> int:
    """Training steps of a full seed-preset run (batch 256 on the 60,000 training images)."""
    return FULL_EPOCHS["seed"] * (N_TRAIN // 256)


def seed_preset_hours(bench: dict[str, Any] | None) -> float | None:
    """Hours a full seed-preset run would take on the benchmark's CPU (``None`` without a
    full-scale benchmark)."""
    if bench is None or bench["provenance"].get("scale") != "full":
        return None
    row = next(r for r in bench["metrics"]["rows"] if r["name"] == "seed preset")
    return row["fast_ms_per_example"] * 1e-3 * seed_preset_steps() * 256 / 3600


def seed_preset_not_run(hours: float | None) -> str:
    """The paragraph that says the seed preset was not run, and what it would cost."""
    cfg = PRESETS["seed"]
    cost = f" On this CPU it would take about {hours:.0f} hours (benchmark below)." if hours else ""
    return (f"**The `seed` preset ({cfg.grid}³ grid, S = {cfg.block}, I = {cfg.inner}, O = {cfg.outer}, "
            f"batch 256) was not run.** It needs a GPU, and this book had only a CPU.{cost} The command is "
            "`python -m gridlib gridnet-mnist --preset seed --seed S`; it trains "
            f"{FULL_EPOCHS['seed']} epochs, {seed_preset_steps():,} steps. The original itself "
            "publishes no accuracy: its logs score one random test batch per step.")


def short_run_note(cfg, steps: int, n_train: int, n_test: int, acc: float, chance: float,
                   full_runs: Group) -> str:
    """What a short in-page run is, and -- computed -- whether it left chance level and why not."""
    at_chance = acc < chance + 0.05
    text = (f"{cfg.grid}³ grid, S = {cfg.block}, I = {cfg.inner}, O = {cfg.outer}: {steps} AdamW steps "
            f"on {n_train:,} images. Test accuracy **{100 * acc:.1f} %** on "
            f"{n_test:,} images: {'at' if at_chance else 'above'} chance level (the most frequent "
            f"digit is {100 * chance:.1f} % of them).")
    if full_runs and at_chance:
        spe = N_TRAIN // 256
        after = [report.format_mean_sd(epoch_accuracy(full_runs, e), percent=True) for e in (1, 2)]
        text += (f" The full CPU-preset runs show why: after their first epoch ({spe} steps) their test "
                 f"accuracy was {after[0]}, after the second ({2 * spe} steps) {after[1]}; {steps} "
                 "steps are not enough to leave chance.")
    return text


def one_step_note(bench: dict[str, Any]) -> str:
    """This CPU's time for one outer step of the original's CUDA benchmark, next to the original's."""
    step = next(r for r in bench["metrics"]["rows"] if r["name"].startswith("one outer step"))
    lo, hi = SEED_CUDA_STEP_MS
    return (f"One outer step of the original's CUDA benchmark (32³, batch 2, I = 10): "
            f"{step['fast_ms_per_call']:.0f} ms per call on this CPU, against {lo}–{hi} ms for the "
            "original's CUDA kernel on an unnamed GPU: different hardware, so the two times cannot "
            "be compared directly.")


def seed_preset_view(group: Group, hours: float | None) -> list[Any]:
    """What the chapter shows for the seed preset: its runs' table and provenance where they
    exist, else the paragraph of :func:`seed_preset_not_run` (a list of displayable objects)."""
    from IPython.display import Markdown

    if group:
        return [report.table(run_rows(group)), report.provenance(group)]
    return [Markdown(seed_preset_not_run(hours))]


def depth_figure(norms: dict[str, Any], cfg):
    """The gradient norm per depth slice at initialisation, one line per network.

    Args:
        norms: ``{label: (G,) array}``, the weight-gradient norm of each slice ``k``
            (``k = 0`` the input face), as :func:`gridlib.gridnet.depth_grad_norms` gives it.
        cfg: the :class:`gridlib.gridnet.Config` they were measured on (for the title).

    Returns:
        The figure, 6.2 in wide (the book's column), log axis, distance from the output face.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    depth = cfg.grid - 1 - np.arange(cfg.grid)
    for label, norm in norms.items():
        ax.semilogy(depth, norm, "o-", ms=3, label=label)
    ax.set(xlabel="distance from the output face (cells)", ylabel="‖∂L/∂W‖ in the slice",
           title=f"at initialisation: G={cfg.grid}, S={cfg.block}, I={cfg.inner}, O={cfg.outer}")
    ax.legend()
    return fig


def depth_note(span: dict[str, float], grid: int | None = None) -> str:
    """The gradient-against-depth result in words: ``span`` maps ``"global LayerNorm"`` and
    ``"no LayerNorm"`` to the orders of magnitude the slice norms span; ``grid`` (optional)
    names the grid's side."""
    ln, no = span["global LayerNorm"], span["no LayerNorm"]
    where = f" across the {grid}³ grid" if grid else " from the output face to the input face"
    if no > ln:
        return (f"Without the LayerNorm the gradient falls by {no:.1f} orders of magnitude{where}, "
                f"with it by {ln:.1f}: the global LayerNorm keeps the layers near the input "
                "trainable.")
    return (f"With the global LayerNorm the gradient falls by {ln:.1f} orders of magnitude{where}, "
            f"without it by {no:.1f}: here the LayerNorm does not keep the gradient from fading.")


def front_note(front: list[int], cfg) -> str:
    """How many outer steps the front of a change took to reach the output face, against the
    fewest the architecture allows (``min(I, S)`` cells per outer step). ``front``: the deepest
    slice reached after each outer step (index 0: before the first)."""
    last = cfg.grid - 1
    per = min(cfg.inner, cfg.block)
    fewest = -(-last // per)
    reached = next((o for o, f in enumerate(front) if f >= last), None)
    if reached is None:
        return (f"In {len(front) - 1} outer steps the front reaches slice {max(front)}, short of "
                f"the output face (slice {last}); at {per} cells per step it would need {fewest}.")
    return (f"The front reaches the output face (slice {last}) after {reached} outer steps; at "
            f"{report.plural(per, 'cell')} per step it could in {fewest}"
            + ("." if reached == fewest else ", and the stalls at block boundaries cost "
               f"{reached - fewest} more."))
