"""Readers can run a chapter themselves: a Jupyter server opens ``notebooks/*.md`` as a notebook.

``make lab`` starts JupyterLab on the repository; what makes a MyST chapter open as a notebook
there is jupytext's server extension (``jupyterlab_jupytext``, enabled by the file jupytext
installs under ``<prefix>/etc/jupyter/jupyter_server_config.d``), which swaps in jupytext's
contents manager. This test starts a bare ``jupyter_server`` (pinned in requirements-lock.txt,
JupyterLab itself is not needed) on a free localhost port with a token, asks its contents API for
one chapter as a notebook and shuts it down. It skips only when jupyter_server/jupytext are not
installed, and fails instead when ``CI`` is set: the pinned environment must have them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "notebooks/01-data-pipeline.md"
START_TIMEOUT_S = 60.0


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        message = (f"{', '.join(missing)} not installed: the lab test needs the pinned environment "
                   "(pip install -r requirements-lock.txt)")
        if _on_ci():
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET", timeout: float = 10.0):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture
def jupyter_server(tmp_path):
    """A jupyter_server on the repository root: yields (base URL, token); shut down after."""
    _require("jupyter_server", "jupytext", "jupyterlab_jupytext")
    token = secrets.token_hex(16)
    port = _free_port()
    env = dict(os.environ)
    # Keep the user's own Jupyter config, runtime and data folders out of it (the environment's
    # <prefix>/etc/jupyter, where jupytext enables its extension, is still read).
    for name in ("CONFIG", "RUNTIME", "DATA"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        env[f"JUPYTER_{name}_DIR"] = str(folder)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    command = [
        sys.executable, "-m", "jupyter_server",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={ROOT}",
        "--allow-root",  # CI containers run as root; the server only listens on localhost
    ]
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter_server exited with {process.returncode}:\n{log_tail()}")
            try:
                if _request(f"{base}/api/status", token, timeout=2.0)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter_server did not answer within {START_TIMEOUT_S:.0f} s:\n{log_tail()}")
            time.sleep(0.2)
        yield base, token
    finally:
        if process.poll() is None:
            try:
                _request(f"{base}/api/shutdown", token, method="POST", timeout=5.0)
                process.wait(timeout=15)
            except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def test_chapter_opens_as_notebook(jupyter_server):
    base, token = jupyter_server
    status, body = _request(f"{base}/api/contents/{CHAPTER}?type=notebook&content=1", token)
    assert status == 200
    model = json.loads(body)
    assert model["type"] == "notebook", model["type"]
    assert model["format"] == "json"
    assert model["path"] == CHAPTER
    notebook = model["content"]
    assert notebook["nbformat"] == 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    markdown = [cell for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    assert code, "the chapter opened without code cells"
    assert markdown, "the chapter opened without markdown cells"
    assert any("gridlib" in "".join(cell["source"]) for cell in code)
    assert notebook["metadata"].get("kernelspec", {}).get("language") == "python"
    # the text on disk is still MyST Markdown: jupytext reads it, nothing was written next to it
    assert not (ROOT / CHAPTER).with_suffix(".ipynb").exists()


def _name(requirement: str) -> str:
    return requirement.split("==")[0].strip().lower().replace("_", "-")


def test_lab_extra_is_pinned_and_agrees_with_the_lock():
    """The `lab` extra of pyproject.toml: exact pins, none contradicting requirements-lock.txt."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["lab"]
    lock = {_name(line): line.split("==")[1].strip()
            for line in (ROOT / "requirements-lock.txt").read_text().splitlines() if "==" in line}
    names = {_name(r) for r in extra}
    assert {"jupyterlab", "jupytext"} <= names
    for requirement in extra:
        assert requirement.count("==") == 1, f"{requirement}: not an exact pin"
        name, version = _name(requirement), requirement.split("==")[1].strip()
        assert lock.get(name, version) == version, f"{requirement} vs {name}=={lock[name]} in the lock"
