"""One figure style for the whole book, and the plots every chapter needs.

Every function returns a :class:`matplotlib.figure.Figure` (or draws into a given axis) so that
notebooks can ``glue`` it or let Jupyter display it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

#: A colour-blind-safe cycle (Okabe & Ito), used by every figure in the book.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

#: The book's content column, in inches at the figures' 110 dpi (688 px): a wider figure is
#: scaled down to fit it, its text with it.
COLUMN_IN = 6.2

STYLE: dict[str, Any] = {
    "figure.figsize": (COLUMN_IN, 3.5),  # the book's 688 px column at 110 dpi
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "legend.frameon": False,
    "image.cmap": "viridis",
    "lines.linewidth": 1.6,
}


def apply_style() -> None:
    """Apply the book's matplotlib style globally (call once at the top of a notebook)."""
    mpl.rcParams.update(STYLE)


def _axis(ax: plt.Axes | None, figsize: tuple[float, float] | None = None) -> tuple[plt.Figure, plt.Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[Any]]],
    metric: str,
    ax: plt.Axes | None = None,
    *,
    ylabel: str | None = None,
    logy: bool = False,
    reference: float | None = None,
    reference_label: str = "published",
    percent: bool = False,
    zoom_from: int | None = None,
) -> plt.Figure:
    """Plot ``history[metric]`` against epoch for each labelled history.

    A history whose entries are vectors (one value per seed) is drawn as its mean with a
    shaded band of one standard deviation. ``reference`` draws a dashed horizontal line.
    ``percent`` shows fractions (an accuracy, as the records keep it) and ``reference`` in
    percent, as the book's tables do. ``zoom_from`` fits the y-axis to the epochs from that one
    on (and the reference), so that a first epoch far off does not flatten a long run's end.
    """
    fig, ax = _axis(ax)
    scale = 100.0 if percent else 1.0
    shown: list[np.ndarray] = []  # the values the y-axis must hold when zoomed
    for label, hist in histories.items():
        if metric not in hist:
            raise KeyError(f"history {label!r} has no metric {metric!r}; it has {sorted(hist)}")
        values = scale * np.asarray(hist[metric], dtype=float)
        epochs = np.asarray(hist.get("epoch", np.arange(1, len(values) + 1)))
        # at most about 20 markers a curve: 300 of them would hide the line they mark
        marks = {"marker": "o", "ms": 3, "markevery": max(1, len(epochs) // 20)}
        late = epochs >= (zoom_from or 0)
        if values.ndim == 1:
            ax.plot(epochs, values, label=label, **marks)
            shown.append(values[late])
        else:
            mean, std = values.mean(axis=1), values.std(axis=1)
            (line,) = ax.plot(epochs, mean, label=f"{label} (n={values.shape[1]})", **marks)
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            shown += [mean[late] - std[late], mean[late] + std[late]]
    if reference is not None:
        ax.axhline(scale * reference, color="0.3", ls="--", lw=1, label=reference_label)
        shown.append(np.array([scale * reference]))
    if zoom_from is not None:
        lo, hi = float(np.min(np.concatenate(shown))), float(np.max(np.concatenate(shown)))
        pad = 0.08 * (hi - lo or abs(hi) or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or metric)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return fig


def image_grid(
    images: np.ndarray,
    nrow: int,
    ncol: int,
    *,
    titles: Sequence[str] | None = None,
    cmap: str = "gray",
    shape: tuple[int, int] | None = None,
    size: float | None = None,
    symmetric: bool = False,
    colorbar: bool = False,
) -> plt.Figure:
    """Show ``images`` (``(n, H, W)`` or flattened ``(n, H*W)`` with ``shape``) in a grid.

    ``symmetric=True`` centres the colour map on zero (for weights and signed activations);
    ``colorbar=True`` gives every panel its own colour bar. ``size`` is a panel's side in
    inches: by default 1.2, or less where ``ncol`` panels would be wider than the book's column
    (:data:`COLUMN_IN`).

    Raises:
        ValueError: ``size * ncol`` exceeds :data:`COLUMN_IN` (the page would scale the figure
            down, and its 9-pt titles below legible), or the images do not fit the grid.
    """
    size = min(1.2, COLUMN_IN / ncol) if size is None else size
    if size * ncol > COLUMN_IN + 1e-9:
        raise ValueError(f"{ncol} panels of {size} in are wider than the book's {COLUMN_IN}-in column; "
                         "pass a smaller size (or leave it out)")
    images = np.asarray(images)
    if shape is not None:
        images = images.reshape(len(images), *shape)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, H, W) or flattened with shape=, got {images.shape}")
    if len(images) > nrow * ncol:
        raise ValueError(f"{len(images)} images do not fit a {nrow}x{ncol} grid")
    fig, axes = plt.subplots(nrow, ncol, figsize=(size * ncol, size * nrow), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images):
            kw = {}
            if symmetric:
                m = float(np.abs(images[i]).max()) or 1.0
                kw = {"vmin": -m, "vmax": m}
            im = ax.imshow(images[i], cmap=cmap, **kw)
            if colorbar:
                fig.colorbar(im, ax=ax, shrink=0.8)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig

