"""The original analog-filter grid code, run side by side with the library.

The original code (``grid-neurons``, MIT licence, commit :data:`ANCHOR_COMMIT`) lives outside
the project, in ``../shared/anchors/grid-neurons`` (``GRIDLIB_ANCHOR`` overrides the folder).
Nothing of it is copied here: this module imports its own functions from that folder and drives
them exactly as its script ``scripts/mnist_rowwise.py`` does -- same initialisation
(``init_block_params(PRNGKey(seed))``), same per-epoch ``jax.random.split`` of ``PRNGKey(42)``
for the shuffle, same batches of 32 (the last partial batch dropped), same ``optax.adam``, same
validation on 2000 random test images drawn with ``PRNGKey(epoch + 999)``. It adds only:

- a checkpoint after every epoch (:mod:`gridlib.checkpoint`), so an interrupted run resumes;
- an ``--seed`` for the initialisation key (the original's 0 by default; the shuffle key stays 42);
- the final parameters in the results file;
- evaluation of the final parameters on both protocols: the original's (its random 2k subset)
  and the library's (the full 10k test set), both with the original's own forward pass.

Commands (need the folder; without it they stop with a one-line message):

- ``python -m gridlib filtergrid-original``: the run above, ``results/filtergrid/original_...``;
- ``python -m gridlib filtergrid-protocols``: every published grid run (the original's and the
  library's) evaluated on both protocols, ``results/filtergrid/protocols.json``.

The original's MNIST loader reads ``~/.cache/dendritic_mnist.npz`` (``X`` in [0, 255]) unless
its module-level cache ``_MNIST_CACHE`` already holds the arrays. :func:`provide_mnist` fills
that cache with :func:`original_mnist` -- the library's verified MNIST (pixels ``k/256``, so
``X = 256 x`` exactly) -- so the original never reads or writes a file of its own, and nothing
is written outside the library's data cache (``GRIDLIB_DATA``).

Why this module is long: it drives the original code end to end -- its data file, its training
loop with checkpoints, both evaluation protocols, the side-by-side timing and the command --
and keeping all of that in one place keeps the original's code out of every other module.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gridlib import checkpoint, results
from gridlib.filtergrid.cell import DT, GridParams

#: The commit of the original code the project measures against.
ANCHOR_COMMIT = "b7c349df906d899e7dbf5dbc1d3d313dbd9b16db"
ENV_VAR = "GRIDLIB_ANCHOR"
#: The original script's fixed choices: shuffle key, batch, validation subset and chunk.
SHUFFLE_KEY = 42
BATCH = 32
VAL_SUBSET = 2000
VAL_CHUNK = 200
VAL_KEY_OFFSET = 999
GRID = (28, 10)

Array = jax.Array


class AnchorUnavailableError(FileNotFoundError):
    """The original code's folder is absent (e.g. on a reader's machine)."""


# --------------------------------------------------------------------------- the folder


def anchor_dir() -> Path:
    """The original code's folder: ``GRIDLIB_ANCHOR`` (when set and not empty) or
    ``<repo>/../shared/anchors/grid-neurons``."""
    from gridlib.storage import env_folder

    return env_folder(ENV_VAR, results.REPO_ROOT.parent / "shared" / "anchors" / "grid-neurons")


def available() -> bool:
    """True if the original code can be imported from :func:`anchor_dir`."""
    return (anchor_dir() / "grid_neurons" / "training.py").is_file()


def unavailable_message() -> str:
    return (f"the original grid code is not at {anchor_dir()} (set {ENV_VAR} to its folder); "
            "the side-by-side comparison with it is skipped")


def anchor_commit() -> str:
    """The anchor's commit as its README states it (:data:`ANCHOR_COMMIT` when it states none).

    Raises:
        AnchorUnavailableError: the README names another commit (a different version of the code).
    """
    readme = anchor_dir().parent / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    m = re.search(r"commit\s+`?([0-9a-f]{40})", text)
    if m and m.group(1) != ANCHOR_COMMIT:
        raise AnchorUnavailableError(
            f"{readme} names commit {m.group(1)}, but the project measures against {ANCHOR_COMMIT}")
    return ANCHOR_COMMIT


def load_anchor() -> SimpleNamespace:
    """The original's functions, imported from its folder.

    Returns a namespace with ``build_grid``, ``init_block_params``, ``zero_block_state``,
    ``block_forward``, ``BlockParams``, ``CellParams``, ``Perturbation`` (its robustness study's
    knobs), ``local_grads``, ``readout_from_rates`` and ``load`` (its MNIST loader).

    Raises:
        AnchorUnavailableError: the folder is absent.
    """
    if not available():
        raise AnchorUnavailableError(unavailable_message())
    root = str(anchor_dir())
    if root in _ANCHOR:
        return _ANCHOR[root]
    if root not in sys.path:
        sys.path.insert(0, root)
    topology = importlib.import_module("grid_neurons.topology")
    block = importlib.import_module("grid_neurons.block")
    cell = importlib.import_module("grid_neurons.cell")
    training = importlib.import_module("grid_neurons.training")
    mnist = importlib.import_module("grid_neurons.benchmarks.mnist")
    origin = Path(training.__file__).resolve().parent.parent
    if origin != Path(root).resolve():
        raise AnchorUnavailableError(f"grid_neurons was imported from {origin}, not from {root}")
    _ANCHOR[root] = SimpleNamespace(
        build_grid=topology.build_grid, init_block_params=block.init_block_params,
        zero_block_state=block.zero_block_state, block_forward=block.block_forward,
        BlockParams=block.BlockParams, CellParams=cell.CellParams,
        Perturbation=block.Perturbation, no_perturbation=block.no_perturbation,
        local_grads=training.local_grads, readout_from_rates=training.readout_from_rates,
        load=mnist.load, N_CHANNELS=mnist.N_CHANNELS, NUM_CLASSES=mnist.NUM_CLASSES,
        mnist_module=mnist,
    )
    return _ANCHOR[root]


# --------------------------------------------------------------------------- data


def original_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The arrays of the original loader's ``dendritic_mnist.npz``, from :func:`gridlib.data.load_mnist`.

    ``X (70000, 784) float32`` in [0, 255] (60k train then 10k test, standard order) and
    ``y (70000,) int32``; our pixels are ``k/256``, so ``X = 256 x`` exactly.
    """
    from gridlib import data

    s = data.load_mnist()
    x = np.concatenate([s.x_train, s.x_test]).astype(np.float64) * 256.0
    if not (np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 255):
        raise ValueError("MNIST pixels are not k/256 with k in 0..255; cannot write the original's cache")
    X = x.astype(np.float32)
    y = np.concatenate([s.y_train, s.y_test]).astype(np.int32)  # as the original writes it
    if X.shape != (70000, 784):
        raise ValueError(f"expected 70000 MNIST images, got {X.shape}")
    return X, y


