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
