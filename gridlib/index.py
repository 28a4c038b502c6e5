"""The book's results, gathered: the landing page's headline table and the results index.

Readers of the published results (``results/``), each computing everything it shows:

- :func:`headline_rows` -- one row per reproduced headline (:data:`HEADLINES`), each loaded with
  :func:`gridlib.results.load_group` and the configuration the book's claim rests on, so that a
  record of another configuration is refused rather than averaged in. Ours is the mean ± sd over
  seeds, next to the published number where there is one, and the gap.
- :func:`establishes` -- the landing page's answers in words ("what locality costs"), each
  number computed from the same results and each linked to its chapter; :func:`headline_note`
  says what qualifies a headline's gap (the seed spread, a rerun of the original).
- :func:`catalogue` and :func:`section_rows` -- every published record, grouped by the part and
  chapter of the book that shows it and by configuration (the seeds of one configuration
  together), each group summarised by its headline number. The re-check verdicts in
  ``results/rechecks/`` (a re-run of a record's first epoch, compared with the record) are shown
  next to the records they check, never as results of their own.

The published numbers that the library does not hold elsewhere are kept here
(:data:`FILTERGRID_PUBLISHED`, :data:`EP_PUBLISHED_TEST_ERR`), each with its source.

Why this module is long: it is the one place that knows every headline of the book (twelve
rows, each with its expected configuration and published number) and how to group all records by
chapter; split, the landing page and the index would each need half of the same catalogue.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from gridlib import report, results

#: One results record (see :mod:`gridlib.results`).
Record = Mapping[str, Any]
#: The records of one configuration, by result name (one per seed).
Group = Mapping[str, Record]

#: The analog-filter grid's reported test accuracies on row-wise MNIST, from the original work
#: (T. Pluck, *grid-neurons*, 2026, commit b7c349d; ``gridneurons`` in references.bib): SnAP-1
#: with Adam, batch 32, 10 epochs, and SnAP-1 with per-group SGD, batch 1, 3 epochs. One seed
#: each, scored on a random 2,000-image subset of the MNIST test set.
FILTERGRID_PUBLISHED = {"adam": 0.522, "sgd": 0.320}
FILTERGRID_PUBLISHED_NOTE = "1 seed, 2k random test images"

#: Scellier & Bengio (2017, ``scellier2017``), MNIST experiments: networks with one to three
#: hidden layers trained by EP reach "between 2 and 3 % test error". The paper gives no number
#: per architecture, so the book can only say whether a test error lies in this range.
EP_PUBLISHED_TEST_ERR = (0.02, 0.03)

RECHECKS = "rechecks"


# --------------------------------------------------------------------------- helpers


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}\u00a0%"  # a no-break space keeps the unit with its number


def _points(gap: float, digits: int = 2) -> str:
    """A gap in percentage points with a real minus sign: ``"−0.6 points"``."""
    return f"{report.signed(100 * gap, digits)} points"


def accuracy_key(name: str) -> str:
    """The stable key of a configuration's test accuracy, for :func:`gridlib.report.quantity`
    (:func:`gridlib.report.quantity_key` with ``"test_acc"``): ``"ep/mnist_784-500-10_ep/test_acc"``
    from the glob of its seeds (``"..._seed*"``), a record's name or the configuration's name
    (:attr:`Entry.key`)."""
    return report.quantity_key(name, "test_acc")


def doc_link(doc: str, text: str | None = None) -> str:
    """A MyST ``{doc}`` link to a page by its path from the book's root (works from any page);
    without ``text`` the link shows the page's title."""
    return f"{{doc}}`{text} </{doc}>`" if text else f"{{doc}}`/{doc}`"


def seed_values(key: str) -> Callable[[Group], list[float]]:
    """An extractor: the metric ``key`` of every record of a group (one value per seed)."""

    def values(group: Group) -> list[float]:
        return [float(r["metrics"][key]) for r in group.values()]

    return values


def per_seed_values(key: str = "test_acc_per_seed") -> Callable[[Group], list[float]]:
    """An extractor for records that each hold several seeds (the GLE runs): all their values.

    Refuses a record that says its run did not finish (``metrics.complete`` false).
    """

    def values(group: Group) -> list[float]:
        out: list[float] = []
        for name, rec in group.items():
            if rec["metrics"].get("complete") is False:
                raise results.ResultsError(f"{results.path(name)}: the run is not complete")
            out += [float(v) for v in rec["metrics"][key]]
        return out

    return values


def _checked(extract: Callable[[Group], list[float]], metric: str, want: Any) -> Callable[[Group], list[float]]:
    """``extract``, after refusing any record whose ``metrics[metric]`` is not ``want``."""

    def values(group: Group) -> list[float]:
        for name, rec in group.items():
            if rec["metrics"].get(metric) != want:
                raise results.ResultsError(
                    f"{results.path(name)}: {metric} is {rec['metrics'].get(metric)!r}, "
                    f"but the headline expects {want!r}")  # fmt: skip
        return extract(group)

    return values


# --------------------------------------------------------------------------- the headlines


class Headline(NamedTuple):
    """One reproduced headline number of the book.

    Attributes:
        system: the part of the book (``"Analog-filter grid"``).
        what: the configuration, in words.
        chapter: the page that shows it, by its path from the book's root.
        pattern: the glob of its published records (:func:`gridlib.results.load_group`).
        expect: the configuration every record must have (refused otherwise).
        values: the test accuracies of a loaded group, one per seed.
        published: the published accuracy, ``None`` where there is none.
        published_sd: its seed-to-seed standard deviation, where published.
        published_n: how many seeds the published number averages (0: not stated).
        published_note: what the published number is, in a few words.
        command: the command that writes the records (shown while they are missing).
        ep_range: compare the test error with :data:`EP_PUBLISHED_TEST_ERR` instead.
        published_values: the published per-seed accuracies, where the source gives them.
    """

    system: str
    what: str
    chapter: str
    pattern: str
    expect: Mapping[str, Any]
    values: Callable[[Group], list[float]]
    published: float | None = None
    published_sd: float | None = None
    published_n: int = 0
    published_note: str = ""
    command: str = ""
    ep_range: bool = False
    published_values: tuple[float, ...] = ()


def _gle(arch: str, what: str) -> Headline:
    from gridlib.gle.mnist1d import PUBLISHED
    from gridlib.gle.summary import PUBLISHED_SEEDS

    pub = PUBLISHED[arch]
    return Headline(
        "GLE", f"{what}, MNIST-1D", "notebooks/32-gle-mnist1d", f"gle/mnist1d/{arch}_seeds*",
        {"setup.arch": arch, "epochs": 150, "n_train": 4000, "n_test": 1000, "provenance.scale": "full"},
        per_seed_values(), pub["mean"], pub["std"], len(pub["per_seed"]) or PUBLISHED_SEEDS, "",
        f"python -m gridlib gle-mnist1d --arch {arch} --seeds ...",
        published_values=tuple(pub["per_seed"]))  # fmt: skip


