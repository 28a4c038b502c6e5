"""gridlib against the maintained PyTorch references, side by side: the record of ``benchmarks/peers.py``.

``benchmarks/peers.py`` times each system's training step in gridlib and in the reference code a
user would otherwise pick (the NeuralGrid blog's, the GLE paper's, Laborieux et al.'s EP), on the
same minibatches, alternating the two in one time window, and saves the medians over rounds as
``bench/peers``. :func:`rows` tabulates it and :func:`finding` says what it shows; nothing here
times anything. The benchmark is optional, like the anchor code: it needs PyTorch and the
reference folders, and skips cleanly without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The results file of ``benchmarks/peers.py``.
NAME = "bench/peers"

#: Each pair in words, by the benchmark's pair name: (system and batch, the reference's authors).
WORK = {
    "neuralgrid-b256": ("NeuralGrid 128 × 128, batch 256", "the blog's author"),
    "neuralgrid-b256-split": ("NeuralGrid 128 × 128, batch 256, split over the cores",
                              "the blog's author"),
    "neuralgrid-b64": ("NeuralGrid 128 × 128, batch 64", "the blog's author"),
    "gle": ("GLE 15k, one seed", "the GLE paper's authors"),
    "gle-10seeds": ("GLE 15k, per seed of ten", "the GLE paper's authors"),
    "ep": ("EP 784-512-10, batch 50", "Laborieux et al."),
}


def record() -> dict[str, Any] | None:
    """The published record, or ``None`` where none is published."""
    from gridlib import results

    return results.load(NAME) if results.exists(NAME) else None


def rows(rec: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per pair: the system, the work, seconds per epoch on each side (median over the
    alternating rounds), and the ratio in wall and in CPU time, with the rounds' range."""
    out = []
    for r in rec["extra"]["rows"]:
        work, ref = WORK.get(r["pair"], (r["pair"], r.get("reference", "?")))
        out.append({"work (one epoch)": work, "reference by": ref,
                    "gridlib (s)": f"{r['ours_epoch_s']:.2f}", "reference (s)": f"{r['theirs_epoch_s']:.1f}",
                    "gridlib faster by": f"{r['ratio']:.1f}× ({r['ratio_min']:.1f}–{r['ratio_max']:.1f})",
                    "CPU time": f"{r['cpu']['ratio']:.1f}×"})  # fmt: skip
    return out


def finding(rec: Mapping[str, Any]) -> str:
    """One sentence, leading with the answer: how much faster than the references gridlib
    trains, from the slowest pair to the fastest."""
    rs = sorted(rec["extra"]["rows"], key=lambda r: r["ratio"])
    lo, hi = rs[0], rs[-1]
    name = {k: v[0] for k, v in WORK.items()}
    return (f"Against the PyTorch code a user would otherwise run, gridlib trains every system "
            f"faster on the same CPU: from {lo['ratio']:.1f}× for {name.get(lo['pair'], lo['pair'])} "
            f"to {hi['ratio']:.1f}× for {name.get(hi['pair'], hi['pair'])}, measured side by side.")


__all__ = ["NAME", "WORK", "finding", "record", "rows"]
