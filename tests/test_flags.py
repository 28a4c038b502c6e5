"""Every flag of every command refuses bad values in one line, before any work.

The cases are generated from the declared domains (:mod:`gridlib.flags`): for each flag of each
registered experiment, of the run-control flags and of ``recheck``, every value its domain's
``bad_values`` names (beyond each bound, 0, negatives, NaN, infinities, 1e30, text, unknown
choices, empty). Each must end with exit status 2, exactly one line on stderr naming the flag,
within a few seconds, with no file created anywhere and the experiment never started.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import time
from pathlib import Path

import pytest

from gridlib import cli, flags, recheck, reproduce, results

ENTRIES = cli.entries()


def _files(*folders: Path) -> set[Path]:
    return {p for f in folders if f.exists() for p in f.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Every folder the library may write (results, runs, data) and the working folder point
    into ``tmp_path``; starting an experiment's work fails the test."""
    for var, sub in (("GRIDLIB_RESULTS", "results"), ("GRIDLIB_RUNS", "runs"),
                     ("GRIDLIB_DATA", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.chdir(tmp_path)

    def no_work(**options):
        raise AssertionError(f"work started with options {options}")

    monkeypatch.setattr(results, "session", no_work)
    return tmp_path


def _refused(capsys, argv: list[str], flag: str) -> str:
    t0 = time.perf_counter()
    status = cli.main(argv)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip()
    where = f"{' '.join(map(repr, argv))} -> exit {status}, stderr {err!r}"
    assert status == 2, where
    assert len(err.splitlines()) == 1 and err.startswith("error: "), where
    assert flag in err, where
    assert elapsed < 3.0, f"{where} took {elapsed:.1f} s"
    return err


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_flag_refuses_its_bad_values(sandbox, capsys, name):
    entry = ENTRIES[name]
    before = _files(sandbox)
    n = 0
    for param, domain in entry.domains.items():
        flag = "--" + param.replace("_", "-")
        for value in domain.bad_values():
            _refused(capsys, [name, flag, value], flag)
            n += 1
        _refused(capsys, [name, flag], flag)  # the value is missing
    assert n >= len(entry.domains)
    assert _files(sandbox) == before, "a refused command created files"


@pytest.mark.parametrize("key", sorted(flags.RUN_CONTROL))
def test_run_control_flags_refuse_bad_values(sandbox, capsys, key):
    flag = "--" + key.replace("_", "-")
    name = next(n for n, e in ENTRIES.items() if e.devices or key != "devices")
    for value in flags.RUN_CONTROL[key].bad_values():
        _refused(capsys, [name, flag, value], flag)
    assert not _files(sandbox)


@pytest.mark.parametrize("key", ["epochs", "rtol"])
def test_recheck_flags_refuse_bad_values(sandbox, capsys, key):
    flag = f"--{key}"
    for value in recheck.FLAGS[key].bad_values():
        _refused(capsys, ["recheck", "mlp-anything", flag, value], flag)
    assert not _files(sandbox)


@pytest.mark.parametrize("key", ["run", "workers"])
def test_reproduce_flags_refuse_bad_values(sandbox, capsys, key):
    flag = f"--{key}"
    for value in reproduce.FLAGS[key].bad_values():
        _refused(capsys, ["reproduce", "--stale", flag, value], flag)
    assert not _files(sandbox)


def test_recheck_refuses_bad_names_and_unknown_flags(sandbox, capsys):
    _refused(capsys, ["recheck", "../outside"], "../outside")
    _refused(capsys, ["recheck", "x", "--bogus"], "--bogus")
    _refused(capsys, ["recheck", "no/such_result"], "no/such_result")


def test_every_flag_has_a_domain_and_its_default_lies_in_it():
    for name, entry in ENTRIES.items():
        params = inspect.signature(entry.fn).parameters
        assert set(entry.domains) == set(params), name
        for param, p in params.items():
            assert entry.domains[param].parse("--x", cli._text(p.default)) == p.default, (name, param)


def test_a_flag_without_a_domain_is_refused_at_registration():
    with pytest.raises(TypeError, match="have no declared domain"):

        @cli.experiment("no-domain-for-test")
        def broken(mystery_knob: float = 1.0):  # pragma: no cover - never called
            return mystery_knob

    with pytest.raises(TypeError, match="the default is refused"):

        @cli.experiment("bad-default-for-test", flags={"knob": flags.integer(1, 5)})
        def broken2(knob: int = 9):  # pragma: no cover - never called
            return knob


@pytest.mark.parametrize(
    ("domain", "good", "bad"),
    [
        (flags.LEARNING_RATE, ["1e-3", "10"], ["0", "10.01", "-1e-3", "nan", "inf", "1e30"]),
        (flags.integer(1, 5, special=(0,)), ["0", "1", "5"], ["6", "-1", "1.5", "1e3"]),
        (flags.integer(0, 9, many=True), ["1,2", "0"], ["1,", ",", "1,x", "1,10"]),
        (flags.choice(("a", "b"), many=True), ["a", "a,b"], ["c", "a,c", ""]),
        (flags.RESULT_NAME, ["", "a/b_seed0", "x.y-z"], ["/abs", "../x", "a b", "a//b"]),
        (flags.real(0.0, 1.0), ["0", "1", "0.5"], ["-0.001", "1.001", "-inf"]),
    ],
)
def test_domains_accept_and_refuse_as_declared(domain, good, bad):
    """The domain logic itself, independent of any experiment: what a wrong ``parse`` (a
    missing bound, an open bound taken as closed, a list item unchecked) would let through."""
    for text in good:
        domain.parse("--x", text)
    for text in bad:
        with pytest.raises(flags.FlagError, match="--x"):
            domain.parse("--x", text)


def test_empty_folder_variables_count_as_unset(monkeypatch, tmp_path):
    from gridlib import data
    from gridlib.filtergrid import anchor

    monkeypatch.chdir(tmp_path)
    for var in ("GRIDLIB_RESULTS", "GRIDLIB_RUNS", "GRIDLIB_DATA", "GRIDLIB_ANCHOR"):
        monkeypatch.setenv(var, "")
    assert results.results_dir() == results.REPO_ROOT / "results"
    assert results.runs_dir() == results.REPO_ROOT / "runs"
    assert data.cache_root() == Path.home() / ".cache" / "gridlib"
    assert anchor.anchor_dir().name == "grid-neurons"
    for folder in (results.results_dir(), results.runs_dir(), data.cache_root()):
        assert folder.resolve() != tmp_path.resolve()


def test_a_folder_variable_that_names_a_file_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    from gridlib import cli, data, storage
    from gridlib.filtergrid import anchor

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    readers = {"GRIDLIB_RESULTS": results.results_dir, "GRIDLIB_RUNS": results.runs_dir,
               "GRIDLIB_DATA": data.cache_root, "GRIDLIB_ANCHOR": anchor.anchor_dir}
    for var, folder in readers.items():
        monkeypatch.setenv(var, str(a_file))
        with pytest.raises(storage.StoredFileError, match=f"{var}=.*notes.txt names a file, not a folder"):
            folder()
        monkeypatch.delenv(var)
    monkeypatch.setenv("GRIDLIB_RESULTS", str(a_file))
    assert cli.main(["reproduce"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: GRIDLIB_RESULTS={a_file} names a file, not a folder"]


# --------------------------------------------------------------------------- scripts

SCRIPTS = sorted((ROOT_DIR := Path(__file__).resolve().parent.parent).glob("benchmarks/*.py"))


def _script(path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_parser_is_one_line_and_every_typed_flag_has_a_domain():
    """No ``argparse.ArgumentParser`` but the command line's own, and no ``type=`` conversion
    outside it: every valued flag of every script goes through ``OneLineParser.add_flag``."""
    offences = []
    for f in [*sorted((ROOT_DIR / "gridlib").rglob("*.py")), *SCRIPTS]:
        if f.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "ArgumentParser":
                    offences.append(f"{f.name}:{node.lineno} ArgumentParser")
                if node.func.attr == "add_argument" and any(k.arg == "type" for k in node.keywords):
                    offences.append(f"{f.name}:{node.lineno} add_argument(type=...)")
    assert not offences, offences


@pytest.mark.parametrize("path", [s for s in SCRIPTS if "def parser()" in s.read_text()],
                         ids=lambda p: p.name)
def test_every_script_flag_refuses_its_bad_values(path):
    parser = _script(path).parser()
    assert parser.domains
    before: list[str] = []  # valid values of the positionals in front of the one tried
    for flag, domain in parser.domains.values():
        for value in domain.bad_values():
            if flag.startswith("-"):
                argv, named = [flag, value], flag
            else:  # a positional: argparse may take "-1" for a flag; the value is named
                argv, named = [*before, value], value if value.startswith("-") else flag
            with pytest.raises(flags.FlagError, match=re.escape(named)):
                parser.parse_args(argv)
        if not flag.startswith("-"):
            before.append(parser.get_default(flag))


def test_every_script_with_arguments_declares_them():
    for path in SCRIPTS:
        text = path.read_text()
        if "sys.argv" in text or "parse_args" in text:
            assert "def parser()" in text, f"{path.name} reads arguments without declared domains"
