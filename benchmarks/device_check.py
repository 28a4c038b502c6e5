"""One accelerator check (issue #18): gridnet's seed preset, NeuralGrid 128 x 128, the GLE ensemble.

    bash benchmarks/device.sh [--quick]          # what the device machine runs (picks the Python)
    python benchmarks/device_check.py [--quick] [--parts gridnet,neuralgrid,gle] [--out DIR]
    python benchmarks/device_check.py --pack     # here: copy the data sets for the device machine

Three parts, each in its own subprocess with its own time limit, so that one that fails, hangs
or is killed is reported and the others still run:

- ``gridnet``: the seed preset (32^3, S=8, I=1, O=64) -- forward+backward of the whole network at
  batch 256, one outer step of the seed's CUDA benchmark (32^3, batch 2, I=10), then a short
  AdamW run on MNIST (two epochs over a subset sized from the measured step time).
- ``neuralgrid``: 128 x 128 grid, batch 256, one whole epoch of Adam steps per timed call (ours),
  and the unfold form on part of an epoch, against the original's 5.41 s per epoch on a GPU.
- ``gle``: the 15k network's 10-seed ensemble (``vmap``), examples per second, on random
  sequences of the published length (the values do not change the work).

First a probe prints ``jax.devices()`` and says plainly when JAX runs on a CPU; full sizes then
stop there (``--allow-cpu`` runs them anyway), so ``make bench`` on a laptop only prints that.
Each part saves its record through :func:`gridlib.results.save` (provenance: command, commit,
machine, JAX backend and devices; ``extra.device`` adds the device kind, the peak device memory
and ``DEVICE_CHECK_COMMIT`` if set) under ``DIR/results/device/<part>.json``, after each stage,
so a part stopped by its time limit keeps what it measured; gridnet's training shrinks, or is
skipped, when the limit is near. ``DIR`` is ``--out``, else ``$OUT`` (the device machine copies
it back), else ``runs/device-check``; nothing is ever written into ``results/``. A summary table
closes the run and ``DIR/device_check_summary.json`` holds it.

``--quick`` (or ``DEVICE_CHECK_QUICK=1``) runs tiny sizes, about a minute on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from gridlib import cli, flags, storage

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("gridnet", "neuralgrid", "gle")
MARKER = "DEVICE_CHECK_RESULT "
PACK_DIR = ROOT / "runs" / "device-pack"
PACK_DATASETS = ("mnist", "fashion_mnist")
#: What travels to the device machine at most (its working-tree limit), and where to warn.
TREE_LIMIT_MIB, TREE_WARN_MIB = 64, 60

#: Sizes of the full check (one accelerator, under 8 minutes in all) and of ``--quick``.
PLANS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "gridnet": {"preset": "seed", "batch": 256, "reps": 3, "step_grid": 32, "step_block": 8,
                    "step_inner": 10, "step_batch": 2, "step_reps": 10, "train_budget_s": 60.0,
                    "min_steps": 4, "max_steps": 468, "n_test": 2000},
        "neuralgrid": {"height": 128, "width": 128, "batch": 256, "steps": 234, "repeats": 3,
                       "unfold_steps": 32, "unfold_repeats": 2},
        "gle": {"arch": "e2e15k", "n_seeds": 10, "seq_len": 360, "batch": 100, "n_batches": 4,
                "repeats": 2},
    },
    "quick": {
        "gridnet": {"preset": "tiny", "batch": 8, "reps": 2, "step_grid": 8, "step_block": 4,
                    "step_inner": 2, "step_batch": 2, "step_reps": 2, "train_budget_s": 2.0,
                    "min_steps": 4, "max_steps": 4, "n_test": 100},
        "neuralgrid": {"height": 16, "width": 16, "batch": 32, "steps": 4, "repeats": 2,
                       "unfold_steps": 2, "unfold_repeats": 1},
        "gle": {"arch": "e2e15k", "n_seeds": 2, "seq_len": 40, "batch": 20, "n_batches": 1,
                "repeats": 1},
    },
}  # fmt: skip
#: Seconds each subprocess may take, and the whole run (the parts share what is left).
TIMEOUTS = {"full": {"probe": 60, "gridnet": 210, "neuralgrid": 120, "gle": 90},
            "quick": {"probe": 60, "gridnet": 240, "neuralgrid": 150, "gle": 120}}  # fmt: skip
#: quick's limits are generous: on a shared 2-core machine compiling alone can take minutes.
BUDGET_S = {"full": 450, "quick": 540}
#: gridnet of ``--quick``: an 8^3 grid in blocks of 4^3, two outer steps (compiles in seconds).
TINY_GRIDNET_FIELDS = {"grid": 8, "block": 4, "inner": 1, "outer": 2, "activation": "silu"}


def plan(quick: bool) -> dict[str, dict[str, Any]]:
    """The sizes of every part (see :data:`PLANS`)."""
    return PLANS["quick" if quick else "full"]


# --------------------------------------------------------------------------- the parts (children)


def _device_info() -> dict[str, Any]:
    """The accelerator as JAX sees it, with the peak memory this process used on device 0."""
    import jax

    dev = jax.devices()[0]
    info: dict[str, Any] = {"backend": jax.default_backend(), "platform": dev.platform,
                            "device_kind": getattr(dev, "device_kind", "?"),
                            "devices": [str(d) for d in jax.devices()],
                            "jax_version": jax.__version__}  # fmt: skip
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend reports memory
        stats = {}
    if "peak_bytes_in_use" in stats:
        info["peak_gib"] = stats["peak_bytes_in_use"] / 2**30
    if "bytes_limit" in stats:
        info["memory_limit_gib"] = stats["bytes_limit"] / 2**30
    commit = os.environ.get("DEVICE_CHECK_COMMIT")
    if commit:  # the tree on the device machine may have no .git: the caller names the commit
        info["commit_given"] = commit
    return info


def _best_time(f, *args, reps: int) -> tuple[float, float]:
    """``(best seconds of reps calls, seconds of the first call, compile included)``."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best, first


