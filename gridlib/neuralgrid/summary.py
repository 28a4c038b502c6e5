"""What the NeuralGrid chapter shows from its results files: the runs, their tables and curves.

Every load declares the configuration the chapter's prose relies on, so a file of another
configuration is refused (:func:`gridlib.results.load`) and only seeds of one configuration are
averaged (:func:`gridlib.results.load_group`).

- :func:`fashion_runs`   the blog configuration's seeds, and any shortened or variant 2-D runs
- :func:`run_rows`       one table row per configuration: seeds, epochs, test accuracy
- :func:`seed_history`   a configuration's learning curve, one column per seed (for plotting)
- :func:`grid3d_runs`    the 3-D variant's full runs
- :func:`bench_rows`     the re-timed blog table
- :func:`whole_epoch`    the benchmark's whole-epoch timing of one form at batch 256
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridlib import report, results
from gridlib.neuralgrid.experiments import BLOG

#: The blog's configuration as its 2-D results files must record it (60k/10k split, 300 epochs).
BLOG_EXPECT = {**BLOG._asdict(), "preset": "blog", "is_preset": True, "n_train": 60000,
               "n_test": 10000, "provenance.scale": "full"}  # fmt: skip
BLOG_LABEL = "blog configuration"

Group = dict[str, dict[str, Any]]

#: How the chapter names the data sets.
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def fashion_runs() -> dict[str, Group]:
    """The published 2-D runs, by configuration: ``{label: {name: record}}``.

    The blog configuration comes first (empty when not run yet); shortened schedules and variants
    follow, each its own group labelled by what differs, never mixed with the blog's.
    """
    out: dict[str, Group] = {BLOG_LABEL: results.load_group("neuralgrid/fashion_mnist_blog_seed*",
                                                            expect=BLOG_EXPECT, allow_empty=True)}
    others: dict[str, list[str]] = {}
    for name in results.names("neuralgrid/*_seed*"):
        if name in out[BLOG_LABEL] or "grid3d" in name:
            continue
        others.setdefault(name.rsplit("_seed", 1)[0], []).append(name)
    for key in others:
        group = results.load_group(f"{key}_seed*", expect={"provenance.scale": "full"})
        c = next(iter(group.values()))["config"]
        label = (f"{c['preset']} preset{' (variant)' if not c.get('is_preset') else ''}: "
                 f"{c['height']}×{c['width']}, {c['epochs']} epochs")  # fmt: skip
        out[label] = group
    return out


def accuracies(group: Group) -> list[float]:
    """The final test accuracy of each seed."""
    return [r["metrics"]["test_acc"] for r in group.values()]


def run_rows(runs: dict[str, Group]) -> list[dict[str, Any]]:
    """One row per configuration with runs: seeds, epochs, final and best-epoch test accuracy."""
    rows = []
    for label, group in runs.items():
        if not group:
            continue
        recs = list(group.values())
        c = recs[0]["config"]
        best = [max(r["history"]["test/acc"]) for r in recs]
        rows.append({
            "runs": label,
            "seeds": ", ".join(str(r["provenance"]["seed"]) for r in recs),
            "epochs (lr ÷ 10 every)": f"{c['epochs']} ({c['lr_step_epochs']})",
            "test images": f"{c['n_test']:,}",
            "test accuracy, last epoch": report.format_mean_sd(accuracies(group), 2, percent=True,
                                                               key=report.group_key(group)),
            "best epoch (picked on test)": report.format_mean_sd(best, 2, percent=True, n=False),
        })  # fmt: skip
    return rows


def seed_history(group: Group) -> dict[str, np.ndarray]:
    """The group's history with one column per seed (``plotting.learning_curves`` draws the mean
    and a band of one standard deviation)."""
    recs = list(group.values())
    n = min(len(r["history"]["epoch"]) for r in recs)
    out = {"epoch": np.asarray(recs[0]["history"]["epoch"][:n])}
    for key in ("test/acc", "train/loss", "test/loss"):
        out[key] = np.stack([np.asarray(r["history"][key][:n], float) for r in recs], axis=1)
    return out


def grid3d_runs(datasets: tuple[str, ...] = ("mnist", "fashion_mnist")) -> dict[str, dict[str, Any] | None]:
    """The 3-D variant's full runs (16 slices, 10 epochs, full split), ``None`` where not run."""
    out: dict[str, dict[str, Any] | None] = {}
    for ds in datasets:
        name = f"neuralgrid/grid3d_{ds}_seed0"
        out[ds] = results.load(name, expect={"dataset": ds, "n_layers": 16, "epochs": 10, "n_train": 60000,
                                             "n_test": 10000, "provenance.scale": "full"}) \
            if results.exists(name) else None  # fmt: skip
    return out


#: What the benchmark must have timed for the chapter's comparison to hold.
BENCH_EXPECT = {"height": 128, "width": 128, "n_train": 60000, "optimizer": "adam", "quick": False}