def _filtergrid(optimizer: str, batch: int, epochs: int, what: str) -> Headline:
    return Headline(
        "Analog-filter grid", what, "notebooks/12-rowwise-mnist",
        f"filtergrid/snap1_{optimizer}_b{batch}_e{epochs}_n60000_seed*",
        {"rule": "snap1", "optimizer": optimizer, "batch_size": batch, "epochs": epochs,
         "n_train": 60000, "n_test": 10000, "grid": [28, 10], "provenance.scale": "full"},
        seed_values("test/acc"), FILTERGRID_PUBLISHED[optimizer], None, 1, FILTERGRID_PUBLISHED_NOTE,
        f"python -m gridlib filtergrid-mnist --rule snap1 --optimizer {optimizer} "
        f"--batch-size {batch} --epochs {epochs} --seed S")  # fmt: skip


def _ep(sizes: Sequence[int], estimator: str, epochs: int, what: str, command: str) -> Headline:
    arch = "-".join(map(str, sizes))
    return Headline(
        "Equilibrium propagation", what, "notebooks/22-ep-mnist", f"ep/mnist_{arch}_{estimator}_seed*",
        {"sizes": list(sizes), "estimator": estimator, "epochs": epochs, "n_train": 60000,
         "n_test": 10000, "provenance.scale": "full"},
        seed_values("test_acc"), command=command, ep_range=True)  # fmt: skip


def _mlp(sizes: Sequence[int]) -> Headline:
    arch = "-".join(map(str, sizes))
    hidden = ",".join(map(str, sizes[1:-1]))
    return Headline(
        "Backprop baseline", f"MLP {arch}, MNIST", "notebooks/22-ep-mnist", f"baselines/mnist-mlp-{arch}_seed*",
        {"dataset": "mnist", "sizes": list(sizes), "epochs": 25, "batch_size": 20, "n_train": 60000,
         "provenance.scale": "full"},
        seed_values("test/acc"),
        command=f"python -m gridlib mlp --hidden {hidden} --activation hard_sigmoid01 --epochs 25 "
                "--batch-size 20 --seed S")  # fmt: skip


def _headlines() -> list[Headline]:
    from gridlib.neuralgrid.experiments import BLOG_TEST_ACC

    return [
        _filtergrid("adam", 32, 10, "SnAP-1 + Adam, row-wise MNIST"),
        _filtergrid("sgd", 1, 3, "SnAP-1 + batch-1 SGD, row-wise MNIST"),
        _ep((784, 500, 10), "ep", 25, "EP 784-500-10, MNIST", "python -m gridlib ep-mnist --seed S"),
        _ep((784, 500, 10), "symmetric", 25, "centered EP 784-500-10, MNIST",
            "python -m gridlib ep-mnist --estimator symmetric --seed S"),
        _ep((784, 256, 256, 10), "ep", 30, "EP 784-256-256-10, MNIST",
            "python -m gridlib ep-mnist --hidden 256,256 --beta 1.0 --alphas 0.4,0.1,0.01 "
            "--n-free 100 --n-nudge 6 --n-eval 150 --epochs 30 --seed S"),
        _gle("e2e15k", "end-to-end GLE, 15k"),
        _gle("e2e42k", "end-to-end GLE, 42k"),
        _gle("static", "static lag-net + LE MLP"),
        Headline(
            "NeuralGrid", "64×64 grid, Fashion-MNIST", "notebooks/40-neuralgrid",
            "neuralgrid/fashion_mnist_blog_seed*",
            {"preset": "blog", "is_preset": True, "height": 64, "width": 64, "epochs": 300,
             "dataset": "fashion_mnist", "n_train": 60000, "n_test": 10000, "provenance.scale": "full"},
            seed_values("test_acc"), BLOG_TEST_ACC, None, 1, "blog, 1 run",
            "python -m gridlib neuralgrid-fashion --preset blog --seed S"),
        Headline(
            "gridnet", "16³ grid, 2 epochs, MNIST", "notebooks/50-gridnet", "gridnet/cpu_seed*",
            {"preset": "cpu", "grid": 16, "block": 4, "inner": 2, "outer": 10, "epochs": 2,
             "batch_size": 256, "provenance.scale": "full"},
            _checked(seed_values("test_acc"), "n_test", 10000),
            command="python -m gridlib gridnet-mnist --preset cpu --seed S"),
        _mlp((784, 500, 10)),
        _mlp((784, 256, 256, 10)),
    ]  # fmt: skip


#: The reproduced headlines of the book, in the order of the landing page's table.
HEADLINES: list[Headline] = _headlines()


def headline_values(h: Headline) -> list[float] | None:
    """The test accuracies of a headline's records (``None`` when none is published yet).

    Raises:
        gridlib.results.ResultsError: a record differs from ``h.expect``, or the records of the
            group differ in anything but the seed.
    """
    group = results.load_group(h.pattern, expect=h.expect, allow_empty=True)
    return h.values(group) if group else None


def published_text(h: Headline, short: bool = False) -> str:
    """A headline's published number in words: ``"85.0 % (1 run)"``, the EP range, or ``"none"``.

    ``short`` drops the explanation after the EP range (for wide tables such as
    :mod:`gridlib.compare`'s).
    """
    if h.ep_range:
        lo, hi = EP_PUBLISHED_TEST_ERR
        text = f"{100 * lo:.0f}–{100 * hi:.0f}\u00a0% test error"
        return text if short else text + ", one range for all its networks"
    if h.published is None:
        return "none"
    pub = _pct(h.published) if h.published_sd is None else (
        report.plus_minus(100 * h.published, 100 * h.published_sd, 1, " %"))
    extra = h.published_note or (f"n={h.published_n}" if h.published_n else
                                 "n not stated" if h.published_sd is not None else "")
    return pub + (f" ({extra})" if extra else "")


def published_gap(h: Headline, mean: float) -> str:
    """Ours (mean test accuracy) against the published number: points, or where the EP range is."""
    if h.ep_range:
        lo, hi = EP_PUBLISHED_TEST_ERR
        err = 1.0 - mean
        tol = 1e-9  # 1 - 0.97 is 0.030000000000000027
        where = "inside" if lo - tol <= err <= hi + tol else ("below" if err < lo else "above")
        return f"test error {_pct(err, 2)}: {where} that range"
    return "–" if h.published is None else _points(mean - h.published)


def _range_pct(values: Sequence[float]) -> str:
    return f"{100 * min(values):.2f}–{100 * max(values):.2f}\u00a0%"


def published_beyond(h: Headline, accs: Sequence[float]) -> bool | None:
    """Whether our seeds' accuracies ``accs`` differ from the published number beyond the seeds'
    spread, by the book's one criterion (:data:`gridlib.report.SPREAD_RULE`): GLE's published
    mean ± sd over seeds as :func:`gridlib.gle.summary.differs_from_published` reads it (the
    chapter's own test); other published seeds with :func:`gridlib.report.groups_differ`; else
    with :func:`gridlib.report.beyond_spread` taking the published number as one further draw
    (``single=True``: a single run, or a mean whose seeds are not given). ``None`` where there
    is no published accuracy (or only the EP paper's range)."""
    if h.ep_range or h.published is None:
        return None
    if h.system == "GLE":  # the paper's mean ± sd over its seeds, as *GLE on MNIST-1D, end to end* reads it
        from gridlib.gle.summary import differs_from_published

        return differs_from_published(accs, h.expect["setup.arch"])
    if len(h.published_values) > 1:
        return report.groups_differ(accs, h.published_values)
    return report.beyond_spread(accs, h.published, single=True)


