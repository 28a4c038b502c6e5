import pytest

from gridlib import scale


def test_default_is_full(monkeypatch):
    monkeypatch.delenv("GRIDLIB_SCALE", raising=False)
    assert scale.current() == "full"
    assert scale.pick(ci=1, full=2) == 2


def test_ci(monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", " CI ")
    assert scale.is_ci() and scale.pick(ci="small", full="big") == "small"


def test_bad_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("GRIDLIB_SCALE", "tiny")
    with pytest.raises(ValueError, match="GRIDLIB_SCALE='tiny' is not a scale"):
        scale.current()