def _time_left() -> float:
    """Seconds until this part's time limit (``DEVICE_CHECK_DEADLINE``, set by the driver)."""
    deadline = os.environ.get("DEVICE_CHECK_DEADLINE")
    return float(deadline) - time.time() if deadline else float("inf")


def _cached(dataset: str) -> bool:
    """Whether ``dataset`` is in gridlib's data cache already: the device machine reaches no
    network, and the loaders' fallbacks (pip, OpenML) would only spend its time failing."""
    from gridlib import data

    if dataset == "mnist":
        return (data.cache_dir() / data.MNIST_FILE).is_file()
    folder = data.cache_dir() / "fashion-mnist"
    return data.FASHION_SYSTEM_DIR.is_dir() or all((folder / f).is_file() for f in data.FASHION_SHA256)


def _splits(dataset: str, n_train: int, n_test: int):
    """``(splits, note)``: the real data set if cached, else random images of the same shape."""
    import numpy as np

    from gridlib import data

    if _cached(dataset):
        return data.load(dataset, n_train=n_train, n_test=n_test), f"{dataset} (real)"
    rng = np.random.default_rng(0)
    x, xt = rng.random((n_train, 784), np.float32), rng.random((n_test, 784), np.float32)
    y, yt = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)
    note = f"random images and labels ({dataset} is not in {data.cache_dir()}; accuracy is meaningless)"
    return data.make_splits(x, y, xt, yt), note


def _bench_row(name: str, pick) -> dict[str, Any] | None:
    """A published CPU benchmark record's metrics (``results/bench/<name>.json``), if present."""
    from gridlib import results

    try:
        return pick(results.read(results.path(f"bench/{name}")))
    except (OSError, KeyError, StopIteration, ValueError):
        return None