def provide_mnist(g: SimpleNamespace) -> None:
    """Hand :func:`original_mnist` to the original's loader (its in-memory ``_MNIST_CACHE``,
    which ``_fetch_mnist`` returns before looking for ``~/.cache/dendritic_mnist.npz``)."""
    module = g.mnist_module
    if not hasattr(module, "_MNIST_CACHE"):
        raise AnchorUnavailableError(f"{module.__file__} has no _MNIST_CACHE: another version of "
                                     "the original's loader")
    if module._MNIST_CACHE is None:
        module._MNIST_CACHE = original_mnist()


# --------------------------------------------------------------------------- parameters


def to_grid_params(block_params: Any, n: int = GRID[0], m: int = GRID[1]) -> GridParams:
    """The original's ``BlockParams`` (cells flat in raster order ``k = i M + j``) as ``(N, M)``."""
    c = block_params.cells
    return GridParams(*(jnp.reshape(getattr(c, f), (n, m)) for f in GridParams._fields))


def to_block_params(g: SimpleNamespace, params: GridParams) -> Any:
    """Library ``GridParams`` ``(N, M)`` as the original's ``BlockParams`` (identity routing)."""
    n = np.shape(params.w_left)[0]
    cells = g.CellParams(*(jnp.reshape(jnp.asarray(getattr(params, f), jnp.float32), (-1,))
                           for f in GridParams._fields))
    return g.BlockParams(cells=cells, input_routing=jnp.eye(n, dtype=jnp.float32))


# --------------------------------------------------------------------------- the original's steps


