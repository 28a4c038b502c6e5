"""The house style of the book's code cells (notebooks/*.md, book/*.md), checked on the sources.

A cell the reader sees (not tagged ``remove-cell``, ``remove-input``, ``hide-input`` or
``hide-cell``) must

* have at most 15 non-blank lines (``long-cell``), except a cell tagged ``derivation``
  (mathematics only, e.g. sympy);
* have no line over 79 columns (``long-line``);
* carry no ``# noqa`` (``noqa``) and no CI-only branch, ``scale.is_ci()`` or any ``is_ci(``
  (``ci-branch``): the page shows one computation, the same at every scale.

Every ``%%ipytest`` cell must be tagged ``hide-input`` (``ipytest-shown``): the tests stay in the
page and fail the build when wrong, folded under their one-line result.

No cell, shown or hidden, asserts on a time (``timed-assert``): a speed is measured by a
benchmark that prints its ratio to a reference in the same run, never by a test of how long a
stored training run took on whatever else the machine was doing.

Each offence is reported as ``file:line: rule: detail`` (the line of the cell's opening fence,
or of the offending line); the test lists every offence of every page at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("notebooks/*.md"), *ROOT.glob("book/*.md")])

MAX_LINES = 15
MAX_COLUMNS = 79
HIDDEN_TAGS = frozenset({"remove-cell", "remove-input", "hide-input", "hide-cell"})
OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})\{code-cell\}")
NOQA = re.compile(r"#\s*noqa\b", re.IGNORECASE)
CI_BRANCH = re.compile(r"\bis_ci\s*\(")
TIMED_ASSERT = re.compile(r"\bassert\b.*(time|seconds|epoch_s\b|per_s\b|speed)", re.IGNORECASE)


@dataclass
class Cell:
    """One ``{code-cell}`` of a MyST page: where it opens, its tags and its source lines."""

    line: int  # 1-based line of the opening fence
    tags: frozenset[str]
    source: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)

    @property
    def visible(self) -> bool:
        return not (self.tags & HIDDEN_TAGS)


def _tags(options: dict | None) -> frozenset[str]:
    tags = (options or {}).get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    return frozenset(str(t) for t in tags)


def parse_cells(text: str) -> list[Cell]:
    """The code cells of a MyST Markdown page, with their options (``:key:`` lines or a
    ``---`` YAML block right after the opening fence) and their source lines."""
    lines = text.splitlines()
    cells: list[Cell] = []
    i = 0
    while i < len(lines):
        m = OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group("fence"), i + 1
        close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        options: dict = {}
        if i < len(lines) and lines[i].strip() == "---":  # YAML block
            j = i + 1
            while j < len(lines) and lines[j].strip() != "---":
                j += 1
            options = yaml.safe_load("\n".join(lines[i + 1:j])) or {}
            i = j + 1
        else:  # :key: value lines
            while i < len(lines) and re.match(r"^:[\w-]+:", lines[i]):
                key, _, value = lines[i][1:].partition(":")
                options[key.strip()] = yaml.safe_load(value.strip() or "null")
                i += 1
        cell = Cell(line=start, tags=_tags(options))
        while i < len(lines) and not close.match(lines[i]):
            cell.source.append((i + 1, lines[i]))
            i += 1
        cells.append(cell)
        i += 1  # the closing fence
    return cells


def check_text(text: str, name: str) -> list[str]:
    """Every offence of one page's code cells against the house style, as
    ``name:line: rule: detail``."""
    found: list[str] = []
    for cell in parse_cells(text):
        body = [(n, s) for n, s in cell.source]
        first = next((s.strip() for _, s in body if s.strip()), "")
        if first.startswith("%%ipytest") and "hide-input" not in cell.tags:
            tags = ", ".join(sorted(cell.tags)) or "none"
            found.append(f"{name}:{cell.line}: ipytest-shown: a %%ipytest cell must be tagged "
                         f"hide-input (tags: {tags})")
        found += [f"{name}:{n}: timed-assert: a test of a time (benchmark it instead): {s.strip()[:60]}"
                  for n, s in body if TIMED_ASSERT.search(s)]  # fmt: skip
        if not cell.visible:
            continue
        count = sum(1 for _, s in body if s.strip())
        if count > MAX_LINES and "derivation" not in cell.tags:
            found.append(f"{name}:{cell.line}: long-cell: {count} non-blank lines "
                         f"(at most {MAX_LINES}; fold it, split it or move it to the library)")
        for n, s in body:
            if len(s) > MAX_COLUMNS:
                found.append(f"{name}:{n}: long-line: {len(s)} columns (at most {MAX_COLUMNS}): "
                             f"{s.strip()[:60]}")
            if NOQA.search(s):
                found.append(f"{name}:{n}: noqa: `# noqa` in a visible cell: {s.strip()[:60]}")
            if CI_BRANCH.search(s):
                found.append(f"{name}:{n}: ci-branch: a CI-only branch in a visible cell: "
                             f"{s.strip()[:60]}")
    return found


def check_pages(pages: list[Path]) -> list[str]:
    found: list[str] = []
    for page in pages:
        found += check_text(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())
    return found


def test_the_book_has_pages_with_cells():
    assert PAGES and sum(len(parse_cells(p.read_text())) for p in PAGES) > 50


def test_every_visible_cell_follows_the_house_style():
    found = check_pages(PAGES)
    assert not found, (f"{len(found)} offence(s) of the house style "
                       "(tests/test_chapter_style.py):\n" + "\n".join(found))


# ---- the checker itself, on planted cells -----------------------------------------------------

HEAD = "---\njupytext:\n  formats: md:myst\n---\n\n# A page\n\n"


def _page(*cells: str) -> str:
    return HEAD + "\n\nSome prose.\n\n".join(cells) + "\n"


def _cell(body: str, tags: str | None = None, yaml_block: bool = False) -> str:
    if tags is None:
        head = ""
    elif yaml_block:
        head = f"---\ntags: [{tags}]\n---\n"
    else:
        head = f":tags: [{tags}]\n"
    return f"```{{code-cell}} ipython3\n{head}{body}\n```"


LONG = "\n".join(f"x{i} = {i}" for i in range(16))
WIDE = "y = " + "1 + " * 25 + "1"  # 80 columns


def _rules(text: str) -> list[str]:
    return [line.split(": ")[1] for line in check_text(text, "p.md")]


def test_a_clean_page_passes():
    short = "\n".join(f"x{i} = {i}" for i in range(15))
    assert check_text(_page(_cell(short), _cell("print(1)", "hide-output")), "p.md") == []


@pytest.mark.parametrize("body, rule", [
    (LONG, "long-cell"),
    (WIDE, "long-line"),
    ("import os  # noqa: F401", "noqa"),
    ("if scale.is_ci():\n    print('small')", "ci-branch"),
    ("from gridlib.scale import is_ci\nflag = is_ci( )", "ci-branch"),
    ("assert np.median(times) <= 10.0", "timed-assert"),
    ("assert rec['mean_epoch_time_s'] < 5", "timed-assert"),
])
def test_each_rule_fires_on_a_visible_cell(body, rule):
    assert rule in _rules(_page(_cell("a = 1"), _cell(body)))


@pytest.mark.parametrize("tags", ["remove-cell", "remove-input", "hide-input", "hide-cell"])
@pytest.mark.parametrize("yaml_block", [False, True])
def test_hidden_cells_are_exempt(tags, yaml_block):
    cells = [_cell(b, tags, yaml_block) for b in (LONG, WIDE, "import os  # noqa", "is_ci()")]
    assert check_text(_page(*cells), "p.md") == []


def test_derivation_cells_may_be_long_but_not_wide():
    assert _rules(_page(_cell(LONG, "derivation"))) == []
    assert _rules(_page(_cell(LONG + "\n" + WIDE, "derivation"))) == ["long-line"]


@pytest.mark.parametrize("tags, yaml_block, fires", [
    (None, False, True),
    ("remove-input", False, True),
    ("hide-output", True, True),
    ("hide-input", False, False),
    ("hide-input", True, False),
])
def test_ipytest_cells_must_be_folded(tags, yaml_block, fires):
    cell = _cell("%%ipytest -q\ndef test_one():\n    assert True", tags, yaml_block)
    assert ("ipytest-shown" in _rules(_page(cell))) is fires


def test_every_offence_is_listed_with_its_line():
    text = _page(_cell(LONG), _cell("a = 1"), _cell(WIDE + "\nb = 2  # noqa"))
    found = check_text(text, "p.md")
    assert [f.split(": ")[1] for f in found] == ["long-cell", "long-line", "noqa"]
    lines = text.splitlines()
    first_fence = lines.index("```{code-cell} ipython3") + 1
    assert found[0].startswith(f"p.md:{first_fence}: ")
    assert lines[int(found[1].split(":")[1]) - 1] == WIDE
    assert lines[int(found[2].split(":")[1]) - 1].endswith("# noqa")


def test_fences_inside_a_cell_and_longer_fences():
    text = HEAD + "````{code-cell} ipython3\ns = '''\n```\n'''\n" + WIDE + "\n````\n"
    assert _rules(text) == ["long-line"]
    assert len(parse_cells(text)) == 1


# --------------------------------------------------------------------------- library names link


PLAIN_NAME = re.compile(r"(?<![}\w<])`(gridlib(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def plain_library_names(text: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every library name written as plain code in prose (outside fenced
    blocks): it must be a ``{py:...}`` role, so that the reference links it and a nitpicky
    build (``-n``) fails when the reference lacks it."""
    out, fence = [], None
    for i, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if line.strip().startswith(fence) else fence)
            continue
        if fence is None:
            out += [(i, mt.group(1)) for mt in PLAIN_NAME.finditer(line)]
    return out


