"""The command line: flags from signatures, listing, errors, and a real (tiny) run."""

import errno
import functools
import inspect

import pytest

from gridlib import cli, experiment, flags, results


def test_every_experiment_is_listed(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in cli.registry():
        assert name in out


def test_unknown_experiment(capsys):
    assert cli.main(["no-such-thing"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_experiment_needs_defaults():
    with pytest.raises(TypeError, match="needs a default"):

        @cli.experiment("broken-for-test")
        def broken(x):  # pragma: no cover - never called
            return x


def test_flags_follow_the_signature():
    args, _ = cli.parse("mlp", ["--epochs", "3", "--lr", "0.5", "--hidden", "20,20"])
    assert args["epochs"] == 3 and args["lr"] == 0.5 and args["hidden"] == "20,20"
    with pytest.raises(flags.FlagError, match="--epochs 'three': expected an integer"):
        cli.parse("mlp", ["--epochs", "three"])


def test_bool_flags():
    assert flags.BOOL.parse("--x", "yes") is True and flags.BOOL.parse("--x", "0") is False
    with pytest.raises(flags.FlagError, match="true or false"):
        flags.BOOL.parse("--x", "maybe")


def test_a_tiny_run_writes_results_and_resumes(tmp_results, monkeypatch):
    argv = ["mlp", "--epochs", "1", "--n-train", "512", "--hidden", "16", "--name", "t/mlp"]
    monkeypatch.setattr("sys.argv", ["/somewhere/gridlib/__main__.py", *argv])
    assert cli.main(argv) == 0
    rec = results.load_scratch("t/mlp")
    assert rec["config"]["sizes"] == [784, 16, 10] and rec["metrics"]["epoch"] == 1
    assert rec["provenance"]["command"] == "python -m gridlib " + " ".join(argv)
    assert (tmp_results / "runs" / "t" / "mlp" / experiment.CHECKPOINT_FILE).is_file()
    assert cli.main(argv) == 0  # resumes from the checkpoint: nothing left to train
    assert results.load_scratch("t/mlp")["history"] == rec["history"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mlp", "--epochs", "0"], "--epochs '0': expected an integer in [1, 100000]"),
        (["mlp", "--lr", "-1"], "--lr '-1': expected a finite number in (0, 10]"),
        (["mlp", "--lr", "nan"], "--lr 'nan': expected a finite number"),
        (["mlp", "--lr", "1e6"], "in (0, 10]"),
        (["mlp", "--batch-size", "0"], "--batch-size '0'"),
        (["mlp", "--seed", "-3"], "--seed '-3': expected an integer in [0, 2147483647]"),
        (["mlp", "--hidden", "0"], "--hidden '0': expected comma-separated, each an integer"),
        (["mlp", "--name", "/abs/path"], "--name '/abs/path': expected a name"),
        (["mlp", "--name", "../../x"], "--name '../../x': expected a name"),
        (["mlp", "--name", "a/" + "x" * 300], "--name"),
        (["mlp", "--stop-after-epochs", "0"], "--stop-after-epochs '0'"),
        (["mlp", "--bogus", "1"], "unrecognized arguments: --bogus 1"),
        (["mlp", "--ep", "2"], "unrecognized arguments: --ep 2"),
        (["mlp", "--lr"], "expected one argument"),
        (["mlp", "--hidden", "100000,100000"], "needs about"),
        (["gle-lagline", "--lr", "nan"], "--lr 'nan'"),
        (["gle-mnist1d", "--seeds", "1,x"], "--seeds '1,x'"),
        (["ep-bptt-sweep", "--scales", "-1"], "--scales '-1'"),
        (["ep-mnist", "--beta", "1e30"], "--beta '1e30'"),
        (["filtergrid-mnist", "--gain", "1e30"], "--gain '1e30'"),
        (["filtergrid-mnist", "--tau-min", "0.5", "--tau-max", "0.1"], "exceeds --tau-max"),
        (["filtergrid-mnist", "--window", "4"], "--window K >= 1 goes with --rule tbptt"),
    ],
)
def test_bad_input_is_one_line_before_any_work(tmp_results, capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_results / "runs").exists() and not (tmp_results / "results").exists()


def test_a_bad_scale_is_refused_first(tmp_results, capsys, monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "bogus")
    assert cli.main(["mlp", "--epochs", "1"]) == 2
    assert "GRIDLIB_SCALE='bogus' is not a scale" in capsys.readouterr().err


def test_memory_estimates_refuse_impossible_sizes():
    cli.require_memory(1e6, "a small grid")
    with pytest.raises(MemoryError, match="a huge grid needs about"):
        cli.require_memory(1e18, "a huge grid")


def test_every_experiment_estimates_its_memory_from_its_flags():
    """Every experiment's estimate is finite at its defaults, and the ones whose flags set
    array sizes grow with them."""
    for name, entry in cli.entries().items():
        defaults = {k: p.default for k, p in inspect.signature(entry.fn).parameters.items()}
        assert 0 < (entry.memory or cli.data_memory)(defaults) < float("inf"), name
    sized = {n for n, e in cli.entries().items()
             if {"hidden", "height", "width", "n_layers", "preset"} & set(e.domains)}
    assert sized and all(cli.entries()[n].memory is not None for n in sized), sized


def test_explicit_default_sentinels_pass(tmp_results):
    args, options = cli.parse("gle-mnist1d", ["--epochs", "2"])
    assert args["epochs"] == 2 and options == {}
    args, options = cli.parse("mlp", ["--publish", "--fresh"])
    assert options == {"publish": True, "fresh": True} and args["epochs"] == 20


@pytest.mark.parametrize(
    ("raised", "status", "text"),
    [
        (RuntimeError("kaput"), 70, "internal error RuntimeError: kaput"),
        (OSError(errno.EROFS, "Read-only file system", "/x/y"), 74,
         "cannot use /x/y: the file system is read-only"),
        (OSError(errno.ENOSPC, "No space left on device", "/x/z"), 74, "the disk is full"),
    ],
)
def test_failures_after_work_started_are_one_line(tmp_results, capsys, monkeypatch, raised,
                                                   status, text):
    original = cli._REGISTRY["mlp"]

    @functools.wraps(original.fn)
    def failing(**kwargs):
        raise raised

    monkeypatch.setitem(cli._REGISTRY, "mlp", original._replace(fn=failing))
    assert cli.main(["mlp", "--epochs", "1"]) == status
    err = capsys.readouterr().err.strip()
    assert text in err and len(err.splitlines()) == 1 and err.startswith("error: ")