def spread_text(beyond: bool) -> str:
    """``"within the seeds' spread"`` or ``"beyond the seeds' spread"``."""
    return "beyond the seeds' spread" if beyond else "within the seeds' spread"


def _where_published(h: Headline, accs: Sequence[float]) -> str:
    """``"above all 3 of our seeds"``, ``"below ..."`` or ``"inside the range of our seeds"``."""
    n = len(accs)
    if h.published > max(accs):  # type: ignore[operator]
        return f"above all {n} of our seeds"
    if h.published < min(accs):  # type: ignore[operator]
        return f"below all {n} of our seeds"
    return "inside the range of our seeds"


class Rounding(NamedTuple):
    """What the remakes of a group's records show of its float32 rounding: the largest move
    of a seed's test accuracy, that seed and its two values (before, after), and the lowest
    and highest accuracy of the group's seeds over both versions of the code."""

    moved: float
    seed: str
    before: float
    after: float
    low: float
    high: float


def rounding(group: Group) -> Rounding | None:
    """:class:`Rounding` of a group of seeds, ``None`` unless a remake (a record's ``remade``
    annotation: the same command from code whose float32 rounding differs) moved one's test
    accuracy."""
    values, moves = [], []
    for name, rec in group.items():
        key = next((k for k in ("test/acc", "test_acc") if k in rec.get("metrics", {})), None)
        if key is None:
            continue
        now = float(rec["metrics"][key])
        before = ((rec.get("remade") or {}).get("metrics") or {}).get(key)
        values.append(now)
        if isinstance(before, (int, float)) and before != now:
            values.append(float(before))
            moves.append((abs(now - before), group_key(name)[1], float(before), now))
    if not moves:
        return None
    moved, seed, before, now = max(moves)
    return Rounding(moved, seed, before, now, min(values), max(values))


def rounding_words(r: Rounding, short: bool = False) -> str:
    """The remakes' lesson in words: how far the same seed moved, and (unless ``short``) the
    range single runs have reached over both versions of the code."""
    if short:
        return (f"float32 rounding alone moves single runs by up to {100 * r.moved:.2f} points "
                f"(seed {r.seed} ended at {_pct(r.before, 2)} under earlier code)")
    return (f"remade with code whose float32 rounding differs, the same seed moved by up to "
            f"{100 * r.moved:.2f} points (seed {r.seed}: {_pct(r.before, 2)} before, "
            f"{_pct(r.after, 2)} now), and single runs have ended anywhere from "
            f"{_pct(r.low, 2)} to {_pct(r.high, 2)}")


def _rounding_note(h: Headline, accs: Sequence[float]) -> str:
    """Where the published number lies beyond our seeds' spread but within what single runs of
    the configuration reached under either version of the code (:func:`rounding`): that
    caveat, else ''."""
    if h.published is None or not published_beyond(h, accs):
        return ""  # decided without loading the records again
    group = results.load_group(h.pattern, expect=h.expect, allow_empty=True)
    r = rounding(group) if group else None
    if r is None or not r.low <= h.published <= r.high + 0.02:
        return ""
    return "; but " + rounding_words(r, short=True)


def _original_rerun() -> float | None:
    """The rerun of the original's own code (SnAP-1 + Adam, *Row-wise MNIST with SnAP-1*):
    its test accuracy, ``None`` while it is missing."""
    from gridlib.filtergrid.summary import ORIGINAL_EXPECT, ORIGINAL_RUN

    if not results.exists(ORIGINAL_RUN):
        return None
    return float(results.load(ORIGINAL_RUN, expect=ORIGINAL_EXPECT)["metrics"]["test_acc"])


def _original_rerun_note(accs: Sequence[float], published: float) -> str:
    """The rerun of the original's own code (*Row-wise MNIST with SnAP-1*), against the range
    of our seeds and the
    published number (empty while the rerun is missing)."""
    orig = _original_rerun()
    if orig is None:
        return ""
    reach = "does not reach" if orig < published else "reaches"
    return (f"the original's own code, {{ref}}`rerun once <original-rerun>`, scores "
            f"{_pct(orig, 2)} on the full test set, "
            f"{report.seeds_range_words(accs, orig, _range_pct(accs))}: the rerun {reach} the "
            f"published {_pct(published)}"
            + (" either" if orig < published else ""))


#: Why a headline's gap has no rerun of the original behind it, where none was made.
NOT_RERUN = {"filtergrid/snap1_sgd_b1_e3_n60000_seed*":
             "the original's batch-1 run was not rerun, so the cause is not known"}


def shortfall_reason(h: Headline) -> str:
    """Why our seeds fall short of a headline's single published run, as far as the book knows:
    what the rerun of the original's own code found, or that no rerun was made."""
    if h.chapter == "notebooks/12-rowwise-mnist" and h.expect.get("optimizer") == "adam":
        orig = _original_rerun()
        if orig is not None and h.published is not None:
            return ("the original's own code, rerun, falls short too" if orig < h.published
                    else "the original's own code, rerun, reaches it")
    return NOT_RERUN.get(h.pattern, "the cause is not known")


def _same_size_ep(h: Headline, mean: float) -> str:
    """For a backprop baseline: EP's mean at the same size, and the gap, where EP has one."""
    ep = next((e for e in HEADLINES if e.ep_range and e.expect.get("estimator") == "ep"
               and e.expect.get("sizes") == h.expect.get("sizes")), None)  # fmt: skip
    accs = headline_values(ep) if ep else None
    if not accs:
        return "the book's own baseline"
    gap = mean - report.mean_sd(accs)[0]
    return f"the book's own baseline; {_points(gap)} against EP at the same size"


def headline_note(h: Headline, accs: Sequence[float]) -> str:
    """What qualifies a headline's gap, in words computed from the results: whether it lies
    within the spread of the seeds (:func:`published_beyond`), what a rerun of the original
    found, what the published number covers."""
    mean, _ = report.mean_sd(accs)
    if h.ep_range:
        return "the paper gives one range of test error for all its networks, none per architecture"
    if h.published is None:
        return _same_size_ep(h, mean) if h.system == "Backprop baseline" else "no published accuracy"
    words = spread_text(bool(published_beyond(h, accs)))
    if len(h.published_values) > 1 or h.published_sd is not None:
        return f"{words}, against the published seeds"
    note = f"one published run, {_where_published(h, accs)}, {words}" + _rounding_note(h, accs)
    if h.chapter == "notebooks/12-rowwise-mnist" and h.expect.get("optimizer") == "adam":
        orig = _original_rerun()  # the table's note is short: the landing page's bullet says more
        if orig is None:
            return note
        return (note + f"; the original's own code, {{ref}}`rerun once <original-rerun>`, scores "
                f"{_pct(orig, 2)}, " + ("also below it" if orig < h.published else "reaching it"))
    if h.pattern in NOT_RERUN and h.published > max(accs):
        return note + "; " + NOT_RERUN[h.pattern]
    return note


