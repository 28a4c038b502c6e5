"""Release metadata: one version, and a citation file that parses with the keys CFF requires."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

import gridlib

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_installed_distributions():
    assert gridlib.__version__ == metadata.version("gridlib")


def test_version_is_pyprojects():
    """The installed metadata is not stale: re-install after changing ``version``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert gridlib.__version__ == project["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?", project["version"])


def test_citation_file_has_the_required_cff_keys():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= set(cff)
    assert cff["cff-version"] == "1.2.0"
    assert cff["authors"] and all(("family-names" in a) or ("name" in a) for a in cff["authors"])
    assert "version" not in cff, "the version lives in pyproject.toml only"
    for ref in cff.get("references", []):
        assert {"type", "title", "authors"} <= set(ref), ref.get("title")


def test_changelog_has_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## Unreleased$", text, re.M)


def test_a_release_of_1_0_or_later_has_no_stale_result():
    """Step 2 of the README's release checklist, enforced: from 1.0.0 on, every published result
    was made from a committed tree and no re-check or declared drift says it moved (the
    ``python -m gridlib reproduce --stale`` list is empty). Before 1.0, the list may hold some."""
    from gridlib import reproduce

    major = int(gridlib.__version__.split(".")[0])
    stale = [job.name for job in reproduce.jobs(stale_only=True)]
    assert major < 1 or not stale, f"version {gridlib.__version__} with stale results: {stale}"


def test_a_release_of_1_0_or_later_has_no_recheck_from_a_modified_tree():
    """The re-check verdicts the book shows were made from committed code too (the ``--stale``
    list covers the results themselves)."""
    from gridlib import results

    major = int(gridlib.__version__.split(".")[0])
    dirty = [n for n, r in results.load_all("rechecks").items()
             if r["provenance"].get("git_dirty") is not False]
    assert major < 1 or not dirty, f"version {gridlib.__version__} with re-checks from modified trees: {dirty}"
