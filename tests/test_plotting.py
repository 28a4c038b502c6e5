"""Plotting helpers: shapes, errors and the numbers in tables."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gridlib import plotting  # noqa: E402


def test_learning_curves_single_and_multi_seed():
    hist = {"epoch": [1, 2, 3], "acc": [0.1, 0.5, 0.7], "acc_seeds": [[0.1, 0.2], [0.5, 0.6], [0.7, 0.8]]}
    fig = plotting.learning_curves({"a": hist}, "acc", reference=0.9)
    assert len(fig.axes[0].lines) == 2  # the curve and the reference line
    fig = plotting.learning_curves({"b": hist}, "acc_seeds")
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "b (n=2)"
    with pytest.raises(KeyError, match="has no metric"):
        plotting.learning_curves({"a": hist}, "loss")


def test_image_grid():
    fig = plotting.image_grid(np.zeros((5, 16)), 2, 3, shape=(4, 4))
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="do not fit"):
        plotting.image_grid(np.zeros((7, 4, 4)), 2, 3)
    with pytest.raises(ValueError, match="must be"):
        plotting.image_grid(np.zeros((5, 16)), 2, 3)


def test_an_image_grid_never_outgrows_the_column():
    """Wider than the page's column, the figure would be scaled down with its titles (the
    browser check's small-figure): the default panel shrinks to fit, a wider size is refused."""
    for ncol in (2, 5, 8, 16):
        fig = plotting.image_grid(np.zeros((ncol, 4, 4)), 1, ncol)
        assert fig.get_figwidth() <= plotting.COLUMN_IN + 1e-9
    assert plotting.image_grid(np.zeros((2, 4, 4)), 1, 2).get_figwidth() == pytest.approx(2.4)
    with pytest.raises(ValueError, match="wider than the book's 6.2-in column"):
        plotting.image_grid(np.zeros((8, 4, 4)), 1, 8, size=1.2)


def test_learning_curves_show_fractions_in_percent():
    hist = {"epoch": [1, 2], "test/acc": [0.25, 0.5]}
    ax = plotting.learning_curves({"a": hist}, "test/acc", percent=True, reference=0.75,
                                  ylabel="test accuracy (%)").axes[0]
    assert list(ax.lines[0].get_ydata()) == [25.0, 50.0] and ax.lines[1].get_ydata()[0] == 75.0


def test_no_figure_text_is_set_below_9_points():
    """Every explicit font size in the library and the chapters is at least 9 pt (the book's
    rule for legible figures); ``plotting``'s style sets the default above it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    small = re.compile(r"\bfontsize\s*=\s*(\d+(?:\.\d+)?)")
    found = [f"{p.relative_to(root)}:{n}: {line.strip()}"
             for p in [*root.glob("gridlib/**/*.py"), *root.glob("notebooks/*.md")]
             for n, line in enumerate(p.read_text().splitlines(), 1)
             for m in small.finditer(line) if float(m.group(1)) < 9]  # fmt: skip
    assert not found, "figure text below 9 pt:\n" + "\n".join(found)


def test_a_long_curve_marks_about_twenty_points_and_zooms_past_its_first_epochs():
    """300 epochs draw about 20 markers, not 300 (they hid the line); ``zoom_from`` fits the
    y-axis to the later epochs and the reference, not to a first epoch far below them."""
    epochs = np.arange(1, 301)
    acc = 0.86 - 0.5 * np.exp(-epochs / 3.0)  # 36 % at epoch 0, 86 % from about epoch 20
    seeds = np.stack([acc, acc + 0.002], axis=1)
    ax = plotting.learning_curves({"a": {"epoch": epochs, "acc": seeds}}, "acc", percent=True,
                                  reference=0.87, zoom_from=10).axes[0]
    line = ax.lines[0]
    marked = np.arange(len(epochs))[::line.get_markevery()]
    assert 15 <= len(marked) <= 21
    lo, hi = ax.get_ylim()
    assert lo > 100 * acc[0] and lo < 100 * acc[9] and hi > 87.0
    # without zoom_from the whole run shows; a short run keeps a marker on every epoch
    lo, _ = plotting.learning_curves({"a": {"epoch": epochs, "acc": acc}}, "acc").axes[0].get_ylim()
    assert lo < acc[0]
    short = plotting.learning_curves({"a": {"epoch": [1, 2, 3], "acc": [0.1, 0.2, 0.3]}}, "acc")
    assert short.axes[0].lines[0].get_markevery() == 1
