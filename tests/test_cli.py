"""The command line: flags from signatures, listing, errors, and a real (tiny) run."""

import pytest

from gridlib import cli, results


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
    parser = cli._parser_for("mlp", cli.registry()["mlp"])
    args = parser.parse_args(["--epochs", "3", "--lr", "0.5", "--hidden", "20,20"])
    assert args.epochs == 3 and args.lr == 0.5 and args.hidden == "20,20"
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "three"])


def test_bool_flags():
    assert cli._bool("yes") is True and cli._bool("0") is False
    with pytest.raises(Exception, match="true/false"):
        cli._bool("maybe")


def test_a_tiny_run_writes_results_and_resumes(tmp_results, monkeypatch):
    argv = ["mlp", "--epochs", "1", "--n-train", "512", "--hidden", "16", "--name", "t/mlp"]
    monkeypatch.setattr("sys.argv", ["/somewhere/gridlib/__main__.py", *argv])
    assert cli.main(argv) == 0
    rec = results.load_scratch("t/mlp")
    assert rec["config"]["sizes"] == [784, 16, 10] and rec["metrics"]["epoch"] == 1
    assert rec["provenance"]["command"] == "python -m gridlib " + " ".join(argv)
    assert (tmp_results / "runs" / "t" / "mlp" / "checkpoint.pkl").is_file()
    assert cli.main(argv) == 0  # resumes from the checkpoint: nothing left to train
    assert results.load_scratch("t/mlp")["history"] == rec["history"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mlp", "--epochs", "0"], "--epochs 0: must be an integer >= 1"),
        (["mlp", "--lr", "-1"], "learning rate must be finite, > 0"),
        (["mlp", "--lr", "nan"], "learning rate must be finite, > 0"),
        (["mlp", "--lr", "1e6"], "<= 10"),
        (["mlp", "--batch-size", "0"], "--batch-size 0"),
        (["mlp", "--seed", "-3"], "seeds must be integers"),
        (["mlp", "--hidden", "0"], "sizes must be integers >= 1"),
        (["mlp", "--name", "/abs/path"], "must be a relative name"),
        (["mlp", "--name", "../../x"], "must be a relative name"),
        (["mlp", "--stop-after-epochs", "0"], "must be >= 1"),
        (["gle-lagline", "--lr", "nan"], "learning rate"),
        (["gle-mnist1d", "--seeds", "1,x"], "seeds must be integers"),
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


def test_explicit_default_sentinels_pass(tmp_results):
    args, options = cli.parse("gle-mnist1d", ["--epochs", "2"])
    assert args["epochs"] == 2 and options == {}
    args, options = cli.parse("mlp", ["--publish", "--fresh"])
    assert options == {"publish": True, "fresh": True} and args["epochs"] == 20