def headline_row(h: Headline, link: bool = True) -> dict[str, str]:
    """One row of the landing page's table: the result, ours, the published number, the gap and
    a note on what qualifies the gap (:func:`headline_note`)."""
    result = f"{h.system}: {h.what}"
    row = {"result": doc_link(h.chapter, result) if link else result}
    accs = headline_values(h)
    if accs is None:
        return {**row, "ours (test accuracy)": f"not run yet: `{h.command}`", "published": "",
                "gap": "", "notes": ""}  # fmt: skip
    row["ours (test accuracy)"] = report.format_mean_sd(accs, percent=True, key=accuracy_key(h.pattern))
    mean, _ = report.mean_sd(accs)
    row["published"] = published_text(h, short=True)
    row["gap"] = published_gap(h, mean)
    row["notes"] = headline_note(h, accs)
    return row


def headline_rows(link: bool = True) -> list[dict[str, str]]:
    """The landing page's table: one row per entry of :data:`HEADLINES`, computed from the results."""
    return [headline_row(h, link) for h in HEADLINES]


# --------------------------------------------------------------------------- what the book establishes


def _grid_rules() -> tuple[dict[str, dict], dict[str, list[float]]] | None:
    """The runs of *One grid, every temporal rule* at the original budget (``{label: group}``)
    and their final accuracies (``None`` while BPTT's or SnAP-1's runs are missing)."""
    from gridlib.filtergrid import summary

    groups, _ = summary.load_mnist_runs(seeds=(0, 1, 2), runs=summary.RULE_RUNS)
    groups = {k: g for k, g in groups.items() if g}
    accs = {k: summary.final_accuracies(g) for k, g in groups.items()}
    if "BPTT" not in accs or "SnAP-1" not in accs:
        return None
    return groups, accs


def _rule_acc(accs: Mapping[str, Sequence[float]], label: str) -> str:
    from gridlib.filtergrid import summary

    key = accuracy_key(summary.RULE_RUNS[label].name("*"))
    return report.format_mean_sd(accs[label], percent=True, n=False, key=key)


def _paired(groups: Mapping[str, Mapping], a: str, b: str) -> list[float]:
    """``a`` minus ``b``, seed by seed, in points (as *One grid, every temporal rule* pairs them)."""
    from gridlib.filtergrid.summary import paired_differences

    return [100 * x for x in paired_differences(groups[a], groups[b]).values()]


#: The filter grid's SnAP-k rules (their update reads neighbours only), by their rule name.
SNAP_RULES = ("snap0", "snap1", "snap2")


def _locality_on_grid() -> str | None:
    """Row-wise MNIST: BPTT against SnAP-1 on the same seeds, and the SnAP-k rules against each
    other, by the book's one criterion (:func:`gridlib.report.beyond_spread`)."""
    from gridlib.filtergrid import summary

    found = _grid_rules()
    if found is None:
        return None
    groups, accs = found
    snaps = sorted(k for k in accs if summary.RULE_RUNS[k].rule in SNAP_RULES)
    apart = any(report.beyond_spread(_paired(groups, a, b))
                for i, a in enumerate(snaps) for b in snaps[i + 1:])  # fmt: skip
    means = [100 * report.mean_sd(accs[k])[0] for k in snaps]
    lead = _paired(groups, "BPTT", "SnAP-1")
    beyond = report.beyond_spread(lead)
    gap = report.mean_sd(lead)[0]
    tuned, bptt_tuned = _tuned_lead()
    head = (f"Locality costs the analog-filter grid about {gap:.0f} points on row-wise MNIST "
            "at the original's setting" if beyond and gap > 0 else
            f"On row-wise MNIST, BPTT and SnAP-1 differ by {gap:.0f} points, within the "
            "seeds' spread")  # fmt: skip
    head = f"**{head}.**"
    names = report.listing(snaps)
    return (f"{head} On the same grid and budget, BPTT reaches {_rule_acc(accs, 'BPTT')}; the "
            f"neighbour-only rules {names} reach {min(means):.0f}–{max(means):.0f} %, "
            + ("indistinguishable from one another" if not apart else "apart beyond the seeds' "
               "spread") + f" over {len(accs['SnAP-1'])} seeds. BPTT's lead over SnAP-1 on the "
            f"same seeds is {spread_text(beyond)}. " + _locality_tuned(tuned, bptt_tuned)
            + doc_link("notebooks/60-temporal-rules", "One grid, every temporal rule"))


def _tuned_lead() -> tuple[list[float], dict[int, float]]:
    """BPTT minus SnAP-1 per seed (points) with each rule's step size chosen on validation data
    (the fair table), and BPTT's tuned accuracy by seed (%); empty until both have three tuned
    seeds on which to pair them."""
    from gridlib.filtergrid import fair
    from gridlib.filtergrid.summary import paired_differences

    runs = fair.load()
    bptt, snap1 = runs.tuned.get("BPTT") or {}, runs.tuned.get("SnAP-1") or {}
    d = [100 * x for x in paired_differences(bptt, snap1).values()]
    if len(d) < fair.MIN_SEEDS:
        return [], {}
    return d, fair.accuracy_by_seed(bptt)


def _locality_tuned(d: Sequence[float], bptt: Mapping[int, float]) -> str:
    """BPTT against SnAP-1 with each rule's step size chosen on validation data (the
    fair table; ``d`` and ``bptt`` from :func:`_tuned_lead`), on the same seeds, and a BPTT
    seed that ends far below the others (:func:`gridlib.filtergrid.fair.low_seed`); empty
    without it."""
    from gridlib.filtergrid import fair

    if not d:
        return ""
    mean, sd = report.mean_sd(d)
    low = fair.low_seed(bptt)
    text = (f"With each rule's step size chosen on validation data, BPTT still "
            f"{'leads' if mean > 0 else 'trails'} by {report.plus_minus(abs(mean), sd, 1)} points on average, "
            f"{spread_text(report.beyond_spread(d))}")
    if low is not None:
        text += (f": one of BPTT's tuned seeds ends {fair.below_median(bptt, low):.0f} points below "
                 "its median seed, and that seed widens the spread")
    return text + ". "


def _what_locality_buys() -> str | None:
    """Row-wise MNIST: SnAP-1's learning state and CPU time per step against BPTT's."""
    from gridlib.filtergrid import comparison
    from gridlib.filtergrid.temporal import state_floats_per_parameter

    bench = comparison.load_work()
    rows = {r["rule"]: r for r in bench["metrics"]["rows"]} if bench else {}
    if "BPTT" not in rows or "SnAP-1" not in rows:
        return None
    snap1, bptt = (state_floats_per_parameter(r, 28, 10, t_len=28) for r in ("snap1", "bptt"))
    ratio = rows["BPTT"]["CPU-ms per step"] / rows["SnAP-1"]["CPU-ms per step"]
    speed = (f"{ratio:.1f} times as fast as BPTT's, partly because its program is the best "
             "tuned" if ratio > 1 else f"{1 / ratio:.1f} times as slow as BPTT's")
    return (f"**What locality buys there is a memory that does not grow with the sequence.** "
            f"SnAP-1 carries {snap1:g} floats of learning state per parameter at any length; "
            f"BPTT stores {bptt:g} at 28 steps, and more the longer the sequence. In this "
            f"library SnAP-1's training step also runs {speed}. "
            + doc_link("notebooks/60-temporal-rules", "One grid, every temporal rule"))


