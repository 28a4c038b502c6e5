"""The book's systems on one GPU: the records of ``benchmarks/device.sh``, as a table and a finding.

The book's runs are made on a 2-core CPU. When a GPU is lent, ``benchmarks/device.sh`` runs the
same library code there (``benchmarks/device_check.py``: one subprocess per part) and saves one
record per part under ``device/<part>``, each with the GPU's name in ``extra.device``:

- ``gridnet``: the seed preset (a 32^3 grid): forward and backward at batch 256, and one outer
  step at the size of the seed's own CUDA benchmark (32^3, batch 2, 10 inner steps);
- ``neuralgrid``: one Adam epoch of the 128 x 128 grid on Fashion-MNIST at batch 256, against the
  original's 5.41 s per epoch on its GPU;
- ``gle``: the 10-seed ``vmap`` ensemble of the 15k MNIST-1D network, in sequences per second.

:func:`records` reads the published ones, :func:`rows` tabulates them and :func:`finding` says
in one sentence what they show. Nothing here times anything: the numbers are the records'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridlib import report

#: The parts of the device check, in the order the book shows them.
PARTS = ("neuralgrid", "gridnet", "gle")

Record = dict[str, Any]


def records() -> dict[str, Record]:
    """The published device records that exist, by part (an empty dict when none is)."""
    from gridlib import results

    return {p: results.load(f"device/{p}") for p in PARTS if results.exists(f"device/{p}")}


def gpu(recs: Mapping[str, Record]) -> str:
    """The accelerator the records were measured on (the first record's), e.g. ``"NVIDIA H100"``."""
    kinds = {r["extra"]["device"]["device_kind"] for r in recs.values()}
    return ", ".join(sorted(kinds)) or "no accelerator"


def _sd(mean: float, sd: float | None, digits: int = 2) -> str:
    return report.plus_minus(mean, sd, digits)


def rows(recs: Mapping[str, Record]) -> list[dict[str, str]]:
    """One row per measurement: the system, the work, the time on the GPU, and the reference
    that measures the same work (the original's code, where one was timed), with the ratio."""
    out = []
    if "neuralgrid" in recs:
        m = recs["neuralgrid"]["metrics"]
        ref = (f"the original (PyTorch, its GPU): {_sd(m['original_gpu_epoch_s'], m['original_gpu_epoch_s_std'])} s, "
               f"{m['speedup_vs_original']:.1f}× as long")  # fmt: skip
        out.append({"system": "NeuralGrid 128 × 128", "work": "one Adam epoch of Fashion-MNIST, batch 256",
                    "on the GPU": f"{_sd(m['ours_epoch_s'], m['ours_epoch_s_std'])} s",
                    "reference": ref})  # fmt: skip
        if "unfold_epoch_s" in m:
            out.append({"system": "NeuralGrid 128 × 128", "work": "the same epoch, the original's unfold form (in JAX)",
                        "on the GPU": f"{_sd(m['unfold_epoch_s'], m['unfold_epoch_s_std'])} s",
                        "reference": f"{m['unfold_epoch_s'] / m['ours_epoch_s']:.2f}× our form's time"})  # fmt: skip
    if "gridnet" in recs:
        c, m = recs["gridnet"]["config"], recs["gridnet"]["metrics"]
        lo, hi = m["seed_cuda_outer_step_ms"]
        out.append({"system": f"gridnet {c['grid']}³", "work": "one outer step, batch 2, 10 inner steps, forward + backward",
                    "on the GPU": f"{m['outer_step_ms']:.2f} ms",
                    "reference": f"the original's CUDA kernel: {lo}–{hi} ms"})  # fmt: skip
        out.append({"system": f"gridnet {c['grid']}³", "work": f"forward + backward of the network, batch {c['batch']}",
                    "on the GPU": f"{m['fwd_bwd_ms_per_example']:.2f} ms per example", "reference": "–"})  # fmt: skip
    if "gle" in recs:
        c, m = recs["gle"]["config"], recs["gle"]["metrics"]
        work = f"{c['n_seeds']} seeds at once, batch {c['batch']}, sequences of {c['seq_len']} steps"
        from gridlib.gle.summary import ARCH_LABELS

        out.append({"system": ARCH_LABELS.get(c["arch"], f"GLE {c['arch']}"), "work": work,
                    "on the GPU": f"{m['seed_examples_per_s']:,.0f} sequences per second (all seeds)",
                    "reference": (f"the published run ({c['n_seeds']} seeds × 150 epochs) would take "
                                  f"{m['published_run_hours']:.2f} h")})  # fmt: skip
    return out


def finding(recs: Mapping[str, Record]) -> str:
    """One sentence, leading with the answer: how the library's own code fares on the GPU
    against the originals' timed GPU code (empty when no record is published)."""
    if not recs:
        return ""
    parts = []
    if "neuralgrid" in recs:
        m = recs["neuralgrid"]["metrics"]
        parts.append(f"a NeuralGrid epoch takes {m['ours_epoch_s']:.2f} s; the original's author "
                     f"measured {m['original_gpu_epoch_s']} s on an unnamed GPU, "
                     f"{m['speedup_vs_original']:.1f} times as long")  # fmt: skip
    if "gridnet" in recs:
        m = recs["gridnet"]["metrics"]
        lo, hi = m["seed_cuda_outer_step_ms"]
        where = ("within" if lo <= m["outer_step_ms"] <= hi else
                 "faster than" if m["outer_step_ms"] < lo else "slower than")  # fmt: skip
        parts.append(f"gridnet's outer step, plain JAX, takes {m['outer_step_ms']:.2f} ms, {where} the "
                     f"{lo}–{hi} ms of the original's hand-written CUDA kernel")  # fmt: skip
    return (f"The same library code runs on a GPU unchanged: on one {gpu(recs)}, "
            + "; ".join(parts) + ".")


__all__ = ["PARTS", "finding", "gpu", "records", "rows"]
