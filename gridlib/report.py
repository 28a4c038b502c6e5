"""What the chapters show, built from results: tables, seed summaries, provenance, findings.

A chapter cell should read ``report.table(rows)`` or ``report.provenance(records)``, not forty
lines of string building. Everything here returns an object that Jupyter displays (Markdown or
HTML), so a cell can end with it.

- :func:`mean_sd`, :func:`format_mean_sd`, :func:`versus`  numbers with their spread and gap
- :func:`quantity`, :func:`quantities`, :func:`inconsistencies`  a number keyed, so that every
  page that shows it can be checked to show the same text
- :func:`markdown_table`, :func:`table`                      Markdown tables from dicts
- :func:`label`, :func:`metric_rows`                       metric keys in words, never raw
- :func:`provenance`                                         a collapsed provenance block
- :func:`findings`                                           the closing "What this chapter found"
- :func:`math_rows`, :func:`sci_tex`                         typeset sympy results and small numbers
- :func:`config_rows`, :func:`docstring_section`             a configuration's settings and meanings

Why this module is long: it is the book's one house style for what a page says (the one "±"
formatter, the one spread rule, tables in words, provenance blocks, findings). Every chapter
imports it; split, each chapter would import several modules for one way of writing.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gridlib import results


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to summarise")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


#: The no-break space that keeps a number, its "±" and its unit on one line.
NBSP = "\u00a0"


def spread_decimals(sd: float, digits: int, most: int = 6) -> int:
    """``digits``, or more where ``sd`` (not zero) would round to zero at ``digits``."""
    while sd and round(sd, digits) == 0 and digits < most:
        digits += 1
    return digits


def plus_minus(mean: float, sd: float | None, digits: int = 2, unit: str = "",
               thousands: bool = False) -> str:  # fmt: skip
    """``"3.62 ± 0.11 s"``: a mean and its spread with ``digits`` decimals, more for both where
    a spread that is not zero would round to zero (:func:`spread_decimals`), a true minus sign,
    and ``unit`` after; without ``sd``, the mean alone. The spaces around "±" and before the
    unit are no-break spaces (:data:`NBSP`), so that a narrow table cell never breaks the
    number apart. The one rule every "±" of the book follows (:func:`format_mean_sd` for
    values over seeds)."""
    d = spread_decimals(abs(sd or 0.0), digits)
    sep = "," if thousands else ""
    text = f"{mean:{sep}.{d}f}" + (f"{NBSP}±{NBSP}{sd:{sep}.{d}f}" if sd is not None else "")
    return minus(text) + unit.replace(" ", NBSP)


def format_mean_sd(values: Sequence[float], digits: int | None = None, percent: bool = False,
                   n: bool = True, key: str | None = None) -> str:  # fmt: skip
    """``"91.24 ± 0.43 % (n=3)"``: the book's one way to show a number over seeds.

    The rule: a percentage (``percent``, from fractions) gets two decimals, whatever ``digits``
    says; any other value gets ``digits`` decimals (default 3). A spread that is not zero but
    would round to zero gets more decimals, mean and spread alike, until it shows
    (``"97.472 ± 0.004 %"``, never ``"97.47 ± 0.00 %"``). One value shows alone, with no spread.

    With ``key`` (a stable name of the quantity, e.g. ``"ep/mnist_784-500-10_ep/test_acc"``),
    the number is wrapped by :func:`quantity`, so that every page that shows it can be checked
    to show the same text (the ``(n=…)`` suffix stays outside).
    """
    m, s = mean_sd(values)
    k, unit = (100.0, " %") if percent else (1.0, "")
    d = spread_decimals(s * k, 2 if percent else (3 if digits is None else digits))
    text = plus_minus(m * k, None if len(values) == 1 else s * k, d, unit)
    if key is not None:
        text = quantity(key, text)
    return text + (f" (n={len(values)})" if n else "")


class InconsistentQuantity(ValueError):
    """One quantity was about to be shown with two different texts."""


#: Every keyed quantity shown in this process: key -> its text (see :func:`quantity`).
SHOWN: dict[str, str] = {}

_QUANTITY = re.compile(r'<span class="gq" data-q="([^"]+)">(.*?)</span>', re.S)


def _plain(text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).replace("\u00a0", " ").split())


def quantity_key(name: str, metric: str) -> str:
    """The stable key of ``metric`` of a configuration, whichever of its names is at hand: the
    glob of its seeds (``"ep/mnist_784-500-10_ep_seed*"``), one seed's record
    (``"..._seed0"``) or an ensemble's (``"gle/mnist1d/e2e15k_seeds12-34"``) all give
    ``"ep/mnist_784-500-10_ep/<metric>"``; chapters that show the same number use the same key."""
    return re.sub(r"_seeds?(\*|\d[\d\-]*)$", "", name) + f"/{metric}"


def group_key(group: Mapping[str, Any], metric: str = "test_acc") -> str:
    """:func:`quantity_key` of a group of records of one configuration (names -> records).

    Raises:
        ValueError: the names are not the seeds of one configuration.
    """
    keys = {quantity_key(name, metric) for name in group}
    if len(keys) != 1:
        raise ValueError(f"records of more than one configuration: {sorted(keys)}")
    return keys.pop()


def quantity(key: str, text: str) -> str:
    """``text`` wrapped as ``<span class="gq" data-q="key">text</span>`` (inline HTML, rendered
    in Markdown output), and remembered in :data:`SHOWN`.

    Raises:
        InconsistentQuantity: this process already showed ``key`` with another text.
    """
    if not key or '"' in key:
        raise ValueError(f"a quantity key is a non-empty name without quotes, got {key!r}")
    plain = _plain(text)
    if SHOWN.setdefault(key, plain) != plain:
        raise InconsistentQuantity(f"{key} shown as {plain!r}, but already as {SHOWN[key]!r}")
    return f'<span class="gq" data-q="{key}">{text}</span>'


def quantities(page: str) -> list[tuple[str, str]]:
    """The keyed quantities of a page (HTML or Markdown), as ``(key, plain text)`` in order."""
    return [(k, _plain(t)) for k, t in _QUANTITY.findall(page)]


def inconsistencies(pages: Mapping[str, str]) -> dict[str, dict[str, list[str]]]:
    """Quantities shown with more than one text: ``{key: {text: [pages that show it so]}}``.

    ``pages`` maps a page's name to its text (HTML or Markdown).
    """
    seen: dict[str, dict[str, list[str]]] = {}
    for name, page in pages.items():
        for key, text in quantities(page):
            where = seen.setdefault(key, {}).setdefault(text, [])
            if name not in where:
                where.append(name)
    return {k: v for k, v in seen.items() if len(v) > 1}


#: Two-sided 95 % quantiles of Student's t by degrees of freedom (1 to 30; beyond, 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)  # fmt: skip

#: What "beyond the seeds' spread" means everywhere in the book, in words (for a page to state).
SPREAD_RULE = ("a difference is beyond the seeds' spread when its 95 % t interval over the seeds "
               "excludes zero (for a single published number: when it falls outside the 95 % "
               "prediction interval of our seeds)")


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (``df >= 1``)."""
    if df < 1:
        raise ValueError(f"t95 needs at least one degree of freedom, got {df}")
    return _T95[df - 1] if df <= len(_T95) else 1.96