def _ep_against_backprop() -> str | None:
    """EP against backprop at the same size on MNIST and Fashion-MNIST (*Equilibrium propagation on MNIST*,
    *Equilibrium propagation on Fashion-MNIST*)."""
    from gridlib.ep import summary as ep

    runs = ep.load_cross_runs()
    gaps, relu = ep.locality_gaps(runs), ep.locality_gaps(runs, control=True)
    if set(gaps) != set(ep.DATASET_NAMES):
        return None
    m, f = (_points(gaps[d] / 100) for d in ("mnist", "fashion_mnist"))
    text = (f"**Equilibrium propagation ends within {max(map(abs, gaps.values())):.1f} points "
            f"of backprop with the same units.** At {ep.CROSS_ARCH} with hard-sigmoid "
            f"units, backprop minus EP is {m} on MNIST and {f} on Fashion-MNIST")
    if "fashion_mnist" in relu:
        text += (f"; backprop with ReLU units leads by "
                 f"{_points(relu['fashion_mnist'] / 100).lstrip('+')} on Fashion-MNIST")
    return (text + ". " + doc_link("notebooks/22-ep-mnist", "EP on MNIST") + ", "
            + doc_link("notebooks/62-ep-fashion-mnist", "EP on Fashion-MNIST"))


def _ep_reproduced() -> str | None:
    errs = {h.what: 1 - report.mean_sd(v)[0] for h in HEADLINES if h.ep_range
            for v in [headline_values(h)] if v}  # fmt: skip
    if not errs:
        return None
    lo, hi = EP_PUBLISHED_TEST_ERR
    inside = all(lo <= e <= hi for e in errs.values())
    return (f"**Equilibrium propagation {'reproduces' if inside else 'does not reproduce'} its "
            f"paper.** The {len(errs)} networks' mean test errors are {_pct(min(errs.values()), 2)} "
            f"to {_pct(max(errs.values()), 2)}, {'inside' if inside else 'not all inside'} the "
            f"{100 * lo:.0f}–{100 * hi:.0f} % the paper states for all its networks. "
            + doc_link("notebooks/22-ep-mnist", "EP on MNIST"))


def _snap1_reproduced() -> str | None:
    """SnAP-1 + Adam against its published run, and the rerun of the original's own code."""
    h = HEADLINES[0]
    accs = headline_values(h)
    orig = _original_rerun()
    if not accs or orig is None or h.published is None:
        return None
    gap = h.published - report.mean_sd(accs)[0]
    short = orig < h.published
    head = ("**The published SnAP-1 number looks like a favourable single run: the original's "
            "own code, rerun, falls short of it too.**" if short and gap > 0 else
            "**SnAP-1 against its published number.**")  # fmt: skip
    return (f"{head} Our mean is {100 * abs(gap):.2f} points {'below' if gap > 0 else 'above'} "
            f"the published {_pct(h.published)}, a single run {_where_published(h, accs)}, "
            f"{spread_text(bool(published_beyond(h, accs)))}{_rounding_note(h, accs)}; "
            + _original_rerun_note(accs, h.published) + ". " + doc_link(h.chapter, "Row-wise MNIST"))


def _snap1_sgd() -> str | None:
    """SnAP-1 with per-group SGD at batch 1 against the original's single run (not rerun)."""
    h = HEADLINES[1]
    accs = headline_values(h)
    if not accs or h.published is None:
        return None
    gap = h.published - report.mean_sd(accs)[0]
    if gap <= 0:
        return None
    return (f"**SnAP-1 with batch-1 SGD ends {100 * gap:.1f} points below its single published "
            f"run, {spread_text(bool(published_beyond(h, accs)))}.** Ours reaches "
            f"{report.format_mean_sd(accs, percent=True, key=accuracy_key(h.pattern))}; the "
            f"original's single run of {_pct(h.published)} lies {_where_published(h, accs)}. "
            "The original's batch-1 run was "
            "not rerun. " + doc_link(h.chapter, "Row-wise MNIST"))


def _ep_time() -> str | None:
    """EP's seconds per epoch against backprop's on the same network, both timed in one run of
    ``benchmarks/ep.py`` (the record ``bench/ep``, shown in the section *Speed* of
    *Equilibrium propagation on MNIST*): a ratio measured side by side, not read from training runs
    made at different times on a machine that may have been shared."""
    from gridlib import results

    if not results.exists("bench/ep"):
        return None
    rec = results.load("bench/ep")
    ratio = rec["metrics"].get("like_for_like", {}).get(EP_OVER_BACKPROP)
    ep_row = next((r for r in rec["metrics"]["rows"] if r["implementation"].startswith("gridlib.ep")), None)
    if ratio is None or ep_row is None:
        return None  # a benchmark record from before backprop was timed beside EP
    return (f"**What equilibrium propagation costs is time.** An epoch of EP's "
            f"{'-'.join(map(str, rec['config']['sizes']))} network takes "
            f"{ep_row['s per 60k epoch']:.1f} s per 60k examples in the benchmark of "
            + doc_link("notebooks/22-ep-mnist", "EP on MNIST")
            + f" (section *Speed*; training steps only), {ratio:.1f}× backprop's on the same "
            "network in the same run: every update waits for the network to settle twice.")


#: The ratio of ``bench/ep`` that the landing page states (``benchmarks/ep.py`` writes it).
EP_OVER_BACKPROP = "EP's step over backprop's, same network (wall time)"


def _others_reproduced() -> str | None:
    """GLE's three published networks and NeuralGrid's blog run, against our seeds
    (:func:`published_beyond`)."""
    gle = [(h, v) for h in HEADLINES if h.system == "GLE" and h.published is not None
           for v in [headline_values(h)] if v]  # fmt: skip
    ng = next(h for h in HEADLINES if h.system == "NeuralGrid")
    ng_accs = headline_values(ng)
    if not gle or not ng_accs or ng.published is None:
        return None
    gaps = [abs(report.mean_sd(v)[0] - h.published) for h, v in gle]  # type: ignore[operator]
    within = sum(not published_beyond(h, v) for h, v in gle)
    ng_gap = ng.published - report.mean_sd(ng_accs)[0]
    ng_beyond = bool(published_beyond(ng, ng_accs))
    if ng_beyond:
        ng_verb = "falls short" if ng_gap > 0 else "exceeds its blog run"
    elif ng.published > max(ng_accs):
        ng_verb = "reproduces, with every seed below the blog's run"
    else:
        ng_verb = "reproduces"
    gle_verb = "reproduces" if within == len(gle) else "reproduces in part"
    ng_close = (f"close, and with {len(ng_accs)} seeds the gap is "
                if ng.published > max(ng_accs) and not ng_beyond else "")
    return (f"**GLE {gle_verb}; NeuralGrid {ng_verb}.** "
            + (f"All {within} of GLE's published" if within == len(gle) and within > 1
               else f"{within} of GLE's {len(gle)} published")
            + " networks are within the seeds' spread of the paper's (largest gap "
            f"{100 * max(gaps):.2f} points). NeuralGrid's single published run is "
            f"{100 * abs(ng_gap):.2f} points {'above' if ng_gap > 0 else 'below'} our mean, "
            f"{_where_published(ng, ng_accs)}: {ng_close}{spread_text(ng_beyond)}. "
            + doc_link("notebooks/32-gle-mnist1d", "GLE on MNIST-1D") + ", "
            + doc_link(ng.chapter, "NeuralGrid"))


def spread_rule() -> str:
    """The book's criterion for "within / beyond the seeds' spread", as a sentence for a page."""
    return f"Within or beyond the seeds' spread, here and on every page: {report.SPREAD_RULE}."


