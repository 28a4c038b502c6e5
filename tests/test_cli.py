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
    rec = results.load("t/mlp")
    assert rec["config"]["sizes"] == [784, 16, 10] and rec["metrics"]["epoch"] == 1
    assert rec["provenance"]["command"] == "python -m gridlib " + " ".join(argv)
    assert (tmp_results / "runs" / "t" / "mlp" / "checkpoint.pkl").is_file()
    assert cli.main(argv) == 0  # resumes from the checkpoint: nothing left to train
    assert results.load("t/mlp")["history"] == rec["history"]