def beyond_spread(values: Sequence[float], reference: float = 0.0, single: bool = False) -> bool:
    """The book's one criterion (:data:`SPREAD_RULE`) for whether ``values`` (one number per seed:
    paired differences, or one configuration's accuracies) differ from ``reference``.

    By default the question is whether their *mean* differs: ``|mean - reference| > t * sd /
    sqrt(n)``. With ``single``, ``reference`` is one further draw (a published single run) and
    the question is whether it lies outside where a new seed would fall:
    ``|mean - reference| > t * sd * sqrt(1 + 1/n)``. Fewer than two values: never beyond."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return False
    m, sd = mean_sd(v)
    half = t95(v.size - 1) * sd * (np.sqrt(1 + 1 / v.size) if single else 1 / np.sqrt(v.size))
    return bool(abs(m - reference) > half)


def paired_differences(a: Mapping[Any, float], b: Mapping[Any, float]) -> dict[Any, float]:
    """``{seed: a[seed] - b[seed]}`` over the seeds both maps hold, in seed order.

    Two runs of one seed share their initialisation and minibatch order (two estimators or two
    optimisers of one network), so their difference cancels the seed's own luck; test it with
    :func:`beyond_spread`. The book's one way to pair seeds.

    >>> paired_differences({0: 0.9, 1: 0.8, 2: 0.7}, {1: 0.5, 0: 0.4})
    {0: 0.5, 1: 0.30000000000000004}
    """
    return {s: a[s] - b[s] for s in sorted(a) if s in b}


def groups_differ(a: Sequence[float], b: Sequence[float]) -> bool:
    """:data:`SPREAD_RULE` for two sets of seeds that are not paired (different settings or
    code): whether ``|mean(a) - mean(b)| > t * sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``, with the
    conservative ``min(n_a, n_b) - 1`` degrees of freedom. Fewer than two of either: never."""
    if len(a) < 2 or len(b) < 2:
        return False
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return bool(abs(ma - mb) > t95(min(len(a), len(b)) - 1) * np.sqrt(sa**2 / len(a) + sb**2 / len(b)))


def seeds_range_words(accs: Sequence[float], value: float, shown_range: str = "") -> str:
    """Where one run's ``value`` lies against our seeds ``accs``: inside their range, or above
    (below) all of them, and then whether within their spread (:func:`beyond_spread`
    for a single run): ``"above all our seeds (42.32–44.24 %) but within their spread"``.
    ``shown_range``, the seeds' range as the page writes it, goes right after "our seeds", so
    that it is never read as the spread."""
    rng = f" ({shown_range})" if shown_range else ""
    if min(accs) <= value <= max(accs):
        return f"inside our seeds' range{rng}"
    side = "above" if value > max(accs) else "below"
    if beyond_spread(accs, value, single=True):
        return f"{side} all our seeds{rng}, beyond their spread"
    return f"{side} all our seeds{rng} but within their spread"


def spread_words(values: Sequence[float], reference: float = 0.0, single: bool = False) -> str:
    """``"beyond the seeds' spread"`` or ``"within the seeds' spread"`` by :func:`beyond_spread`."""
    return "beyond the seeds' spread" if beyond_spread(values, reference, single) else "within the seeds' spread"


def machine(record: Mapping[str, Any], date: bool = False) -> str:
    """The machine a record was made on, for a sentence about speed: ``"a 2-core AMD EPYC"``
    (its provenance's core count and CPU name); with ``date``, ``"... on 2026-12-06"``. The
    one way the book names a machine (:func:`gridlib.results.describe` prints the same
    provenance fields in its compact line)."""
    p = record["provenance"]
    cores, cpu = p.get("cpu_count"), p.get("cpu") or "CPU"
    text = f"a {cores}-core {cpu}" if cores else f"one {cpu}"
    return text + (f" on {str(p['date_utc'])[:10]}" if date and p.get("date_utc") else "")


def plural(n: int, word: str) -> str:
    """``"1 epoch"``, ``"10 epochs"``: a count with its noun (a plain ``s`` plural)."""
    return f"{n} {word}{'s' if n != 1 else ''}"


def signed(x: float, digits: int = 2) -> str:
    """``"+0.45"`` or ``"−0.09"``: a signed number with a true minus sign (U+2212)."""
    return f"{'−' if x < 0 else '+'}{abs(x):.{digits}f}"


def minus(text: str) -> str:
    """``text`` with a true minus sign (U+2212) for every ASCII hyphen that signs a number
    (``"-0.17"``, ``"(-3)"``; not the hyphens of ``"784-500-10"`` or ``"SnAP-1"``)."""
    return re.sub(r"(?<![\w.\-])-(?=\.?\d)", "\u2212", text)


def versus(ours: Sequence[float], published: float, digits: int | None = None, percent: bool = True,
           published_sd: float | None = None) -> str:  # fmt: skip
    """``"91.52 ± 1.20 % (n=10) against 91.70 ± 0.80 % published: −0.18 points"``.

    Ours is :func:`format_mean_sd`'s text; the published number and the gap get as many
    decimals (two for percentages, ``digits`` otherwise, default 3).
    """
    m, _ = mean_sd(ours)
    k = 100.0 if percent else 1.0
    unit = NBSP + "%" if percent else ""
    digits = 2 if percent else (3 if digits is None else digits)
    pub = plus_minus(published * k, published_sd * k if published_sd else None, digits)
    gap = (m - published) * k
    units = " points" if percent else ""
    return (f"{format_mean_sd(ours, digits, percent)} against {pub}{unit} published: "
            f"{signed(gap, digits)}{units}")


#: Words for the parts of the library's metric keys (``"train/acc"``, ``"test_acc"``,
#: ``"best/val/acc"``, ``"epoch_time_s"``): the one mapping that tables and axes show.
_SPLITS = {"train": "training", "val": "validation", "test": "test"}
_MEASURES = {"acc": "accuracy", "loss": "loss", "err": "error"}
_OTHER_KEYS = {"epoch": "epoch", "epoch_time_s": "training time per epoch (s)",
               "total_train_time_s": "training time (s)", "epochs_run": "epochs run",
               "best_epoch": "best epoch (validation)", "epoch_s": "s per epoch",
               "examples_per_s": "examples / s"}  # fmt: skip
_KEY_PARTS = re.compile(r"(?P<best>best/)?(?P<split>train|val|test)[/_](?P<measure>acc|loss|err)")


def label(key: str, percent: bool = False) -> str:
    """Words for a metric key of the library, for a table's header or an axis.

    ``"train/acc"`` and ``"train_acc"`` -> ``"training accuracy"``; ``"best/test/acc"`` ->
    ``"test accuracy at the best epoch (validation)"``; ``"epoch_time_s"`` ->
    ``"training time per epoch (s)"``. With ``percent``, an accuracy or error gets ``" (%)"``.

    Raises:
        KeyError: a key with no words here (add them, rather than show the key).
    """
    if key in _OTHER_KEYS:
        return _OTHER_KEYS[key]
    m = _KEY_PARTS.fullmatch(key)
    if m is None:
        raise KeyError(f"no words for the metric key {key!r}: add them to gridlib.report.label")
    words = f"{_SPLITS[m['split']]} {_MEASURES[m['measure']]}"
    words += " at the best epoch (validation)" if m["best"] else ""
    return words + (" (%)" if percent and m["measure"] != "loss" else "")


def metric_rows(metrics: Mapping[str, Any], column: str = "value") -> list[dict[str, str]]:
    """Rows ``{"metric": words, column: value}`` of one set of metrics (a run's ``last`` epoch,
    a record's ``metrics``): every key in words (:func:`label`), accuracies and errors in
    percent with two decimals, times in seconds, losses to four significant digits."""
    rows = []
    for key, value in metrics.items():
        v = float(value)
        m = _KEY_PARTS.fullmatch(key)
        if key == "epoch" or key.startswith("epochs") or key.endswith("_epoch"):
            text = f"{v:.0f}"
        elif m is not None and m["measure"] != "loss":
            text = f"{100 * v:.2f} %"
        elif key.endswith("_s"):
            text = f"{v:.2f}"
        else:
            text = f"{v:.4g}"
        rows.append({"metric": label(key), column: minus(text)})
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                   floatfmt: str = ".4g") -> str:  # fmt: skip
    """A Markdown table from a list of dicts (floats formatted with ``floatfmt``, integers from
    10,000 on with thousands separators; every signed number with a true minus sign,
    :func:`minus`)."""
    if not rows:
        raise ValueError("no rows to tabulate")
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return minus(format(float(v), floatfmt))
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and abs(v) >= 10_000:
            return minus(f"{int(v):,}")
        return minus(str(v)).replace("|", "\\|")

    header = [str(c).replace("|", "\\|") for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def listing(items: Sequence[str], last: str = " and ") -> str:
    """Items as a list in a sentence: ``"a, b and c"`` (``last=", and "`` for clauses that hold
    commas of their own); one item alone, none as ``""``."""
    items = list(items)
    return ", ".join(items[:-1]) + last + items[-1] if len(items) > 1 else "".join(items)


def docstring_section(doc: str, section: str) -> dict[str, str]:
    """``{name: description}`` from a section (``"Args"``, ``"Attributes"``) of a Google-style
    docstring as ``inspect.getdoc`` gives it (continuation lines joined): the command
    line's flag help and :func:`config_rows` both read their words here."""
    out: dict[str, str] = {}
    head = f"{section}:"
    lines = doc.split(head, 1)[1].splitlines() if head in doc else []
    current = None
    for line in lines:
        if line.strip() and not line.startswith((" ", "\t")):
            break  # the next section
        m = re.match(r"\s{2,8}(\w+)(?: \(.*?\))?:\s*(.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def config_rows(config: Any) -> list[dict[str, Any]]:
    """One row per field of a configuration (a NamedTuple): its name, value and meaning, the
    meaning from the "Attributes:" section of the class's docstring (:func:`docstring_section`),
    its reST roles and double backticks as MyST's (``:func:`x``` -> ``{py:func}`x```)."""
    docs = docstring_section(inspect.getdoc(type(config)) or "", "Attributes")
    myst = {k: re.sub(r"(?<![\w}]):(\w+):`", r"{py:\1}`", v.replace("``", "`")) for k, v in docs.items()}
    return [{"setting": f"`{k}`", "value": v, "meaning": myst.get(k, "")}
            for k, v in config._asdict().items()]


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
          floatfmt: str = ".4g"):  # fmt: skip
    """:func:`markdown_table`, displayed."""
    from IPython.display import Markdown

    return Markdown(markdown_table(rows, columns, floatfmt))


def _recheck_note(name: str, checked: Mapping[str, Any]) -> str:
    try:
        record = results.recheck_of(name, checked)
    except results.ResultsError:  # a label, not a run name: nothing to look up
        return ""
    if record is None:
        return ""
    m = record["metrics"]
    n = int(m["epochs"])
    epochs = "first epoch" if n == 1 else f"first {n} epochs"
    commit = str(record["provenance"].get("git_commit") or "unknown")[:7]
    return f" · {epochs} re-run at {commit}: {m['status']}"


def provenance_lines(records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One plain-text line per record: its name, then :func:`gridlib.results.describe`."""
    return [f"{name}: {results.describe(rec)}{_recheck_note(name, rec)}" for name, rec in records.items()]


def provenance(records: Mapping[str, Mapping[str, Any]] | Mapping[str, Any], title: str = "Provenance"):
    """A collapsed block listing where each record came from (command, commit, date, machine).

    ``records`` maps names to loaded records; a single record is accepted too.
    """
    from IPython.display import HTML

    if "provenance" in records:  # one record
        records = {str(records.get("name", "result")): records}
    items = "".join(
        f"<li><code>{html.escape(line.split(': ', 1)[0])}</code>: {html.escape(line.split(': ', 1)[1])}</li>"
        for line in provenance_lines(records)  # type: ignore[arg-type]
    )
    return HTML(
        f'<details class="gridlib-provenance"><summary>{html.escape(title)} '
        f"({html.escape(provenance_count(records))})</summary><ul>{items}</ul></details>"
    )


def provenance_count(records: Mapping[str, Mapping[str, Any]]) -> str:
    """The results a provenance block lists, and, in sight while the block is folded, how many
    were remade from committed code and how far that moved their test accuracy."""
    moves = [m for m in map(results.remake_move, records.values()) if m is not None]
    text = plural(len(records), "result")
    if not moves:
        return text
    remade = f"{len(moves)} remade from committed code" if len(moves) < len(records) else \
        ("remade" if len(records) == 1 else "all remade") + " from committed code"
    moved = max(moves)
    return (f"{text}, {remade}: " + ("no test accuracy moved" if moved == 0 else
            f"test accuracy moved by up to {100 * moved:.2f} points"))


def findings(items: Sequence[str]):
    """The bullets of a chapter's closing "What this chapter found" section (Markdown, MyST)."""
    from IPython.display import Markdown

    if not items:
        raise ValueError("a chapter must state at least one finding")
    return Markdown("\n".join(f"- {minus(item)}" for item in items))


def _tex_lines(expr: Any, terms_per_line: int | None) -> list[str]:
    """LaTeX of ``expr``, a sum cut into lines of at most ``terms_per_line`` terms; a list or
    tuple of terms (sympy or LaTeX) is their sum, one term per line."""
    import sympy as sp

    if isinstance(expr, list | tuple):
        tex = [t if isinstance(t, str) else sp.latex(t) for t in expr]
        return tex[:1] + [t if t.startswith("-") else f"+ {t}" for t in tex[1:]]
    if isinstance(expr, str):
        return [expr]
    terms = expr.as_ordered_terms() if isinstance(expr, sp.Add) and terms_per_line else [expr]
    if len(terms) <= (terms_per_line or len(terms)):
        return [sp.latex(expr)]
    lines = []
    for start in range(0, len(terms), terms_per_line):
        text = ""
        for t in terms[start:start + terms_per_line]:
            tex = sp.latex(t)
            text += (f" {tex}" if tex.startswith("-") else f" + {tex}") if text or start else tex
        lines.append(text.strip())
    return lines


def math_rows(rows: Sequence[tuple[str, Any]], relation: str = "=", gap: str | None = None,
              terms_per_line: int | None = None) -> Any:  # fmt: skip
    """Typeset ``(left LaTeX, sympy expression or LaTeX)`` pairs as one aligned display (an
    IPython ``Math`` object), one pair per line (``gap`` apart, e.g. ``"4pt"``), so that the
    display is only as wide as its longest pair. With ``terms_per_line``, a longer sum continues
    on further lines; a right-hand side given as a list of terms (e.g. ``expr.as_ordered_terms()``)
    is their sum with one term per line, so that a display too wide for a phone (390 px) can be
    broken where the reader expects it."""
    from IPython.display import Math

    lines = []
    for left, right in rows:
        first, *rest = _tex_lines(right, terms_per_line)
        lines.append(f"{left} &{relation} {first}")
        lines += [rf"&\phantom{{{relation}}} {more}" for more in rest]
    sep = " \\\\ " if gap is None else f" \\\\[{gap}] "
    return Math(r"\begin{aligned}" + sep.join(lines) + r"\end{aligned}")


def sci_tex(x: float, digits: int = 0) -> str:
    """``x`` in LaTeX scientific notation, e.g. ``6 \\times 10^{8}`` (for use inside ``$...$``)."""
    mant, exp = f"{x:.{digits}e}".split("e")
    return f"{mant} \\times 10^{{{int(exp)}}}"