def establishes() -> list[str]:
    """The landing page's answers, one Markdown paragraph each, every number computed from the
    results files and each linked to the chapter that shows it (answers whose results are
    missing are left out)."""
    answers = [_locality_on_grid(), _what_locality_buys(), _ep_against_backprop(), _ep_time(),
               _ep_reproduced(), _snap1_reproduced(), _snap1_sgd(), _others_reproduced()]
    return [a for a in answers if a]


# --------------------------------------------------------------------------- the results index


class Section(NamedTuple):
    """A part of the book and the results each of its chapters loads (glob patterns)."""

    key: str
    title: str
    chapters: tuple[tuple[str, tuple[str, ...]], ...]


#: Which chapter shows which published results; the first matching pattern wins.
SECTIONS: tuple[Section, ...] = (
    Section("filtergrid", "The analog-filter grid", (
        ("notebooks/11-snap1", ("filtergrid/gradient_agreement",)),
        ("notebooks/12-rowwise-mnist", ("filtergrid/snap1_*", "filtergrid/bptt_*", "filtergrid/rtrl_*",
                                        "filtergrid/original_snap1_*", "filtergrid/protocols",
                                        "bench/filtergrid", "bench/live")),
        ("notebooks/13-imperfect-hardware", ("filtergrid/robustness/*",
                                             "filtergrid/original_robustness")))),
    Section("ep", "Equilibrium propagation", (
        ("notebooks/21-ep-seed-failures", ("ep/seed_failures",)),
        ("notebooks/22-ep-mnist", ("ep/mnist_*", "ep/bptt_sweep", "baselines/mnist-mlp-784-*",
                                   "bench/ep")))),
    Section("gle", "Generalized latent equilibrium", (
        ("notebooks/31-gle-teacher-student", ("gle/lagline/*", "gle/lagnet")),
        ("notebooks/32-gle-mnist1d", ("gle/mnist1d/*", "bench/gle", "bench/gle_one_core")))),
    Section("neuralgrid", "NeuralGrid", (("notebooks/40-neuralgrid", ("neuralgrid/*", "bench/neuralgrid")),)),
    Section("gridnet", "gridnet", (("notebooks/50-gridnet", ("gridnet/*", "bench/gridnet*")),)),
    Section("locality", "The price of locality", (
        ("notebooks/60-temporal-rules", ("filtergrid/alignment", "filtergrid/tune/*", "filtergrid/tuned/*",
                                         "filtergrid/snap0_*",
                                         "filtergrid/snap2_*", "filtergrid/tbptt*",
                                         "filtergrid/online_snap1*", "bench/filtergrid_rules")),
        ("notebooks/61-every-system", ("bench/ceiling", "bench/peers", "device/*")),
        ("notebooks/62-ep-fashion-mnist", ("ep/fashion_mnist_*", "baselines/fashion_mnist-*",
                                           "baselines/mnist-mlp-relu-*")))),
)  # fmt: skip
OTHER = Section("other", "Not shown by any chapter", ((None, ("*",)),))  # type: ignore[arg-type]

_SEED_SUFFIX = re.compile(r"_seeds?(\d+(?:-\d+)*)$")


def group_key(name: str) -> tuple[str, str]:
    """``("filtergrid/snap1_adam_b32_e10_n60000", "0")`` from ``".../snap1_adam_..._seed0"``:
    the configuration's name and the seed(s); ``(name, "")`` for a record without a seed suffix."""
    m = _SEED_SUFFIX.search(name)
    return (name[: m.start()], m.group(1).replace("-", ", ")) if m else (name, "")


class Entry(NamedTuple):
    """One configuration in the index: its records (the seeds) and where the book shows them."""

    key: str
    section: str
    chapter: str | None
    records: dict[str, dict[str, Any]]


def _place(name: str) -> tuple[str, str | None]:
    for section in (*SECTIONS, OTHER):
        for chapter, patterns in section.chapters:
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                return section.key, chapter
    raise AssertionError("unreachable: OTHER matches everything")


def catalogue(records: Mapping[str, dict[str, Any]] | None = None) -> list[Entry]:
    """Every published result (re-check verdicts aside), grouped by configuration and placed in
    the section and chapter that shows it.

    Records that share a name up to the seed form one entry only if they differ in nothing but the
    seed (as :func:`gridlib.results.load_group` requires); otherwise each stays an entry of its own.
    """
    records = results.load_all("") if records is None else records
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for name, rec in records.items():
        if name.startswith(RECHECKS + "/"):
            continue
        by_key.setdefault(group_key(name)[0], {})[name] = dict(rec)
    entries = []
    for key, group in by_key.items():
        first = next(iter(group.values()))
        same = all(not results.config_differences(first.get("config") or {}, r.get("config") or {},
                                                  ignore=results.SEED_KEYS) for r in group.values())  # fmt: skip
        parts = [(key, group)] if same else [(n, {n: r}) for n, r in group.items()]
        for k, g in parts:
            section, chapter = _place(next(iter(g)))
            entries.append(Entry(k, section, chapter, g))
    return entries


def rechecks(records: Mapping[str, Record] | None = None) -> dict[str, Record]:
    """The re-check verdicts, keyed by the name of the record each one checks (one made before
    a remake checked the record it replaced: :func:`gridlib.results.checks_this_record`)."""
    records = results.load_all(RECHECKS) if records is None else records
    out = {}
    for name, rec in records.items():
        if name.startswith(RECHECKS + "/"):
            out[name.removeprefix(RECHECKS + "/")] = rec
    return out


def recheck_summary(entry: Entry, checks: Mapping[str, Record]) -> str:
    """``"2 of 3: bit-identical"`` -- how many of the entry's records were re-checked, and the verdicts."""
    found = [checks[n]["metrics"]["status"] for n, rec in entry.records.items()
             if n in checks and results.checks_this_record(checks[n], rec)]
    if not found:
        return "–"
    counts = Counter(found)
    verdicts = ", ".join(f"{status}" if n == len(found) else f"{n} {status}" for status, n in counts.items())
    n = len(entry.records)
    return verdicts if n == 1 else f"{len(found)} of {n}: {verdicts}"


# ----- the headline number of a record group

def group_accuracies(group: Group) -> list[float] | None:
    """The test accuracies a record group's headline shows, seed by seed (an ensemble's per
    seed, a run stopped on validation at its best epoch), or ``None`` where a record has none."""
    values: list[float] = []
    for rec in group.values():
        m = rec.get("metrics") or {}
        if isinstance(m.get("test_acc_per_seed"), list):
            values += [float(v) for v in m["test_acc_per_seed"]]
        elif isinstance(m.get("best/test/acc"), (int, float)):  # scored at its best epoch
            values.append(float(m["best/test/acc"]))
        elif isinstance(m.get("test/acc"), (int, float)):
            values.append(float(m["test/acc"]))
        elif isinstance(m.get("test_acc"), (int, float)):
            values.append(float(m["test_acc"]))
        else:
            return None
    return values


def _accuracy_text(values: Sequence[float], key: str | None = None) -> str:
    return "test accuracy " + report.format_mean_sd(values, percent=True, n=len(values) > 1,
                                                    key=key and accuracy_key(key))


