"""gridlib against the PyTorch references a user would pick, side by side on this machine.

Optional, like the anchor code: it needs PyTorch and the references' public repositories, which
are never part of this repository. Each missing piece is reported in one line and its pairs are
skipped (exit status 0).

Pairs (the same sizes, batch, data and float32 on both sides; both use every core). gridlib's
side runs in this process as ``fit`` runs it; the reference in a warm worker process:

* ``neuralgrid-b256``: ``gridlib.neuralgrid`` 128x128 grid, Adam 1e-4, 24 Fashion-MNIST
  minibatches of 256, against kaifishr/NeuralGrid at ``0ea8bec`` (the blog's 2021 model);
* ``neuralgrid-b256-split``: the same, each minibatch split over one forced CPU device per core
  and computed in parts of 64 examples on each (``make_task``'s ``mesh`` and ``microbatches``,
  the same gradient up to summation order); the process asks XLA for these devices at start
  (:func:`gridlib.devices.cpu_mesh`), and the other pairs run on the first of them;
* ``neuralgrid-b64``: the same at batch 64, 64 minibatches;
* ``gle``: ``gridlib.gle.mnist1d.train_batch`` (the 15k network, one seed) on one MNIST-1D
  minibatch of 100 sequences x 360 steps, against unibe-cns/gle-code (``plastic_e2e.py``'s
  network and loop);
* ``gle-10seeds``: the library's 10-seed ensemble task, charged per seed (its time / 10),
  against the same one-seed reference;
* ``ep``: ``gridlib.ep`` 784-512-10, 30 free + 10 nudged steps, beta 0.1, 20 MNIST minibatches
  of 50, against Laborieux-Axel/Equilibrium-Propagation (``P_MLP`` in the setup of its
  ``check/train_mnist.sh``).

How it times: the reference runs in its own process (``benchmarks/peers_torch.py``, under the
Python named by ``GRIDLIB_PEER_PYTHON``, default ``../peer-venv/bin/python`` beside the
repository, else this one); gridlib runs here. Both run their
unit once to warm up (compilation, allocation), then the two alternate in one window: round
after round, gridlib's unit, then the reference's unit, never at the same time. The reported
time of each side is the median over the rounds, scaled to one training epoch (60k images;
MNIST-1D: 4000 sequences); the ratio is the reference's median over gridlib's, and the smallest
and largest ratio of a single round show the spread. The same ratio in CPU seconds (each
process's own, all its threads) is printed beside it: on a machine that other work shares, it
is less touched by that work than wall time, and it charges a side for threads that spin. The reference uses every core
(``GRIDLIB_PEER_THREADS`` overrides) with ``OMP_WAIT_POLICY=PASSIVE`` (see :func:`worker_env`).
Training only; evaluation excluded on both sides.

What differs between the two sides of a pair, beyond the code: what the reference adapters
change (imports of plotting and data packages, the data source, logging left out) is listed in
``benchmarks/peers_torch.py``. For EP the update rules differ as the two codes define them:
gridlib relaxes with explicit forces and a step ``eps`` and updates by SGD (its reference
configuration), the PyTorch code sets ``s = rho(dPhi/ds)`` by autograd and updates by Adam;
per relaxation step both compute the same products of the 784-512-10 network, and the update
(two passes over the weights per minibatch) is small beside 40 relaxation steps.

Set up once, outside this repository (network access to PyPI and GitHub)::

    python3.11 -m venv ../peer-venv && ../peer-venv/bin/pip install torch numpy
    mkdir -p ../peers && cd ../peers
    git clone https://github.com/kaifishr/NeuralGrid && git -C NeuralGrid checkout 0ea8bec
    git clone https://github.com/unibe-cns/gle-code
    git clone https://github.com/Laborieux-Axel/Equilibrium-Propagation
    cd -

(PyPI's default torch wheel for Linux x86-64 is the CUDA build, several GB, which runs on the
CPU too; PyTorch's CPU-only wheel is smaller. ``torchvision`` is not needed.)

Run (``GRIDLIB_PEERS`` defaults to ``../peers``, ``GRIDLIB_PEER_PYTHON`` to
``../peer-venv/bin/python``, both beside the repository)::

    GRIDLIB_PEERS=../peers GRIDLIB_PEER_PYTHON=../peer-venv/bin/python \\
        flock /tmp/gridlib-cpu.lock .venv/bin/python benchmarks/peers.py [--rounds 5] [--quick] \\
        [--pairs neuralgrid-b256,ep] [--publish]

The machine should be otherwise idle: the script notes a load average above half the cores,
and each pair's line shows the spread of its rounds.

``--publish`` saves the record as ``results/bench/peers.json`` through ``gridlib.results.save``
(``--overwrite`` where the published record has another configuration, e.g. other pairs)
(``GRIDLIB_RESULTS`` redirects it); without it nothing is written. ``--quick`` times fewer
minibatches per unit (a smoke test, not for publishing).
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from gridlib import cli, flags

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "peers_torch.py"


class Pair(NamedTuple):
    """One comparison: the reference's folder under ``GRIDLIB_PEERS``, the worker's adapter, a
    file whose presence identifies the reference (and text it must contain), and the units."""

    repo: str
    adapter: str
    marker: str
    marker_text: str
    fetch: str
    per_epoch: float  # timed units per training epoch (epoch seconds = unit seconds * per_epoch)
    ours_share: float  # the part of gridlib's unit that equals one reference unit (1/seeds)


def _pairs(quick: bool) -> dict[str, tuple[Pair, dict]]:
    """``name -> (pair, sizes)``; sizes are the unit's minibatch count and shape."""
    ng = ("NeuralGrid", "neuralgrid", "src/neural_grid_2d.py", "self.dense_in",
          "git clone https://github.com/kaifishr/NeuralGrid && git -C NeuralGrid checkout 0ea8bec")
    gle = ("gle-code", "gle", "experiments/mnist1d/networks.py", "class E2ELagMLPNet",
           "git clone https://github.com/unibe-cns/gle-code")
    ep = ("Equilibrium-Propagation", "ep", "model_utils.py", "class P_MLP",
          "git clone https://github.com/Laborieux-Axel/Equilibrium-Propagation")
    k256, k64, kgle, kep = (4, 8, 1, 4) if quick else (24, 64, 1, 20)
    return {
        "neuralgrid-b256": (Pair(*ng, 60000 // 256 / k256, 1.0), {"batch": 256, "k": k256}),
        "neuralgrid-b256-split": (Pair(*ng, 60000 // 256 / k256, 1.0),
                                  {"batch": 256, "k": k256, "split": True}),
        "neuralgrid-b64": (Pair(*ng, 60000 // 64 / k64, 1.0), {"batch": 64, "k": k64}),
        "gle": (Pair(*gle, 4000 / 100 / kgle, 1.0), {"batch": 100, "k": kgle, "seeds": 1}),
        "gle-10seeds": (Pair(*gle, 4000 / 100 / kgle, 0.1), {"batch": 100, "k": kgle, "seeds": 10}),
        "ep": (Pair(*ep, 60000 / 50 / kep, 1.0), {"batch": 50, "k": kep}),
    }


# --------------------------------------------------------------------------------------------
# the arithmetic (tested on fake timings in tests/test_peers.py)


def summarize(ours_s: list[float], theirs_s: list[float], per_epoch: float,
              ours_share: float = 1.0) -> dict:  # fmt: skip
    """Epoch seconds and the ratio from alternated timings of one unit on each side.

    ``ours_s`` and ``theirs_s``: wall seconds of each round's unit (same length, the rounds
    alternate); ``per_epoch``: units per training epoch; ``ours_share``: the part of gridlib's
    unit that equals one reference unit (0.1 when gridlib's unit trains 10 seeds and the
    reference's one). Returns the medians scaled to an epoch, the ratio reference / gridlib of
    the medians, and the smallest, median and largest ratio of a single round (a round's two
    timings are adjacent in time, so its ratio is the least touched by load that drifts).
    """
    if not ours_s or len(ours_s) != len(theirs_s):
        raise ValueError(f"need the same number (> 0) of rounds on both sides, got "
                         f"{len(ours_s)} and {len(theirs_s)}")  # fmt: skip
    if min(ours_s) <= 0 or min(theirs_s) <= 0:
        raise ValueError("timings must be positive")
    ours = [t * ours_share for t in ours_s]
    ours_epoch = statistics.median(ours) * per_epoch
    theirs_epoch = statistics.median(theirs_s) * per_epoch
    rounds = [b / a for a, b in zip(ours, theirs_s, strict=True)]
    return {"ours_epoch_s": ours_epoch, "theirs_epoch_s": theirs_epoch,
            "ratio": theirs_epoch / ours_epoch, "ratio_min": min(rounds),
            "ratio_round_median": statistics.median(rounds), "ratio_max": max(rounds),
            "rounds": len(rounds)}  # fmt: skip


def alternate(ours: Callable[[], T], theirs: Callable[[], T], rounds: int) -> tuple[list[T], list[T]]:
    """Run ``ours()`` then ``theirs()`` ``rounds`` times; each returns its unit's seconds
    (here ``(wall, CPU)`` seconds); returns both lists."""
    a, b = [], []
    for _ in range(rounds):
        a.append(ours())
        b.append(theirs())
    return a, b


# --------------------------------------------------------------------------------------------
# what is there


def peers_dir() -> Path:
    """``$GRIDLIB_PEERS``, else ``../peers`` beside the repository."""
    return Path(os.environ.get("GRIDLIB_PEERS") or REPO.parent / "peers").expanduser()


def find_torch() -> tuple[str | None, str]:
    """``(python, version)`` of a Python with PyTorch, or ``(None, why)``: ``$GRIDLIB_PEER_PYTHON``,
    else ``../peer-venv/bin/python`` beside the repository if it exists, else this Python."""
    default = REPO.parent / "peer-venv" / "bin" / "python"
    python = os.environ.get("GRIDLIB_PEER_PYTHON") or (str(default) if default.exists() else sys.executable)
    try:
        out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{python} did not run ({e.__class__.__name__})"
    if out.returncode != 0:
        return None, f"{python} has no PyTorch"
    return python, out.stdout.strip()


def missing_reference(pair: Pair, root: Path) -> str | None:
    """Why the reference of ``pair`` cannot be used (one line), or ``None``."""
    marker = root / pair.repo / pair.marker
    if not marker.is_file():
        return f"no {pair.repo} at {root / pair.repo} (in {root}: {pair.fetch})"
    if pair.marker_text not in marker.read_text(errors="replace"):
        return f"{root / pair.repo} is not the version compared here (in {root}: {pair.fetch})"
    return None


def reference_commit(path: Path) -> str:
    """The commit checked out in ``path`` (``git rev-parse HEAD``), or ``"unknown"``."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


# --------------------------------------------------------------------------------------------
# gridlib's side and the shared data


def _sync(fn):
    import jax

    def run() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        return time.perf_counter() - t0, time.process_time() - c0

    return run


def build(name: str, sizes: dict) -> tuple[Callable[[], float], dict]:
    """gridlib's timed unit for pair ``name`` (warmed up) and the arrays the worker gets."""
    import jax
    import jax.numpy as jnp

    from gridlib import devices
    from gridlib.experiment import make_epoch_chunk

    k, b = sizes["k"], sizes["batch"]
    rng = np.random.default_rng(0)
    if name.startswith("neuralgrid"):
        from gridlib.neuralgrid import experiments as ngx

        splits = ngx.load_splits("fashion_mnist")
        idx = rng.permutation(len(splits.x_train))[: k * b].reshape(k, b)
        x = splits.x_train[idx].astype(np.float32)
        y = splits.y_train[idx].astype(np.int64)
        cfg = ngx.Config(height=128, width=128, batch_size=b)
        split = {}
        if sizes.get("split"):
            mesh = devices.cpu_mesh()
            split = {"mesh": mesh, "microbatches": max(1, b // mesh.size // 64)}
        task = ngx.make_task(cfg, 60000 // b, **split)
        state = task.init(jax.random.PRNGKey(0))
        chunk = make_epoch_chunk(task.train_step)
        args = (state, jnp.asarray(x), jnp.asarray(y, jnp.int32),
                jnp.arange(k, dtype=jnp.uint32), jax.random.PRNGKey(1))  # fmt: skip
        unit = _sync(partial(chunk, *args))
        shared = {"x": x, "y": y, "grid": np.array([128, 128])}
    elif name.startswith("gle"):
        from gridlib import data
        from gridlib.gle import mnist1d as m1d
        from gridlib.gle import packed

        setup = m1d.setup_for("e2e15k", schedule=False)
        splits = data.load_mnist1d(n_train=b * k, n_test=b, final_seq_length=setup.seq_len)
        x = splits.x_train.reshape(k, b, -1).astype(np.float32)
        y = splits.y_train.reshape(k, b).astype(np.int64)
        xb, yb = jnp.asarray(x), jnp.asarray(y, jnp.int32)
        if sizes["seeds"] == 1:
            cfg = m1d.net_config(setup)
            step = jax.jit(partial(m1d.train_batch, cfg=cfg, setup=setup),
                           compiler_options=packed.COMPILER_OPTIONS)  # fmt: skip
            s0 = m1d.seed_init(jax.random.PRNGKey(0), setup)
        else:
            task = m1d.make_task(setup, tuple(range(sizes["seeds"])), n_train=b * k)
            ens = jax.jit(task.train_step, compiler_options=task.compiler_options)
            step = lambda s, xi, yi: ens(s, xi, yi, None)
            s0 = task.init(None)

        def batches():
            s = s0
            for i in range(k):
                s, _ = step(s, xb[i], yb[i])
            return s

        unit = _sync(batches)
        shared = {"x": x, "y": y, "seq_len": np.array(setup.seq_len)}
    elif name == "ep":
        from gridlib import data, ep
        from gridlib.ep import experiments as epx

        cfg = ep.check_config(ep.EPConfig(sizes=(784, 512, 10), n_free=30, n_nudge=10, beta=0.1,
                                          alphas=(0.05, 0.05), sign="fixed"))  # fmt: skip
        mnist = data.load_mnist(n_train=k * b, n_test=1)
        x = mnist.x_train.reshape(k, b, -1).astype(np.float32)
        y = mnist.y_train.reshape(k, b).astype(np.int64)
        chunk = make_epoch_chunk(partial(epx.train_step, cfg=cfg))
        args = (epx.init_state(jax.random.PRNGKey(0), cfg), jnp.asarray(x),
                jnp.asarray(y, jnp.int32), jnp.arange(k, dtype=jnp.uint32),
                jax.random.PRNGKey(1))  # fmt: skip
        unit = _sync(partial(chunk, *args))
        shared = {"x": x, "y": y, "sizes": np.array(cfg.sizes), "t1": np.array(cfg.n_free),
                  "t2": np.array(cfg.n_nudge), "beta": np.array(cfg.beta)}  # fmt: skip
    else:
        raise ValueError(f"unknown pair {name!r}")
    unit()  # compile and warm up
    return unit, shared


def worker_env() -> dict[str, str]:
    """The reference worker's threading: every core (``GRIDLIB_PEER_THREADS`` overrides), and
    OpenMP threads that sleep while they wait (``OMP_WAIT_POLICY=PASSIVE`` unless set): with
    PyTorch's default spinning threads, a small product on two cores that other work also uses
    runs several times slower than on one core, which would flatter gridlib."""
    return {"GRIDLIB_PEER_THREADS": os.environ.get("GRIDLIB_PEER_THREADS", str(len(os.sched_getaffinity(0)))),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


class Worker:
    """The reference's warm process (``benchmarks/peers_torch.py``): ``run()`` times one unit
    there. The minibatches travel through its stdin; what it prints goes to a scratch file."""

    def __init__(self, python: str, adapter: str, ref: Path, shared: dict):
        buf = io.BytesIO()
        np.savez(buf, **shared)
        payload = buf.getvalue()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err,
                                     env={**os.environ, **worker_env()})  # fmt: skip
        header = json.dumps({"adapter": adapter, "ref": str(ref), "nbytes": len(payload)})
        self._send(header.encode() + b"\n" + payload)
        self.banner = self._read()

    def _send(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._read()  # raises with the worker's last words

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._err.seek(0)
            tail = self._err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"the reference worker stopped (exit {self.proc.returncode}):\n{tail}")
        return line.decode().strip()

    def run(self) -> tuple[float, float]:
        self._send(b"run\n")
        wall, cpu = self._read().split()
        return float(wall), float(cpu)

    def close(self) -> None:
        if self.proc.poll() is None:
            self._send(b"quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self._err.close()


def parser() -> cli.OneLineParser:
    """This script's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/peers.py", description=__doc__.split("\n")[0])
    p.add_flag("--rounds", flags.integer(1, 100), 3, help="alternating rounds (median counts)")
    p.add_argument("--pairs", default="neuralgrid-b256,neuralgrid-b256-split,neuralgrid-b64,gle,gle-10seeds,ep",
                   help="comma-separated pairs to time")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="fewer minibatches per unit (smoke test)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --publish: replace the published record even where its config differs")
    p.add_argument("--publish", action="store_true",
                   help="save results/bench/peers.json (nothing is written without it)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    table = _pairs(args.quick)
    names = [n.strip() for n in args.pairs.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise flags.FlagError(f"--pairs: unknown {unknown}; choose from {sorted(table)}")
    python, torch_version = find_torch()
    if python is None:
        print(f"skip all: {torch_version} (set GRIDLIB_PEER_PYTHON to a Python with PyTorch)")
        return 0
    root = peers_dir()
    if any(table[n][1].get("split") and missing_reference(table[n][0], root) is None for n in names):
        from gridlib import devices

        devices.cpu_mesh()  # one CPU device per core, before any pair uses JAX
    rows = []
    load_before = None
    cores = len(os.sched_getaffinity(0))
    for name in names:
        pair, sizes = table[name]
        why = missing_reference(pair, root)
        if why is not None:
            print(f"skip {name}: {why}")
            continue
        if load_before is None:
            load_before = os.getloadavg()
            if load_before[0] > 0.5 * cores:
                print(f"note: load average {load_before[0]:.1f} on {cores} cores before the first "
                      "pair: other work shares the cores, so the ratios will scatter (see each "
                      "pair's rounds)", flush=True)  # fmt: skip
        unit, shared = build(name, sizes)
        worker = Worker(python, pair.adapter, root / pair.repo, shared)
        try:
            ours, theirs = alternate(unit, worker.run, args.rounds)
        finally:
            worker.close()
        wall = summarize([o[0] for o in ours], [t[0] for t in theirs], pair.per_epoch, pair.ours_share)
        cpu = summarize([o[1] for o in ours], [t[1] for t in theirs], pair.per_epoch, pair.ours_share)
        row = {"pair": name, **sizes, **wall, "cpu": cpu,
               "ours_unit_s": ours, "theirs_unit_s": theirs, "worker": worker.banner,
               "reference": pair.repo, "reference_commit": reference_commit(root / pair.repo)}  # fmt: skip
        rows.append(row)
        print(f"{name:16s} gridlib {row['ours_epoch_s']:8.2f} s/epoch   reference "
              f"{row['theirs_epoch_s']:8.2f} s/epoch   ratio {row['ratio']:6.1f}x "
              f"(rounds {row['ratio_min']:.1f}-{row['ratio_max']:.1f}x, "
              f"median {row['ratio_round_median']:.1f}x; CPU time {cpu['ratio']:.1f}x)",
              flush=True)  # fmt: skip
    if not rows:
        print("nothing measured, nothing saved")
        return 0
    load = os.getloadavg()
    print(f"(median of {args.rounds} alternating rounds; {os.cpu_count()} cores; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch {torch_version})")
    if args.publish:
        import jax

        from gridlib import results

        config = {"pairs": names, "rounds": args.rounds, "quick": args.quick,
                  "torch": torch_version, "cores": cores, "machine": platform.machine(),
                  "jax_devices": [str(d) for d in jax.devices()], **worker_env()}  # fmt: skip
        metrics = {**{f"{r['pair']}_ratio": r["ratio"] for r in rows},
                   **{f"{r['pair']}_cpu_ratio": r["cpu"]["ratio"] for r in rows}}
        extra = {"rows": rows, "load_average_before": list(load_before),
                 "load_average_after": list(load)}  # fmt: skip
        print("->", results.save("bench/peers", config=config, metrics=metrics, extra=extra,
                                 publish=True, overwrite=args.overwrite or None))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