def test_prose_names_library_objects_through_the_reference():
    found = [f"{p.relative_to(ROOT)}:{i}: `{n}`" for p in PAGES for i, n in plain_library_names(p.read_text())]
    assert not found, "write {py:func}`...` (or mod/class) instead of plain code:\n" + "\n".join(found)


def test_the_link_check_sees_plain_names_and_spares_roles_and_code():
    text = "a `gridlib.ep.forces` b {py:func}`gridlib.ep.forces` c\n```python\n`gridlib.x`\n```\n"
    assert plain_library_names(text) == [(1, "gridlib.ep.forces")]


# ---- chapters by title, never by file number ---------------------------------------------------
# A page names another chapter by its title or a link ({doc}, [text](file.md)), never as
# "chapter 22" or "22-ep-mnist.md": the reader sees titles, and the numbers of the files are not
# the chapters' numbers. The library's docstrings and comments follow the same rule (a code string
# such as a link's target in gridlib/index.py is data, not prose, and may name the file).

NOTEBOOK_FILE = re.compile(r"(?<![\w-])(?:" + "|".join(
    re.escape(p.stem) for p in sorted(ROOT.glob("notebooks/*.md"))) + r")(?![\w-])")
CHAPTER_NUMBER = re.compile(r"\b[Cc]hapters? \d+")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)|\{(?:doc|ref|numref|download)\}`[^`]*`")


def file_numbers(text: str, start: int = 1, links: bool = False) -> list[tuple[int, str]]:
    """``(line, what)`` of every chapter named by number ("chapter 22") or by its notebook's
    file name ("22-ep-mnist"); with ``links``, link and role targets are spared."""
    found = []
    for i, line in enumerate(text.splitlines(), start):
        line = LINK_TARGET.sub("]", line) if links else line
        found += [(i, m.group(0)) for rx in (NOTEBOOK_FILE, CHAPTER_NUMBER) for m in rx.finditer(line)]
    return found


def prose_of_module(source: str) -> list[tuple[int, str]]:
    """``(first line, text)`` of a module's docstrings (module, classes, functions) and comments."""
    import ast
    import io
    import tokenize

    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = node.body[0] if node.body else None
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                out.append((doc.lineno, doc.value.value))
    out += [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type == tokenize.COMMENT]
    return out


def test_chapters_are_named_by_title_not_by_file_number():
    found = [f"{p.relative_to(ROOT)}:{i}: {what}" for p in PAGES
             for i, what in file_numbers(p.read_text(encoding="utf-8"), links=True)]
    for path in sorted(ROOT.glob("gridlib/**/*.py")):
        for line, text in prose_of_module(path.read_text(encoding="utf-8")):
            found += [f"{path.relative_to(ROOT)}:{i}: {what}" for i, what in file_numbers(text, line)]
    assert not found, ("name chapters by title (or link them), not by number or file name:\n"
                       + "\n".join(found))


def test_the_file_number_rule_spares_links_and_code():
    page = ("See chapter 22 and 22-ep-mnist.md; [EP on MNIST](../notebooks/22-ep-mnist.md) and\n"
            "{doc}`../notebooks/22-ep-mnist` are fine, and so is a 28-pixel row.")
    assert file_numbers(page, links=True) == [(1, "22-ep-mnist"), (1, "chapter 22")]
    module = ('"""The runs of chapters 21 and 22."""\nLINK = "notebooks/22-ep-mnist"  # see 21-ep-seed-failures\n'
              'def f():\n    """Plain."""\n')
    assert [(i, w) for line, t in prose_of_module(module) for i, w in file_numbers(t, line)] == [
        (1, "chapters 21"), (2, "21-ep-seed-failures")]


# ---- speeds come from benchmarks, never from training records ----------------------------------
# A training record's wall times (``history.epoch_time_s``, ``metrics.train_time_s``,
# ``total_train_time_s``, ``mean_epoch_time_s``) were measured on a shared 2-core machine under
# whatever load there was, weeks apart for the records of one table: shown as a speed, or two of
# them as a ratio, they mislead. A speed or a ratio on a page comes from a benchmark record
# (``results/bench/*.json``), which times what it compares in one run. The code that makes the
# pages must not read a record's time at all, except on the lines listed here: reproduction-cost
# notes ("the published runs took 83 min"), each line marked ``# reproduction cost: why``.

RECORD_TIME = re.compile(r"epoch_time_s|train_time_s")
REPRODUCTION_COST = "# reproduction cost:"
#: file -> how many lines of it may read a record's time, each marked with REPRODUCTION_COST.
REPRODUCTION_COST_NOTES = {
    "gridlib/gle/summary.py": 1,  # reproduction_text: how long remaking the MNIST-1D runs takes
}


def chapter_facing() -> list[Path]:
    """The code that makes the pages: the chapters, the summary modules, the comparison of
    every system, the rule comparison and the landing page."""
    return sorted({*ROOT.glob("notebooks/*.md"), *ROOT.glob("gridlib/**/summary.py"),
                   ROOT / "gridlib/compare.py", ROOT / "gridlib/index.py",
                   ROOT / "gridlib/filtergrid/comparison.py"})


def record_times(text: str, name: str, allowed: int = 0) -> list[str]:
    """Every line of ``text`` that reads a training record's wall time, as
    ``name:line: record-time: detail``; up to ``allowed`` lines marked with
    :data:`REPRODUCTION_COST` are spared."""
    found, spared = [], 0
    for i, line in enumerate(text.splitlines(), 1):
        if not RECORD_TIME.search(line):
            continue
        if REPRODUCTION_COST in line and spared < allowed:
            spared += 1
            continue
        found.append(f"{name}:{i}: record-time: a training record's wall time on a page (take "
                     f"the speed from a benchmark record): {line.strip()[:60]}")
    return found


def test_pages_take_speeds_from_benchmarks_not_from_training_records():
    found = []
    for path in chapter_facing():
        name = path.relative_to(ROOT).as_posix()
        found += record_times(path.read_text(encoding="utf-8"), name, REPRODUCTION_COST_NOTES.get(name, 0))
    assert not found, (f"{len(found)} read(s) of a training record's time "
                       "(tests/test_chapter_style.py):\n" + "\n".join(found))


def test_every_reproduction_cost_note_is_still_there():
    """The allow-list stays small and true: each listed file has exactly its marked lines."""
    for name, n in REPRODUCTION_COST_NOTES.items():
        lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
        assert sum(bool(RECORD_TIME.search(s)) and REPRODUCTION_COST in s for s in lines) == n, name


@pytest.mark.parametrize("line", [
    'rtrl_cost = rh["epoch_time_s"][0] / bh["epoch_time_s"][0]',
    '"training time": f"{r[\'metrics\'][\'train_time_s\'] / 60:.0f} min"',
    'times = rec["metrics"]["total_train_time_s"]',
    'mean = rec["metrics"]["mean_epoch_time_s"]',
    't = h["epoch_time_s"][0]  # reproduction cost: but this file has no allowance',
])
def test_the_record_time_rule_fires_on_a_planted_read(line):
    text = f"import numpy as np\n\n\ndef f(rec, h):\n    {line}\n"
    assert [f.split(": ")[1] for f in record_times(text, "gridlib/x/summary.py")] == ["record-time"]


def test_a_marked_reproduction_cost_line_is_spared_only_within_its_allowance():
    line = 'took = sum(h["epoch_time_s"])  # reproduction cost: how long a remake takes\n'
    assert record_times(line, "p.py", allowed=1) == []
    assert len(record_times(line * 2, "p.py", allowed=1)) == 1
    assert len(record_times('took = sum(h["epoch_time_s"])\n', "p.py", allowed=1)) == 1