def _gradient_agreement(rec: Record) -> str:
    m = rec["metrics"]
    worst = {int(t): max(v for k, v in row.items() if k.startswith("snap1/")) for t, row in m.items()}
    rtrl = max(row["rtrl/max"] for row in m.values())
    steps = ", ".join(f"{w:.1g} (T = {t})" for t, w in sorted(worst.items()))
    return f"SnAP-1 against the exact gradient, largest relative error: {steps}; exact RTRL ≤ {rtrl:.0e}"


def _seed_failures(rec: Record) -> str:
    m = {k: v for k, v in rec["metrics"].items() if isinstance(v, dict)}
    ref = m.pop("reference")["test_err"]
    errs = [v["test_err"] for v in m.values()]
    return (f"test error after 1 epoch: reference {_pct(ref)}; the {len(errs)} variants "
            f"{_pct(min(errs))} to {_pct(max(errs))}")  # fmt: skip


def _sweep_label(key: str) -> str:
    from gridlib.ep.summary import sweep_label

    return sweep_label(key).removeprefix("backprop, ")


def _bptt_sweep(rec: Record) -> str:
    m = {k: v for k, v in rec["metrics"].items() if isinstance(v, dict)}
    ep = [v["val_err"][-1] for v in m.values() if v["estimator"] != "bptt"]
    bp = {k: v["val_err"][-1] for k, v in m.items() if v["estimator"] == "bptt"}
    best = min(bp, key=bp.get)
    return (f"validation error after {report.plural(rec['config']['epochs'], 'epoch')}: EP {_pct(min(ep))}; backprop "
            f"through the relaxation at best {_pct(bp[best])} ({_sweep_label(best)})")  # fmt: skip


def _lagnet(rec: Record) -> str:
    m = rec["metrics"]
    return f"final loss: GLE {m['final_loss_gle']:.1e}, AM {m['final_loss_am']:.1e}"


def _bench_ep(rec: Record) -> str:
    row = next(x for x in rec["metrics"]["rows"] if x["implementation"].startswith("gridlib"))
    return (f"{row['implementation']}: {row['s per 60k epoch']:.1f} s per 60k examples (training "
            f"steps only), "
            f"{row['speed-up vs per-example']:.0f}× the per-example loop")


def _bench_filtergrid(rec: Record) -> str:
    row = rec["metrics"]["train step: SnAP-1 + Adam, batch 32"]
    return (f"SnAP-1 + Adam train step: {row['epoch_s']:.1f} s per 60k examples (training steps "
            f"only), {row['speedup_vs_naive']:.0f}× the naive loop")


def _bench_live(rec: Record) -> str:
    m = rec["metrics"]
    return (f"SnAP-1 + Adam in the live page, in headless Chromium: "
            f"{m['browser_examples_per_s']:,.0f} examples/s, {m['library_over_browser']:.1f}× slower "
            f"than the library's step; {100 * m['heldout_accuracy']:.0f} % held-out accuracy "
            f"after {m['seconds']:.0f} s")


def _bench_rules(rec: Record) -> str:
    rows = {r["rule"]: r for r in rec["metrics"]["rows"]}
    snap1 = rows["SnAP-1"]["s per 60k epoch (wall)"]
    slow = max(rows.values(), key=lambda r: r["CPU time / SnAP-1"])
    return (f"{len(rows)} temporal rules timed in one run: SnAP-1 {snap1:.1f} s per 60k examples; "
            f"the slowest, {slow['rule']}, {slow['CPU time / SnAP-1']:.0f}× SnAP-1's CPU time")


def _bench_gle_one_core(rec: Record) -> str:
    return _bench_gle(rec, where=", on one core")


def _bench_ceiling(rec: Record) -> str:
    fractions = sorted(s["fraction"] for s in rec["metrics"]["systems"])
    return (f"{len(fractions)} training steps against this CPU's lower bound: they reach "
            f"{100 * fractions[0]:.0f} % to {100 * fractions[-1]:.0f} % of it")


def _bench_gle(rec: Record, where: str = "") -> str:
    row = rec["metrics"]["rows"][-1]
    return (f"{row['implementation']}{where}: {row['10x150 epochs, CPU-h']:.1f} CPU-h for 10 seeds × 150 "
            f"epochs ({row['ratio (CPU-s)']:.1f}× the Python loop)")


def _bench_gridnet(rec: Record) -> str:
    row = next(x for x in rec["metrics"]["rows"] if x["name"] == "CPU preset")
    return (f"CPU preset, forward + backward: {row['fast_ms_per_example']:.1f} ms per example, "
            f"{row['speedup']:.0f}× the naive gather")


def _bench_neuralgrid(rec: Record) -> str:
    from gridlib.neuralgrid.summary import bench_rows, seconds, whole_epoch

    # the numbers of *NeuralGrid: a grid of sine neurons*
    row = next(r for r in bench_rows(rec) if r["batch"] == 256)
    split = whole_epoch(rec, "ours, split")
    return (f"one epoch of the 128×128 grid at batch 256: {row['ours']} s; unfold takes "
            f"{row['unfold ÷ ours']} as long"
            + (f"; split over the cores, {seconds(split['epoch_s'])} s" if split else ""))


def _search(rec: Record) -> str:
    m = rec["metrics"]
    grid = rec["config"].get("search", {})  # only the settings the search varied
    varied = {k: v for k, v in m["chosen"].items() if len(grid.get(k, (0, 1))) > 1}
    words = {"eta0": "the step size η₀", "lr": "the learning rate", "gain": "the gain"}
    return (f"chose {', '.join(f'{words.get(k, k)} {v:g}' for k, v in varied.items())} on validation "
            f"({100 * m['chosen_val_acc']:.1f} % after {report.plural(rec['config']['epochs'], 'epoch')})")


def _device(rec: Record) -> str:
    from gridlib import accelerator

    row = accelerator.rows({rec["name"].split("/")[-1]: rec})[0]
    return f"{row['work']}: {row['on the GPU']} on one {rec['extra']['device']['device_kind']}"


def _alignment(rec: Record) -> str:
    c = rec["config"]
    return (f"gradient alignment of {len(c['rules'])} rules with the exact gradient, on "
            f"{c['n_digits']} test digits, at {len(c['ts'])} sequence lengths and "
            f"{len(c['steps'])} points of training")


def _original_robustness(rec: Record) -> str:
    c, m = rec["config"], rec["metrics"]
    return (f"the original's own code under {len(m['sweeps'])} kinds of hardware imperfection "
            f"({c['epochs']} epochs on {c['n_train']:,} images): validation accuracy "
            f"{_pct(m['baseline'])} unperturbed")


def _robustness(group: Group) -> str:
    """All seeds of the imperfect-hardware sweep at once: the range over conditions of the
    seeds' mean test accuracy."""
    c = next(iter(group.values()))["config"]
    runs = [r["metrics"]["test/acc"] for r in group.values()]
    per_condition = [sum(v) / len(v) for v in zip(*runs, strict=True)]
    seeds = f" (mean of {len(group)} seeds)" if len(group) > 1 else ""
    return (f"SnAP-1 under {len(c['sweeps'])} kinds of hardware imperfection, "
            f"{len(per_condition)} conditions, {c['epochs']} epochs on {c['n_train']:,} images: "
            f"test accuracy{seeds} {_pct(min(per_condition))} to {_pct(max(per_condition))}")