def part_gridnet(p: dict[str, Any], name: str) -> dict[str, Any]:
    """The seed preset: forward+backward timing, one outer step, a short training run."""
    import jax
    import jax.numpy as jnp

    from gridlib import gridnet as gn
    from gridlib import results
    from gridlib.gridnet import experiments as gx
    from gridlib.gridnet.summary import SEED_CUDA_STEP_MS

    cfg = gx.PRESETS.get(p["preset"]) or gn.Config(**TINY_GRIDNET_FIELDS)
    params = gn.init(jax.random.PRNGKey(0), cfg)
    x = jax.random.uniform(jax.random.PRNGKey(1), (p["batch"], 784))
    y = jnp.arange(p["batch"]) % 10

    def loss(q):
        logp = jax.nn.log_softmax(gn.forward(q, x, cfg))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    fb_s, fb_first = _best_time(jax.jit(jax.grad(loss)), params, reps=p["reps"])
    print(f"forward+backward, {p['preset']} preset, batch {p['batch']}: {1e3 * fb_s:.1f} ms "
          f"({1e3 * fb_s / p['batch']:.3f} ms/example; first call {fb_first:.1f} s)", flush=True)

    g, b = p["step_grid"], p["step_block"]
    h = jax.random.normal(jax.random.PRNGKey(2), (p["step_batch"], g, g, g))
    cells = gn.init_cells(jax.random.PRNGKey(3), g)
    step_grad = jax.jit(jax.grad(lambda h, c: jnp.sum(jnp.sin(gn.step(h, c, b, p["step_inner"]))), (0, 1)))
    st_s, _ = _best_time(step_grad, h, cells, reps=p["step_reps"])
    lo, hi = SEED_CUDA_STEP_MS
    print(f"one outer step {g}^3, batch {p['step_batch']}, I={p['step_inner']} (fwd+bwd): "
          f"{1e3 * st_s:.2f} ms per call (the seed's CUDA kernel, 32^3, batch 2, I=10: {lo}-{hi} ms)",
          flush=True)  # fmt: skip

    cpu = _bench_row("gridnet", lambda r: next(x for x in r["metrics"]["rows"] if x["name"] == "seed preset"))
    metrics: dict[str, Any] = {"fwd_bwd_ms": 1e3 * fb_s, "fwd_bwd_ms_per_example": 1e3 * fb_s / p["batch"],
                               "fwd_bwd_first_call_s": fb_first, "outer_step_ms": 1e3 * st_s,
                               "seed_cuda_outer_step_ms": list(SEED_CUDA_STEP_MS)}  # fmt: skip
    if cpu is not None and p["preset"] == "seed":
        metrics["cpu_bench_ms_per_example"] = cpu["fast_ms_per_example"]
    splits, data_note = _splits("mnist", p["batch"] * (p["max_steps"] // 2), p["n_test"])
    config = {**cfg._asdict(), **p, "data": data_note}
    # the timings are kept even if the training below runs out of time (same config: same file)
    path = results.save(name, config=config, metrics=metrics, seed=0, extra={"device": _device_info()})

    # Two epochs over a subset sized so that training takes about train_budget_s (less when this
    # part's time limit is near: compiling the training step costs about a first call again);
    # the second epoch's time has no compilation in it.
    est = 1.15 * fb_s  # + AdamW
    budget = min(p["train_budget_s"], _time_left() - 2.5 * fb_first - 20)
    steps = int(min(p["max_steps"], max(p["min_steps"], budget / est)))
    per_epoch = max(1, steps // 2)
    if budget < p["min_steps"] * est:
        print(f"training skipped: {_time_left():.0f} s left in this part's limit", flush=True)
        acc, result = None, "training skipped (time)"
        history = None
    else:
        n = per_epoch * p["batch"]
        run = gx.train(cfg, splits._replace(x_train=splits.x_train[:n], y_train=splits.y_train[:n]),
                       epochs=2, batch_size=p["batch"], seed=0, run_dir=None, progress=False, name=name)
        epoch2_s, acc, history = run.history["epoch_time_s"][-1], run.history["test/acc"][-1], run.history
        print(f"training: 2 epochs x {per_epoch} steps of {p['batch']} on {data_note}: test accuracy "
              f"{100 * acc:.1f} % on {p['n_test']}, {per_epoch / epoch2_s:.2f} steps/s (epoch 2)", flush=True)
        metrics.update(train_steps=2 * per_epoch, train_steps_per_s=per_epoch / epoch2_s, test_acc=acc,
                       train_loss_last_epoch=run.history["train/loss"][-1])  # fmt: skip
        result = f"train {metrics['train_steps_per_s']:.3g} steps/s, test acc {100 * acc:.1f} %"
    path = results.save(name, config=config, metrics=metrics, history=history, seed=0,
                        extra={"device": _device_info()})  # fmt: skip
    like_seed = (g, p["step_batch"], p["step_inner"]) == (32, 2, 10)  # the seed's CUDA benchmark
    ref = f"seed CUDA outer step {lo}-{hi} ms: ours {1e3 * st_s:.2f} ms" if like_seed else "none like for like"
    if "cpu_bench_ms_per_example" in metrics:
        ref += f"; CPU bench {metrics['cpu_bench_ms_per_example']:.1f} ms/example"
    return {"result": f"fwd+bwd {metrics['fwd_bwd_ms_per_example']:.3g} ms/example (B={p['batch']}); {result}",
            "reference": ref, "file": str(path), "data": data_note}  # fmt: skip


def part_neuralgrid(p: dict[str, Any], name: str) -> dict[str, Any]:
    """Epoch time of the 128 x 128 grid at batch 256 (ours; unfold extrapolated) vs the original."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gridlib import results
    from gridlib.experiment import make_epoch_chunk
    from gridlib.neuralgrid import experiments as ngx

    n_train = 60000
    per_epoch = n_train // p["batch"]
    splits, data_note = _splits("fashion_mnist", n_train, 100)
    cfg = ngx.Config(height=p["height"], width=p["width"], batch_size=p["batch"])
    config = {**cfg._asdict(), **p, "n_train": n_train, "data": data_note}
    _, _, batch, blog_s, blog_sd = next(r for r in ngx.BLOG_TIMING if r[:3] == ("unfold", "GPU", 256))
    like_blog = (p["height"], p["width"], p["batch"]) == (128, 128, 256)
    cpu = _bench_row("neuralgrid", lambda r: r["metrics"]["ours_b256_epoch_s"]) if like_blog else None
    metrics: dict[str, Any] = {"original_gpu_epoch_s": blog_s, "original_gpu_epoch_s_std": blog_sd,
                               "comparable_to_original": like_blog}  # fmt: skip
    if cpu is not None:
        metrics["cpu_bench_epoch_s"] = cpu
    rows: list[dict[str, Any]] = []
    for form, steps, repeats in (("fast", p["steps"], p["repeats"]), ("unfold", p["unfold_steps"], p["unfold_repeats"])):
        task = ngx.make_task(cfg, per_epoch, form=form)
        state = task.init(jax.random.PRNGKey(0))
        chunk = make_epoch_chunk(task.train_step)
        idx = np.random.default_rng(0).integers(0, len(splits.x_train), (steps, p["batch"]))
        xs, ys = jnp.asarray(splits.x_train[idx]), jnp.asarray(splits.y_train[idx])
        ids, key = jnp.arange(steps, dtype=jnp.uint32), jax.random.PRNGKey(1)
        t0 = time.perf_counter()
        jax.block_until_ready(chunk(state, xs, ys, ids, key))
        first = time.perf_counter() - t0
        epochs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            state, _ = chunk(state, xs, ys, ids, key)
            jax.block_until_ready(state)
            epochs.append((time.perf_counter() - t0) / steps * per_epoch)
        row = {"form": "ours" if form == "fast" else form, "batch": p["batch"], "steps_timed": steps,
               "whole_epoch": steps == per_epoch, "epoch_s": float(np.mean(epochs)),
               "epoch_s_std": float(np.std(epochs, ddof=1)) if len(epochs) > 1 else 0.0,
               "examples_per_s": per_epoch * p["batch"] / float(np.mean(epochs)),
               "first_call_s": first}  # fmt: skip
        rows.append(row)
        how = "whole epoch" if row["whole_epoch"] else f"{steps} steps, extrapolated"
        print(f"{row['form']:6s} {p['height']}x{p['width']} B={p['batch']}: {row['epoch_s']:.3f} "
              f"± {row['epoch_s_std']:.3f} s/epoch ({how}, x{repeats})", flush=True)
        metrics[f"{row['form']}_epoch_s"] = row["epoch_s"]
        metrics[f"{row['form']}_epoch_s_std"] = row["epoch_s_std"]
        if form == "fast" and like_blog:
            metrics["speedup_vs_original"] = blog_s / row["epoch_s"]
        # saved after each form (same config: same file), so ours survives a slow unfold
        path = results.save(name, config=config, metrics=metrics, extra={"rows": rows, "device": _device_info()})
    ours = metrics["ours_epoch_s"]
    print(f"the original (PyTorch unfold, GPU, 128x128, batch {batch}): {blog_s} ± {blog_sd} s/epoch; "
          + (f"ours here: {ours:.3f} s, {blog_s / ours:.1f}x the original's speed" if like_blog
             else "not comparable at quick sizes"), flush=True)  # fmt: skip
    ref = f"original {blog_s} s/epoch (GPU, unfold): {blog_s / ours:.1f}x" if like_blog else "none like for like"
    if cpu is not None:
        ref += f"; CPU bench {cpu:.2f} s"
    return {"result": f"{ours:.3g} s/epoch ours, {metrics['unfold_epoch_s']:.3g} s unfold "
                      f"({p['height']}x{p['width']}, B={p['batch']})",
            "reference": ref, "file": str(path), "data": data_note}  # fmt: skip


def part_gle(p: dict[str, Any], name: str) -> dict[str, Any]:
    """Examples per second of the vmapped seed ensemble (training only, one jitted chunk)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gridlib import results
    from gridlib.experiment import make_epoch_chunk
    from gridlib.gle import mnist1d as m1d

    setup = m1d.setup_for(p["arch"], schedule=False, seq_len=p["seq_len"], batch=p["batch"])
    seeds = m1d.PAPER_SEEDS[: p["n_seeds"]]
    task = m1d.make_task(setup, seeds, n_train=setup.batch * p["n_batches"])
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(p["n_batches"], setup.batch, setup.seq_len)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 10, (p["n_batches"], setup.batch)))
    ids, key = jnp.arange(p["n_batches"], dtype=jnp.uint32), jax.random.PRNGKey(0)
    chunk = make_epoch_chunk(task.train_step)
    state = task.init(key)
    t0 = time.perf_counter()
    state, _ = chunk(state, xs, ys, ids, key)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    wall = float("inf")
    for _ in range(p["repeats"]):
        t0 = time.perf_counter()
        state, _ = chunk(state, xs, ys, ids, key)
        jax.block_until_ready(state)
        wall = min(wall, time.perf_counter() - t0)
    examples = p["n_batches"] * setup.batch
    ex_s = examples / wall
    seed_steps = ex_s * len(seeds) * setup.seq_len
    # the published run: 150 epochs of 4000 sequences of 360 steps
    full_h = 150 * 4000 * 360 / (ex_s * setup.seq_len) / 3600
    print(f"GLE {p['arch']}, {len(seeds)} seeds (vmap), batch {setup.batch}, {setup.seq_len} steps: "
          f"{ex_s:.1f} examples/s = {ex_s * len(seeds):.1f} seed-examples/s = {seed_steps:.3g} "
          f"seed-steps/s (first call {first:.1f} s)", flush=True)
    cpu = _bench_row("gle", lambda r: next(x for x in r["metrics"]["rows"] if "vmap" in x["implementation"]))
    metrics = {"examples_per_s": ex_s, "seed_examples_per_s": ex_s * len(seeds),
               "seed_steps_per_s": seed_steps, "first_call_s": first}  # fmt: skip
    if setup.seq_len == 360:
        metrics["published_run_hours"] = full_h
        print(f"-> the published run ({len(seeds)} seeds x 150 epochs x 4000 sequences): {full_h:.2f} h", flush=True)
    if cpu is not None and setup.seq_len == 360:
        metrics["cpu_bench_seed_steps_per_s"] = cpu["seed-steps/s (wall)"]
    path = results.save(name, config={"setup": setup._asdict(), "seeds": seeds, **p,
                                      "data": "random sequences (the values do not change the work)"},
                        metrics=metrics, extra={"device": _device_info()})  # fmt: skip
    ref = (f"CPU bench {metrics['cpu_bench_seed_steps_per_s']:.3g} seed-steps/s: "
           f"{seed_steps / metrics['cpu_bench_seed_steps_per_s']:.1f}x") if "cpu_bench_seed_steps_per_s" in metrics \
        else "none like for like"
    return {"result": f"{ex_s:.3g} examples/s x {len(seeds)} seeds ({seed_steps:.3g} seed-steps/s)",
            "reference": ref, "file": str(path)}


def probe() -> dict[str, Any]:
    """Print what JAX sees; says plainly when it is a CPU."""
    import jax

    devs = jax.devices()
    print("jax.devices():", devs, flush=True)
    info = _device_info()
    versions = {}
    for mod in ("jaxlib", "optax", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001 - reported, not fatal here
            versions[mod] = f"missing ({type(err).__name__})"
    info["versions"] = versions
    print(f"JAX {jax.__version__} ({', '.join(f'{k} {v}' for k, v in versions.items())}), backend "
          f"{info['backend']}, device kind {info['device_kind']!r}", flush=True)
    if info["backend"] == "cpu":
        print("RUNNING ON CPU: JAX sees no accelerator here; the timings below are CPU timings.", flush=True)
    return info


def child(part: str, quick: bool) -> int:
    """Run one part in this process; the last line of stdout is ``MARKER`` + a JSON row."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"part": part}
    try:
        if part == "probe":
            row.update(status="ok", info=probe())
        else:
            from gridlib import results

            fn = {"gridnet": part_gridnet, "neuralgrid": part_neuralgrid, "gle": part_gle}[part]
            with results.session():  # provenance read now, before the work
                row.update(fn(plan(quick)[part], f"device/{part}" + ("_quick" if quick else "")))
            row["status"] = "ok"
    except Exception as err:  # noqa: BLE001 - a part reports its error; the others still run
        traceback.print_exc()
        row.update(status="error", error=f"{type(err).__name__}: {str(err).strip()[:300]}")
    row["wall_s"] = time.perf_counter() - t0
    print(MARKER + json.dumps(row), flush=True)
    return 0 if row["status"] == "ok" else 1


# --------------------------------------------------------------------------- the driver


def out_dir(given: str | None) -> Path:
    """``--out``, else ``$OUT`` (the device machine copies it back), else ``runs/device-check``."""
    return Path(given or os.environ.get("OUT") or ROOT / "runs" / "device-check")


def child_env(out: Path, quick: bool, timeout: float = 0.0) -> dict[str, str]:
    """The environment of a part: records under ``out``, never into ``results/``."""
    env = dict(os.environ)
    env.update({
        "GRIDLIB_RUNS": str(out),  # results.save writes out/results/<name>.json
        # a folder that never exists: save() can never take a run for a re-run of a published one
        "GRIDLIB_RESULTS": str(out / ".never-published"),
        "GRIDLIB_SCALE": "ci" if quick else "full",
        "PYTHONUNBUFFERED": "1",
        "DEVICE_CHECK_DEADLINE": str(time.time() + timeout) if timeout else "",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    })  # fmt: skip
    return env


def run_child(part: str, quick: bool, out: Path, timeout: float) -> dict[str, Any]:
    """Run one part in a subprocess, echoing its output with a ``[part]`` prefix; its row."""
    cmd = [sys.executable, __file__, "--part", part] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=child_env(out, quick, timeout), cwd=ROOT)  # fmt: skip
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    row, last = None, ""
    try:
        for line in proc.stdout:
            if line.startswith(MARKER):
                row = json.loads(line[len(MARKER):])
                continue
            print(f"[{part}] {line}", end="", flush=True)
            last = line.strip() or last
        proc.wait()
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    if row is None:
        killed = proc.returncode is not None and proc.returncode < 0 and wall >= timeout - 1
        status = f"timeout after {timeout:.0f} s" if killed else f"error: exit code {proc.returncode}"
        row = {"part": part, "status": "error", "error": f"{status}; last line: {last[:200]}"}
    row["wall_s"] = wall
    return row


def _short(file: str) -> str:
    """A record's path, relative to the repository when it lies inside it."""
    path = Path(file).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The closing table: one line per part (status, headline, reference, seconds, file)."""
    cols = ("part", "status", "result", "reference", "wall s", "file")
    table = []
    for r in rows:
        status = r.get("status", "?")
        result = r.get("result", "") if status == "ok" else r.get("error", "")
        if "random" in r.get("data", ""):
            result += " [random data]"
        table.append([r.get("part", "?"), status, result, r.get("reference", ""),
                      f"{r['wall_s']:.0f}" if isinstance(r.get("wall_s"), (int, float)) else "",
                      _short(r["file"]) if r.get("file") else ""])  # fmt: skip
    widths = [max(len(str(c)), *(len(str(t[i])) for t in table)) if table else len(c) for i, c in enumerate(cols)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(str(v).ljust(w) for v, w in zip(t, widths, strict=True)) + " |" for t in table]
    return "\n".join(lines)


def parser() -> cli.OneLineParser:
    """The driver's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/device_check.py", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: about a minute on a CPU")
    p.add_flag("--parts", flags.choice(PARTS, many=True), ",".join(PARTS), help="parts to run")
    p.add_flag("--out", flags.Domain(str, pattern=r"[A-Za-z0-9_./\-]+", special=("",),
                                     meaning="'': $OUT, else runs/device-check"), "",
               help="where records go")
    p.add_argument("--allow-cpu", action="store_true", help="run the full sizes even on a CPU")
    p.add_argument("--pack", action="store_true",
                   help=f"copy the cached data sets into {PACK_DIR.relative_to(ROOT)} (carry it to the device)")
    p.add_flag("--pack-data", flags.choice(PACK_DATASETS, many=True), ",".join(PACK_DATASETS),
               help="data sets for --pack")
    p.add_flag("--part", flags.choice(("probe", *PARTS), special=("",)), "",
               help=argparse.SUPPRESS)  # a child's work
    return p


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> argparse.Namespace:
    """The driver's arguments; ``DEVICE_CHECK_QUICK=1`` in ``environ`` turns on ``--quick``.

    Raises:
        gridlib.flags.FlagError: a bad flag, in one line.
    """
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    args.parts = [p for p in PARTS if p in args.parts.split(",")]
    args.pack_data = args.pack_data.split(",")
    args.quick = args.quick or env.get("DEVICE_CHECK_QUICK", "").strip() in ("1", "true", "yes")
    return args


def _tree_bytes() -> int | None:
    """Bytes of what the device tool sends: tracked and untracked-not-ignored files."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True, timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    files = {ROOT / f for f in out.decode().split("\0") if f}
    return sum(f.stat().st_size for f in files if f.is_file())


def pack(datasets: list[str]) -> int:
    """Copy the verified cached data sets into :data:`PACK_DIR` (fetching them first if needed)."""
    from gridlib import data

    unknown = [d for d in datasets if d not in PACK_DATASETS]
    if unknown:
        print(f"error: --pack-data {','.join(unknown)}: choose from {','.join(PACK_DATASETS)}", file=sys.stderr)
        return 2
    target = PACK_DIR / "data"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    sources = {"mnist": lambda: [(data.mnist_file(), target)],
               "fashion_mnist": lambda: [(f, target / "fashion-mnist")
                                         for f in data.fashion_folder().iterdir()]}
    for d in datasets:
        for f, folder in sources[d]():
            if f.is_file():
                storage.write_bytes(folder / f.name, f.read_bytes(), within=[PACK_DIR])
    packed = sum(f.stat().st_size for f in PACK_DIR.rglob("*") if f.is_file())
    tree = _tree_bytes()
    total = packed + (tree or 0)
    print(f"packed {', '.join(datasets)} into {PACK_DIR.relative_to(ROOT)}: {packed / 2**20:.1f} MiB; "
          f"with the working tree ({'?' if tree is None else f'{tree / 2**20:.1f}'} MiB) "
          f"{total / 2**20:.1f} MiB of the device tool's {TREE_LIMIT_MIB} MiB")
    if total > TREE_WARN_MIB * 2**20:
        print(f"warning: over {TREE_WARN_MIB} MiB; pack less (--pack-data mnist): without Fashion-MNIST "
              "the NeuralGrid timing uses random images of the same shape", file=sys.stderr)
    print(f'device command: bash benchmarks/device.sh   (carry: ["{PACK_DIR.relative_to(ROOT)}"])')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.part:
        return child(args.part, args.quick)
    if args.pack:
        return pack(args.pack_data)
    mode = "quick" if args.quick else "full"
    out = out_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + BUDGET_S[mode]
    print(f"device check ({mode}): parts {', '.join(args.parts)}; records under {out}", flush=True)
    info = run_child("probe", args.quick, out, TIMEOUTS[mode]["probe"])
    rows: list[dict[str, Any]] = []
    backend = (info.get("info") or {}).get("backend")
    if info["status"] != "ok":
        print(f"the probe failed ({info.get('error')}); trying the parts anyway", flush=True)
    skip = backend == "cpu" and not args.quick and not args.allow_cpu
    if skip:
        print("JAX runs on a CPU: the full sizes are for an accelerator and would only hit their "
              "time limits. Skipped; run with --quick, or --allow-cpu to insist.", flush=True)
    for part in args.parts:
        left = deadline - time.perf_counter()
        if skip or left < 10:
            why = "no accelerator" if skip else "the time budget is spent"
            rows.append({"part": part, "status": "skipped", "error": why})
            continue
        print(f"--- {part} ---", flush=True)
        rows.append(run_child(part, args.quick, out, min(TIMEOUTS[mode][part], left)))
    summary = format_summary(rows)
    print(f"\ndevice check summary ({mode}; {backend or '?'}: "
          f"{(info.get('info') or {}).get('device_kind', '?')}):\n{summary}")
    storage.write_json(out / "device_check_summary.json",
                       {"mode": mode, "probe": info, "parts": rows,
                        "plan": {p: plan(args.quick)[p] for p in args.parts}}, within=[out])
    return 0 if all(r["status"] in ("ok", "skipped") for r in rows) and info["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
