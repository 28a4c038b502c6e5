"""SIGTERM and SIGINT stop a run after its last whole checkpoint, in one line, and resume.

A real command runs in a subprocess; a hook sends the signal to the process itself right after
the first epoch's checkpoint is written (so the test does not depend on timing). The command
must exit with 128 + the signal's number, print one line saying where it stopped, publish
nothing, and the same command must then resume from that epoch and finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RUNNER = textwrap.dedent("""
    import os, signal, sys
    from gridlib import checkpoint, cli
    sig = int(os.environ.get("SEND_SIGNAL", "0"))
    real_save = checkpoint.save
    def save(*args, **kwargs):
        out = real_save(*args, **kwargs)
        if sig:
            os.kill(os.getpid(), sig)
        return out
    checkpoint.save = save
    sys.exit(cli.main(sys.argv[1:]))
""")

ARGV = ["mlp", "--epochs", "3", "--n-train", "256", "--hidden", "8", "--batch-size", "64",
        "--name", "t/signal"]


def _run(tmp_path: Path, sig: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRIDLIB_RESULTS": str(tmp_path / "results"),
           "GRIDLIB_RUNS": str(tmp_path / "runs"), "GRIDLIB_SCALE": "ci",
           "SEND_SIGNAL": str(sig)}
    return subprocess.run([sys.executable, "-c", RUNNER, *ARGV], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_checkpoint_and_the_run_resumes(tmp_path, sig):
    stopped = _run(tmp_path, sig)
    lines = [ln for ln in stopped.stderr.strip().splitlines() if ln.strip()]
    assert stopped.returncode == 128 + sig, stopped.stderr
    assert lines[-1] == (f"stopped by {signal.Signals(sig).name} after epoch 1 of 3: re-run the "
                         "same command to resume from the last checkpoint"), stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert not list(tmp_path.rglob("*.json")), "a stopped run wrote a results file"
    assert not list(tmp_path.rglob("*.tmp"))
    if sig == signal.SIGINT:
        return  # the resume is the same for both signals; checked once, for SIGTERM
    resumed = _run(tmp_path, 0)
    assert resumed.returncode == 0, resumed.stderr
    (record,) = tmp_path.rglob("signal.json")
    rec = json.loads(record.read_text())
    assert rec["history"]["epoch"] == [1, 2, 3]
    assert len(rec["provenance"]["resumed"]) == 1  # one start, one resume
