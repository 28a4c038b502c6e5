"""gridlib installed from its wheel (not editable) works outside the repository.

The test builds the wheel, installs it into a fresh virtual environment and runs
``examples/use_gridlib.py`` (the script the book's page "Use gridlib in your own code" shows)
from an unrelated temporary folder, with ``HOME`` and ``XDG_DATA_HOME`` in temporary folders
and ``GRIDLIB_DATA`` at the existing data cache. It checks that

- the script succeeds, with the ``gridlib`` of the fresh environment (not the repository's);
- the run's checkpoint lands in the user folder (:func:`gridlib.provenance.user_folder`);
- nothing is written into the fresh environment's site-packages, nor into the repository.

Nothing is downloaded: the wheel is built without build isolation from a copy of the files
that go into it (an in-tree build would leave a ``build/`` folder in the repository), and the
fresh environment sees the dependencies of ``.venv`` through one ``.pth`` line. The
repository check compares ``git status`` before and after, so it assumes that nobody else
edits the working tree meanwhile (as on CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import gridlib.data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "use_gridlib.py"
QUIET_PIP = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "PIP_NO_INPUT": "1"}


def sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``; its stdout, or an assertion error with both streams."""
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n" \
                                f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path -> (size, mtime in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def repo_status() -> str:
    return sh("git", "status", "--porcelain", "--untracked-files=all", cwd=ROOT)


def test_the_wheel_installs_and_runs_the_example_outside_the_repository(tmp_path):
    status_before = repo_status()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GRIDLIB_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(QUIET_PIP)

    # the wheel, from a copy of what goes into it
    src, wheels = tmp_path / "src", tmp_path / "wheels"
    shutil.copytree(ROOT / "gridlib", src / "gridlib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ".",
       cwd=src, env=env)
    (wheel,) = wheels.glob("gridlib-*.whl")

    # a fresh environment with the wheel installed; its dependencies come from this one's
    fresh = tmp_path / "fresh"
    sh(sys.executable, "-m", "venv", "--without-pip", fresh, env=env)
    python = fresh / "bin" / "python"
    sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel, env=env)
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   env=env).strip())
    (site / "_gridlib_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = files(site)
    assert "gridlib/__init__.py" in installed

    # the example, from an unrelated folder, with a temporary home and user data folder
    work, home, xdg = tmp_path / "work", tmp_path / "home", tmp_path / "xdg"
    for folder in (work, home, xdg):
        folder.mkdir()
    shutil.copy2(EXAMPLE, work / EXAMPLE.name)
    env.update(HOME=str(home), XDG_DATA_HOME=str(xdg),
               GRIDLIB_DATA=str(gridlib.data.cache_root()), MPLBACKEND="Agg")
    out = sh(python, EXAMPLE.name, cwd=work, env=env)

    lines = out.splitlines()
    assert lines[0].startswith("gridlib ") and lines[0].endswith(f"from {site / 'gridlib' / '__init__.py'}"), out
    assert len(lines) >= 6, out
    checkpoints = list((xdg / "gridlib" / "runs").rglob("checkpoint.npz"))
    assert checkpoints, f"no checkpoint under the user folder {xdg / 'gridlib'}:\n{out}"
    assert str(checkpoints[0].parent) in out, out
    assert files(site) == installed, "the example wrote into site-packages"
    assert not (home / ".local" / "share" / "gridlib").exists(), "XDG_DATA_HOME was ignored"
    changed = set(repo_status().splitlines()) ^ set(status_before.splitlines())
    assert not changed, "the repository changed while the example ran:\n" + "\n".join(sorted(changed))