def _protocols(rec: Record) -> str:
    runs = rec["metrics"]
    codes = Counter(v["code"] for v in runs.values())
    return (f"the protocols of {len(runs)} runs side by side ("
            + ", ".join(f"{n} of the {code} code" for code, n in codes.items())
            + "), each scored on the full test set and on the original's "
            f"{rec['config']['val_subset']:,}-image subset")


def _bench_peers(rec: Record) -> str:
    from gridlib import peers

    return peers.finding(rec)


#: Headlines of the records that are not test accuracies, by name pattern.
SPECIAL: dict[str, Callable[[Record], str]] = {
    "filtergrid/gradient_agreement": _gradient_agreement,
    "ep/seed_failures": _seed_failures,
    "ep/bptt_sweep": _bptt_sweep,
    "gle/lagline/*": lambda r: f"final loss {r['metrics']['final_loss']:.1e}",
    "gle/lagnet": _lagnet,
    "bench/ep": _bench_ep,
    "bench/filtergrid": _bench_filtergrid,
    "bench/live": _bench_live,
    "bench/filtergrid_rules": _bench_rules,
    "bench/gle_one_core": _bench_gle_one_core,
    "bench/ceiling": _bench_ceiling,
    "bench/gle": _bench_gle,
    "bench/gridnet*": _bench_gridnet,
    "bench/neuralgrid": _bench_neuralgrid,
    "bench/peers": _bench_peers,
    "device/*": _device,
    "filtergrid/tune/*": _search,
    "filtergrid/alignment": _alignment,
    "filtergrid/original_robustness": _original_robustness,
    "filtergrid/protocols": _protocols,
}

#: Headlines of a whole group of records at once (all its seeds), by name pattern.
GROUP_SPECIAL: dict[str, Callable[[Group], str]] = {"filtergrid/robustness/*": _robustness}

#: A training run of at most this many optimiser steps is a check that the code runs, not a
#: result: the index labels it so, and the chapter of every system leaves it out.
CHECK_RUN_STEPS = 100


def check_run_steps(group: Group) -> int | None:
    """The optimiser steps of a group's runs where they make a check run (at most
    :data:`CHECK_RUN_STEPS`), else ``None``."""
    config = next(iter(group.values())).get("config") or {}
    try:
        steps = int(config["n_train"]) * int(config["epochs"]) // int(config["batch_size"])
    except (KeyError, TypeError, ValueError):
        return None
    return steps if steps <= CHECK_RUN_STEPS else None


def _generic(rec: Record) -> str:
    """A record's first three scalar metrics, its wall times left out: a training run's time
    was measured under whatever load the shared machine had, and is no headline."""
    m = rec.get("metrics") or {}
    scalars = [(k, v) for k, v in m.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith("time_s")]
    return ", ".join(f"{k} {v:.3g}" for k, v in scalars[:3]) or "no scalar metrics"


def headline(group: Group, key: str | None = None) -> str:
    """The headline number of one configuration's records, in words (computed, never typed);
    with ``key``, the configuration's name (:attr:`Entry.key`), a test accuracy is keyed
    (:func:`accuracy_key`, :func:`gridlib.report.quantity`)."""
    name, first = next(iter(group.items()))
    for pattern, group_fn in GROUP_SPECIAL.items():
        if fnmatch.fnmatchcase(name, pattern):
            try:
                return group_fn(group)
            except (KeyError, TypeError, ValueError, StopIteration):
                break
    for pattern, fn in SPECIAL.items():
        if fnmatch.fnmatchcase(name, pattern):
            try:
                return "; ".join(fn(r) for r in group.values()) if len(group) > 1 else fn(first)
            except (KeyError, TypeError, ValueError, StopIteration):
                break  # another format than expected: fall back to the generic summary
    accs = group_accuracies(group)
    steps = check_run_steps(group)
    if accs and steps is not None:
        n = next(iter(group.values()))["config"]["n_train"]
        return f"check run, {steps} steps on {n:,} images: " + _accuracy_text(accs)
    if not accs:
        return _generic(first)
    at_best = "best/test/acc" in (first.get("metrics") or {})
    return _accuracy_text(accs, key) + (" at the best epoch on validation" if at_best else "")


def section_rows(entries: Sequence[Entry], chapter: str | None,
                 checks: Mapping[str, Record]) -> list[dict[str, str]]:  # fmt: skip
    """The index table of one chapter: headline number first, then the configuration (its name,
    without the part's own prefix), its seeds and the re-check verdicts."""
    rows = []
    for e in entries:
        if e.chapter != chapter:
            continue
        seeds = [group_key(n)[1] for n in e.records]
        prefix = e.section + "/"
        rows.append({
            "headline": headline(e.records, e.key),
            "result": e.key.removeprefix(prefix).replace("/", "/<wbr>"),  # may wrap at a slash
            "seeds": ", ".join(s for s in seeds if s) or "–",
            "re-checked": recheck_summary(e, checks),
        })  # fmt: skip
    return rows


def chapter_views(entries: Sequence[Entry], section: str, checks: Mapping[str, Record]):
    """For each chapter of ``section`` with results: ``(chapter, rows, records)``, ready for
    :func:`gridlib.report.table` and :func:`gridlib.report.provenance`."""
    sec = next((s for s in (*SECTIONS, OTHER) if s.key == section), None)
    if sec is None:
        raise KeyError(f"no section {section!r}; sections: {[s.key for s in SECTIONS]}")
    out = []
    for chapter, _ in sec.chapters:
        # training runs first, then the benchmarks
        mine = sorted((e for e in entries if e.section == section and e.chapter == chapter),
                      key=lambda e: e.key.startswith("bench/"))
        if mine:
            recs = {n: r for e in mine for n, r in e.records.items()}
            out.append((chapter, section_rows(mine, chapter, checks), recs))
    return out


def section_display(entries: Sequence[Entry], section: str, checks: Mapping[str, Record]) -> list[Any]:
    """What the results index shows for one part of the book (``section``, a key of
    :data:`SECTIONS`): for each chapter with results, a line that links the chapter, its table
    (:func:`section_rows`) and its provenance folded below -- objects for ``display(*...)``."""
    from IPython.display import Markdown

    out: list[Any] = []
    for chapter, rows, recs in chapter_views(entries, section, checks):
        where = doc_link(chapter) if chapter else "no chapter"
        out += [Markdown(f"**Shown in {where}**"), report.table(rows), report.provenance(recs)]
    return out


def summary(records: Mapping[str, Record], entries: Sequence[Entry], checks: Mapping[str, Record]) -> str:
    """One sentence: how many files, results, configurations and re-check verdicts there are."""
    n_results = sum(len(e.records) for e in entries)
    by_scale = Counter(r["provenance"].get("scale", "?") for e in entries for r in e.records.values())
    scales = ", ".join(f"{n} at {s} scale" for s, n in sorted(by_scale.items()))
    dirty = sum(bool(r["provenance"].get("git_dirty")) for e in entries for r in e.records.values())
    checked = sum(n in checks for e in entries for n in e.records)
    return (f"{len(records)} files: {n_results} results ({scales}) in {len(entries)} configurations, "
            f"and {len(checks)} re-check verdicts, which cover {checked} of the results. "
            f"{dirty} results were started from a working tree whose source differed from its commit.")