def seconds(x: float, sd: float | None = None) -> str:
    """``"3.62 ± 0.11"``: three significant digits for the mean, the same decimals for the sd
    (more for both where the sd would round to zero: :func:`gridlib.report.plus_minus`)."""
    decimals = max(0, 2 - int(np.floor(np.log10(abs(x))))) if x else 0
    return report.plus_minus(x, sd or None, decimals, thousands=True)


#: The benchmark's implementations, as the table heads them.
BENCH_COLUMNS = {"naive": "naive loop", "unfold": "unfold", "ours": "ours",
                 "ours, in parts": "ours, in parts of 64", "ours, split": "ours, split over the cores"}


def bench_rows(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The benchmark as one row per batch size: seconds per epoch (± sd) of each implementation
    (:data:`BENCH_COLUMNS`; "–" where the benchmark did not time it) and ``unfold``'s time over
    ours, all from timed steps (the file's whole-epoch timings are left out, so that the book
    shows one epoch time per cell). Our whole-batch time is keyed
    ``neuralgrid/bench/b<batch>_epoch_s`` (:func:`gridlib.report.quantity`)."""
    rows = [r for r in bench["extra"]["rows"] if "whole epoch" not in r["measured"]]
    by_batch: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_batch.setdefault(r["batch"], {})[r["implementation"]] = r
    timed = [k for k in BENCH_COLUMNS if any(k in impl for impl in by_batch.values())]
    out = []
    for batch, impl in sorted(by_batch.items()):
        cell = {k: seconds(v["epoch_s"], v.get("epoch_s_std")) for k, v in impl.items()}
        if "ours" in cell:
            cell["ours"] = report.quantity(f"neuralgrid/bench/b{batch}_epoch_s", cell["ours"])
        ratio = (f"{impl['unfold']['epoch_s'] / impl['ours']['epoch_s']:.1f}×"
                 if "unfold" in impl and "ours" in impl else "–")  # fmt: skip
        out.append({"batch": batch, **{BENCH_COLUMNS[k]: cell.get(k, "–") for k in timed},
                    "unfold ÷ ours": ratio})  # fmt: skip
    return out


def whole_epoch_text(bench: dict[str, Any]) -> str:
    """The benchmark's whole-epoch timings at batch 256, in a sentence (the table's cells
    extrapolate from fewer steps); empty where the file has none."""
    timed = [(label, r) for label, impl in (("on one device", "ours"),
                                            ("split over the cores", "ours, split"))
             if (r := whole_epoch(bench, impl)) is not None]  # fmt: skip
    if not timed:
        return ""
    return (f"Timed over a whole epoch instead ({bench['config']['n_train'] // 256} steps), batch 256 takes "
            + " and ".join(f"{report.plus_minus(r['epoch_s'], r.get('epoch_s_std'), 2, ' s')} "
                           f"{label}" for label, r in timed) + ".")


def whole_epoch(bench: dict[str, Any], impl: str = "ours") -> dict[str, Any] | None:
    """The benchmark's whole-epoch timing of ``impl`` at batch 256 (a row of the file), or
    ``None`` if it has none."""
    return next((r for r in bench["extra"]["rows"] if r["implementation"] == impl
                 and r["batch"] == 256 and "whole epoch" in r["measured"]), None)  # fmt: skip


def blog_rows() -> list[dict[str, Any]]:
    """The blog's timing table (unnamed hardware), in the same format."""
    from gridlib.neuralgrid.experiments import BLOG_TIMING

    return [{"implementation": impl, "accelerator": acc, "batch": batch, "s per epoch": seconds(s, sd)}
            for impl, acc, batch, s, sd in BLOG_TIMING]


def grid3d_rows(full: dict[str, dict[str, Any] | None], live: dict[str, Any],
                live_n: tuple[int | None, int | None]) -> list[dict[str, Any]]:  # fmt: skip
    """The 3-D table: the full runs, then any small run made in the page (``live``: dataset ->
    ``Run``, trained on ``live_n`` training and test images, ``None`` meaning all)."""
    rows = [{"dataset": DATASET_NAMES.get(ds, ds), "epochs": r["config"]["epochs"], "test images": f"{r['config']['n_test']:,}",
             "test accuracy": f"{100 * r['metrics']['test_acc']:.2f} %"}
            for ds, r in full.items() if r is not None]  # fmt: skip
    n_train, n_test = live_n
    for ds, run in live.items():
        rows.append({"dataset": f"{DATASET_NAMES.get(ds, ds)} (this page, {n_train or 60000:,} images)",
                     "epochs": len(run.history["epoch"]), "test images": f"{n_test or 10000:,}",
                     "test accuracy": f"{100 * run.history['test/acc'][-1]:.2f} %"})  # fmt: skip
    return rows