_FUNCTIONS: dict[tuple, SimpleNamespace] = {}
_ANCHOR: dict[str, SimpleNamespace] = {}


def original_functions(g: SimpleNamespace, lr: float = 3e-3, eta0: float = 1e-2) -> SimpleNamespace:
    """The original's jitted functions, built as its scripts build them.

    - ``train_step(p, opt_state, seqs, tgts) -> (p, opt_state, mean loss, mean acc)``: vmapped
      ``local_grads`` (``"sum"`` loss), batch-mean gradient, ``optax.adam(lr)``
      (``mnist_rowwise.py``);
    - ``sgd_step(p, seq, tgt) -> (p, loss, acc)``: one example, per-group SGD
      (``eta_w = eta0``, ``eta_b = eta0 / 20``, ``eta_logtau = 4 eta0``; ``mnist_sgd_bs1.py``);
    - ``eval_batch(p, seqs, tgts) -> mean accuracy`` and ``correct(p, seqs, tgts) -> (B,)``,
      both with the original's ``block_forward`` over a ``lax.scan``.
    """
    cache_key = (id(g), float(lr), float(eta0))
    if cache_key in _FUNCTIONS:  # one compilation per process and step size
        return _FUNCTIONS[cache_key]
    topo = g.build_grid(g.N_CHANNELS, g.NUM_CLASSES)
    opt = optax.adam(lr)

    def per(p, seq, tgt):
        s0 = g.zero_block_state(topo)
        loss, grads, readout = g.local_grads(p, s0, seq, tgt, topo, DT, "sum")
        return loss, grads, (jnp.argmax(readout) == tgt).astype(jnp.float32)

    @jax.jit
    def train_step(p, opt_state, seqs, tgts):
        losses, grads, accs = jax.vmap(per, in_axes=(None, 0, 0))(p, seqs, tgts)
        mean_grad = jax.tree_util.tree_map(lambda x: x.mean(0), grads)
        updates, opt_state = opt.update(mean_grad, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, losses.mean(), accs.mean()

    @jax.jit
    def sgd_step(p, seq, tgt):
        loss, grads, acc = per(p, seq, tgt)
        lrs = g.CellParams(log_tau=4.0 * eta0, w_left=eta0, w_top=eta0, bias=eta0 / 20.0)
        cells = g.CellParams(*(w - lr_ * dw for w, lr_, dw in zip(p.cells, lrs, grads.cells, strict=True)))
        return g.BlockParams(cells=cells, input_routing=p.input_routing), loss, acc

    def one_correct(p, seq, tgt):
        s0 = g.zero_block_state(topo)

        def step(st, x):
            ns, r, _, _ = g.block_forward(p, st, x, topo, DT)
            return ns, r

        _, rates = jax.lax.scan(step, s0, seq)
        return (jnp.argmax(g.readout_from_rates(rates)) == tgt).astype(jnp.float32)

    correct = jax.jit(jax.vmap(one_correct, in_axes=(None, 0, 0)))

    @jax.jit
    def eval_batch(p, seqs, tgts):
        return jax.vmap(one_correct, in_axes=(None, 0, 0))(p, seqs, tgts).mean()

    fns = SimpleNamespace(topo=topo, opt=opt, train_step=train_step, sgd_step=sgd_step,
                          eval_batch=eval_batch, correct=correct)
    _FUNCTIONS[cache_key] = fns
    return fns


def subset_indices(epoch: int, n_val: int = 10000, size: int = VAL_SUBSET) -> Array:
    """The original's validation subset after epoch ``epoch`` (0-based): 2000 of ``n_val``."""
    return jax.random.permutation(jax.random.PRNGKey(epoch + VAL_KEY_OFFSET), n_val)[:size]


def subset_accuracy(fns: SimpleNamespace, params: Any, val_x: Array, val_y: Array, epoch: int,
                    size: int = VAL_SUBSET) -> float:
    """Accuracy on the original's random 2k subset, computed as its script does (chunks of 200)."""
    idx = subset_indices(epoch, val_x.shape[0], size)
    vs, vt = val_x[idx], val_y[idx]
    chunks = [(vs[j:j + VAL_CHUNK], vt[j:j + VAL_CHUNK]) for j in range(0, size, VAL_CHUNK)]
    return float(np.mean([float(fns.eval_batch(params, s, t)) for s, t in chunks]))


def per_example_correct(fns: SimpleNamespace, params: Any, val_x: Array, val_y: Array) -> np.ndarray:
    """``(n,)`` 0/1: whether the original's forward classifies each test image correctly."""
    n = val_x.shape[0]
    out = [np.asarray(fns.correct(params, val_x[j:j + VAL_CHUNK], val_y[j:j + VAL_CHUNK]))
           for j in range(0, n - n % VAL_CHUNK, VAL_CHUNK)]
    if n % VAL_CHUNK:
        out.append(np.asarray(fns.correct(params, val_x[n - n % VAL_CHUNK:], val_y[n - n % VAL_CHUNK:])))
    return np.concatenate(out)


def both_protocols(fns: SimpleNamespace, params: Any, val_x: Array, val_y: Array,
                   last_epoch: int) -> dict[str, Any]:
    """Accuracy of ``params`` (original layout) on both protocols, with the original's forward.

    ``subset2k_acc``: the original's protocol (its random 2k subset as drawn after epoch
    ``last_epoch``, 0-based); ``test_acc``: the full test set; ``subset2k_acc_by_epoch``: the
    subsets of epochs 0..9 (how much the subset draw alone moves the number).
    """
    corr = per_example_correct(fns, params, val_x, val_y)
    corr = corr.astype(np.float64)
    by_epoch = [float(corr[np.asarray(subset_indices(e, len(corr)))].mean()) for e in range(10)]
    return {
        "subset2k_acc": subset_accuracy(fns, params, val_x, val_y, last_epoch),
        "subset2k_key": last_epoch + VAL_KEY_OFFSET,
        "test_acc": float(corr.mean()),
        "test_n": int(len(corr)),
        "subset2k_acc_by_epoch": by_epoch,
    }


# --------------------------------------------------------------------------- the original's run


def _fingerprint(config: dict[str, Any]) -> str:
    text = json.dumps(results.to_jsonable(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def train_original(
    *, epochs: int = 10, train_size: int = 60000, lr: float = 3e-3, gain: float = 10.0,
    tau_min: float = 1e-3, tau_max: float = 20e-3, seed: int = 0,
    run_dir: str | os.PathLike | None = None, fresh: bool = False, stop_after: int | None = None,
    log: Callable[[str], None] = print, progress_every: int = 0,
    data: tuple | None = None, val_subset: int = VAL_SUBSET, start_record: dict | None = None,
) -> dict[str, Any]:
    """Run the original's ``mnist_rowwise.py --grad local`` loop, checkpointed per epoch.

    Returns ``{"params", "history", "epochs_done", "earlier_starts", "data": (train_X, train_y,
    val_X, val_y), "fns", "config"}``; ``history`` has the script's per-epoch ``loss``, ``train_acc``, ``val``
    (2k subset) and the epoch's wall time. ``log`` receives the script's epoch lines (``t=`` is
    the wall time of this invocation).

    ``data`` (tests only) replaces the original's MNIST loader with ``(train_X, train_y, val_X,
    val_y)`` in its layout; ``val_subset`` (tests only, a multiple of 200) shrinks the per-epoch
    validation subset. ``start_record`` (the session's provenance) is kept in the checkpoint with
    the epoch it started from, so that a resumed run's record lists every start
    (``earlier_starts``: those before this one).
    """
    g = load_anchor()
    config = dict(epochs=epochs, train_size=train_size, lr=lr, gain=gain, tau_min=tau_min,
                  tau_max=tau_max, seed=seed, anchor_commit=ANCHOR_COMMIT)
    if data is None:
        provide_mnist(g)
        train_X, train_y, val_X, val_y = g.load(input_gain=gain, train_size=train_size)
    else:
        train_X, train_y, val_X, val_y = (jnp.asarray(a) for a in data)
        config["data"] = hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in data)).hexdigest()
    if val_subset != VAL_SUBSET:
        config["val_subset"] = val_subset
    fingerprint = _fingerprint(config)
    fns = original_functions(g, lr)

    params = g.init_block_params(jax.random.PRNGKey(seed), topology=fns.topo, tau_min=tau_min,
                                 tau_max=tau_max)
    opt_state = fns.opt.init(params)
    dk = jax.random.PRNGKey(SHUFFLE_KEY)
    history: dict[str, list] = {"epoch": [], "loss": [], "train_acc": [], "val": [], "epoch_time_s": []}
    start, starts = 0, []
    ckpt_file = Path(run_dir) / "checkpoint.npz" if run_dir is not None else None
    if ckpt_file is not None:
        if fresh:
            ckpt_file.unlink(missing_ok=True)
        checkpoint.remove_stale(ckpt_file)
        ckpt = checkpoint.load(ckpt_file, fingerprint, (params, opt_state, dk),
                               lambda old: "differs in: " + ", ".join(
                                   results.config_differences(old.get("config") or {}, config)))
        if ckpt is not None:
            params, opt_state, dk = jax.tree_util.tree_map(jnp.asarray, ckpt.state)
            meta = ckpt.meta
            history, start, starts = meta["history"], meta["epoch"], list(meta.get("starts", []))
            log(f"resuming after epoch {start - 1:02d} from {ckpt_file}")
    earlier_starts = starts
    if start_record is not None:
        starts = [*starts, {**start_record, "from_epoch": start}]
    last = epochs if stop_after is None else min(epochs, start + stop_after)

    t0 = time.time()
    for ep in range(start, last):
        t_ep = time.time()
        losses_ep, accs_ep = [], []
        dk, kperm = jax.random.split(dk)
        perm = jax.random.permutation(kperm, train_X.shape[0])
        X_sh, y_sh = train_X[perm], train_y[perm]
        for n_step, i in enumerate(range(0, X_sh.shape[0] - BATCH + 1, BATCH), 1):
            params, opt_state, L, acc = fns.train_step(params, opt_state, X_sh[i:i + BATCH], y_sh[i:i + BATCH])
            losses_ep.append(float(L))
            accs_ep.append(float(acc))
            if progress_every and n_step % progress_every == 0:
                log(f"  ep {ep:02d}  step {n_step}  loss={np.mean(losses_ep):.3f}  t={time.time() - t0:.0f}s")
        val_acc = subset_accuracy(fns, params, val_X, val_y, ep, val_subset)
        ml, mta = float(np.mean(losses_ep)), float(np.mean(accs_ep))
        for k, v in zip(history, (ep, ml, mta, val_acc, time.time() - t_ep), strict=True):
            history[k].append(v)
        log(f"[local] ep {ep:02d}  loss={ml:.3f}  train_acc={mta:.3f}  val={val_acc:.3f}  t={time.time() - t0:.0f}s")
        if ckpt_file is not None:
            checkpoint.save(ckpt_file, (params, opt_state, dk), {
                "fingerprint": fingerprint, "config": config, "epoch": ep + 1,
                "history": history, "starts": starts})
    return {"params": params, "history": history, "epochs_done": last, "earlier_starts": earlier_starts,
            "data": (train_X, train_y, val_X, val_y), "fns": fns, "config": config}


def original_run_name(epochs: int, train_size: int, seed: int) -> str:
    """e.g. ``filtergrid/original_snap1_adam_b32_e10_n60000_seed0``."""
    return f"filtergrid/original_snap1_adam_b{BATCH}_e{epochs}_n{train_size}_seed{seed}"


# --------------------------------------------------------------------------- commands


def _check_original(args: dict[str, Any]) -> None:
    from gridlib.filtergrid.experiments import check_taus

    check_taus(args)


ROBUSTNESS_REPORT = "experiments/measurement_robustness/measurement_robustness.md"
"""The original robustness study's report, with one number per condition (relative to the folder)."""


def original_robustness_report() -> dict[str, Any]:
    """The numbers of the original's robustness report, read from its markdown tables.

    Returns ``{"baseline": float, "sweeps": {sweep: {"values": [...], "val_acc": [...]}}}``
    (values as in its sweep definitions; ``val_acc`` on a random 2k test subset after 5 epochs,
    one seed). The sweep names are those of :data:`gridlib.filtergrid.experiments.SWEEPS`.

    Raises:
        AnchorUnavailableError: the folder is absent. ValueError: the report has no table rows.
    """
    if not available():
        raise AnchorUnavailableError(unavailable_message())
    text = (anchor_dir() / ROBUSTNESS_REPORT).read_text()
    sweeps: dict[str, dict[str, list[float]]] = {}
    row = re.compile(r"^\|\s*(\w+)\s*\|\s*([-+][\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([-+][\d.]+)\s*\|\s*$")
    for line in text.splitlines():
        m = row.match(line)
        if m:
            entry = sweeps.setdefault(m.group(1), {"values": [], "val_acc": []})
            entry["values"].append(float(m.group(2)))
            entry["val_acc"].append(float(m.group(3)))
    base = re.search(r"Unperturbed baseline final val acc: \*\*([\d.]+)\*\*", text)
    if not sweeps or base is None:
        raise ValueError(f"{anchor_dir() / ROBUSTNESS_REPORT}: no condition table or no baseline found")
    return {"baseline": float(base.group(1)), "sweeps": sweeps}


def _register() -> None:
    from gridlib import flags
    from gridlib.cli import experiment
    from gridlib.filtergrid.experiments import GAIN, TAU

    @experiment("filtergrid-original", check=_check_original, flags={
        "train_size": flags.integer(BATCH, 60_000),
        "gain": GAIN, "tau_min": TAU, "tau_max": TAU,
        "progress_every": flags.integer(0, 10**9, meaning="0: once per epoch"),
    })
    def filtergrid_original(
        epochs: int = 10, train_size: int = 60000, lr: float = 3e-3, gain: float = 10.0,
        tau_min: float = 1e-3, tau_max: float = 20e-3, seed: int = 0, progress_every: int = 0,
        name: str = "",
    ) -> dict:
        """The original grid code's own Adam batch-32 run (scripts/mnist_rowwise.py), resumable.

        Imports the original's functions from ../shared/anchors/grid-neurons (GRIDLIB_ANCHOR)
        and drives them as its script does (init PRNGKey(seed), shuffle PRNGKey(42), batch 32,
        validation on a random 2k test subset per epoch); checkpoints every epoch to
        runs/<name>; evaluates the final parameters on the original's 2k subset and on the full
        10k test set; writes results/<name>.json with the final parameters.

        Args:
            epochs: passes over the training set (the original's README: 10).
            train_size: the first this many training images (README: 60000).
            lr: Adam step size.
            gain: input gain (pixels X / 255 * gain).
            tau_min: smallest initial time constant (s).
            tau_max: largest initial time constant (s).
            seed: the initialisation key PRNGKey(seed) (the original's: 0); shuffling keeps 42.
            progress_every: print a progress line every this many steps (0: only per epoch).
            name: results name (default filtergrid/original_snap1_adam_b32_e<E>_n<N>_seed<S>).
        """
        from gridlib import experiment as exp

        commit = anchor_commit()
        name = name or original_run_name(epochs, train_size, seed)
        session = results.current_session()
        run_dir = exp.run_dir_for(name)
        with checkpoint.lock(run_dir):
            out = train_original(epochs=epochs, train_size=train_size, lr=lr, gain=gain,
                                 tau_min=tau_min, tau_max=tau_max, seed=seed, run_dir=run_dir,
                                 fresh=bool(session and session.fresh),
                                 stop_after=session.stop_after_epochs if session else None,
                                 log=lambda s: print(s, flush=True), progress_every=progress_every,
                                 start_record=session.start if session else None)
        if session is not None:
            session.earlier_starts = out["earlier_starts"]
        if out["epochs_done"] < epochs:
            if session is not None:
                session.stopped_early = True
            print(f"{name}: stopped after epoch {out['epochs_done'] - 1}; re-run to resume")
            return {}
        _, _, val_X, val_y = out["data"]
        proto = both_protocols(out["fns"], out["params"], val_X, val_y, epochs - 1)
        hist = out["history"]
        metrics = {
            "val2k_acc": hist["val"][-1],  # the script's own last line
            "subset2k_acc": proto["subset2k_acc"],
            "test_acc": proto["test_acc"],
            "train_loss": hist["loss"][-1],
            "train_acc": hist["train_acc"][-1],
            "total_train_time_s": float(np.sum(hist["epoch_time_s"])),
        }
        config = dict(out["config"], code="original", anchor_commit=commit,
                      script="scripts/mnist_rowwise.py --grad local", rule="snap1",
                      optimizer="adam", batch_size=BATCH, shuffle_key=SHUFFLE_KEY,
                      grid=list(GRID), dt=DT, loss="sum", n_test=int(val_X.shape[0]),
                      val_subset=VAL_SUBSET, val_key="PRNGKey(epoch + 999)")
        gp = to_grid_params(out["params"])
        results.save(name, config=config, metrics=metrics, history=hist, seed=seed,
                     extra={"final_params": gp._asdict(), "params_layout": "(N, M), raster k = i*M + j",
                            "subset2k_acc_by_epoch": proto["subset2k_acc_by_epoch"]})
        print(f"{name}: original protocol (2k subset, key {proto['subset2k_key']}) "
              f"{proto['subset2k_acc']:.4f}; full 10k test {proto['test_acc']:.4f}")
        return metrics

    @experiment("filtergrid-original-robustness")
    def filtergrid_original_robustness(name: str = "filtergrid/original_robustness") -> dict:
        """The original robustness study's reported numbers, read from its report into a
        results file (its setting: 6000 training images, 5 epochs, Adam batch 32, one seed,
        validation on a random 2k test subset). Needs the original code's folder.

        Args:
            name: results name.
        """
        report = original_robustness_report()
        config = {"anchor_commit": anchor_commit(), "source": ROBUSTNESS_REPORT, "code": "original",
                  "rule": "snap1", "optimizer": "adam", "lr": 3e-3, "batch_size": BATCH, "epochs": 5,
                  "n_train": 6000, "val_subset": VAL_SUBSET, "seeds": [0], "grid": list(GRID)}
        results.save(name, config=config, metrics=report)
        print(f"{name}: {len(report['sweeps'])} sweeps, baseline {report['baseline']}")
        return report

    @experiment("filtergrid-protocols")
    def filtergrid_protocols(name: str = "filtergrid/protocols") -> dict:
        """Every published grid MNIST run, the original code's and the library's, on both protocols.

        For each results/filtergrid/{snap1,original_snap1}_* run with final parameters: accuracy
        on the original's protocol (its random 2k test subset, drawn as its script draws it
        after the run's last epoch) and on the full 10k test set, both with the original's own
        forward; the library's own full-test number is listed beside it. Needs the original code.

        Args:
            name: results name.
        """
        g = load_anchor()
        provide_mnist(g)
        commit = anchor_commit()
        fns = original_functions(g)
        rows: dict[str, Any] = {}
        data_cache: dict[float, tuple] = {}
        runs = results.names("filtergrid/snap1_*_n60000_seed*") + results.names("filtergrid/original_snap1_*")
        for run in runs:
            rec = results.load(run)
            fp = (rec.get("extra") or {}).get("final_params")
            if not fp:
                continue
            cfg = rec["config"]
            gain = float(cfg.get("gain", 10.0))
            if gain not in data_cache:
                _, _, vx, vy = g.load(input_gain=gain, train_size=1)
                data_cache[gain] = (vx, vy)
            val_X, val_y = data_cache[gain]
            params = to_block_params(g, GridParams(**{k: np.asarray(v, np.float32) for k, v in fp.items()}))
            epochs = int(cfg["epochs"])
            proto = both_protocols(fns, params, val_X, val_y, epochs - 1)
            m = rec["metrics"]
            rows[run] = {
                "code": cfg.get("code", "library"), "rule": cfg.get("rule"),
                "optimizer": cfg.get("optimizer"), "batch_size": cfg.get("batch_size"),
                "epochs": epochs, "seed": rec["provenance"].get("seed"),
                **proto,
                "published_test_acc": m.get("test/acc", m.get("test_acc")),
                "published_val2k_acc": m.get("val2k_acc"),
            }
            print(f"{run}: 2k subset {proto['subset2k_acc']:.4f}, full test {proto['test_acc']:.4f}", flush=True)
        if not rows:
            raise FileNotFoundError("no published filtergrid runs with final parameters to evaluate")
        config = {"anchor_commit": commit, "runs": sorted(rows), "forward": "original block_forward",
                  "val_subset": VAL_SUBSET, "val_key": "PRNGKey(last epoch + 999)"}
        results.save(name, config=config, metrics=rows)
        return rows


_register()
