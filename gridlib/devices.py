"""One code path from one CPU to many devices: a 1-D mesh, shardings, and several processes.

A seed ensemble trained with ``vmap`` (a state whose leaves lead with the seed axis) needs no
communication between seeds, so it splits cleanly: :func:`shard_ensemble_task` places the
task's initial state with the seed axis spread over the devices of this process, and ``jit``
follows the placement, so :func:`gridlib.experiment.fit` runs unchanged (it saves the state
with ``device_get`` and resumes it placed like a fresh ``init``). One model with large
minibatches goes the other way (:func:`split_batch`, used by
:func:`gridlib.baselines.supervised_task`'s ``mesh``): the parameters are copied to every
device, each minibatch is split along its examples, and the gradients are summed.

- **One device**: every helper returns its input unchanged; nothing is placed or constrained.
- **Several devices of one process** (GPUs, or CPU devices forced with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N``): ``python -m gridlib gle-mnist1d
  --devices N``. A seed count that ``N`` does not divide is refused, not padded: padding would
  train phantom seeds whose metrics would leak into the per-seed history.
- **Several processes** (hosts): :func:`initialize_distributed` calls
  ``jax.distributed.initialize()`` only when the launcher says so (``srun`` with more than one
  task, Open MPI's ``mpirun`` with more than one rank, or ``GRIDLIB_DISTRIBUTED=1``).
  :func:`process_share` then gives each process a contiguous share of the seeds; each trains its
  share on its own devices, checkpoints and saves under its own name (the seeds are in the
  results name), and one reader merges the files along the seed axis
  (:func:`gridlib.gle.summary.load_mnist1d` does this for the GLE ensembles). Nothing crosses
  hosts: a mesh spans one process's devices, so no array is ever split across machines.

Not done: a mesh over several hosts (one model data-parallel across machines would need it,
with ``process_allgather`` for metrics and checkpoints), and generic per-process results names
for experiments whose names do not already contain their seeds. Tested here only with forced
CPU devices (``tests/test_devices.py``); real GPUs and several hosts are untested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

#: The name of the one mesh axis, along which seeds (or a minibatch) are split.
AXIS = "devices"
DISTRIBUTED_ENV = "GRIDLIB_DISTRIBUTED"

T = TypeVar("T")


# --------------------------------------------------------------------------- one process


def local_mesh(n_devices: int | None = None) -> Mesh:
    """A 1-D mesh (axis :data:`AXIS`) over the first ``n_devices`` devices of this process.

    Args:
        n_devices: how many devices (default: all of this process's devices).

    Raises:
        ValueError: for a count below 1 or above the devices this process has.
    """
    local = jax.local_devices()
    n = len(local) if n_devices is None else n_devices
    if not 1 <= n <= len(local):
        raise ValueError(f"--devices {n}: this process has {len(local)} device(s) "
                         f"({local[0].platform}); choose 1 to {len(local)}")  # fmt: skip
    return Mesh(np.asarray(local[:n]), (AXIS,))


def cpu_mesh(n_devices: int | None = None) -> Mesh:
    """A 1-D mesh of ``n_devices`` CPU devices (default: one per core), forced by
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``.

    The count is fixed when JAX first touches a device, so call this before anything else
    does (or start Python with the flag set).

    Raises:
        RuntimeError: JAX started earlier with fewer devices than asked for.
    """
    n = n_devices or os.cpu_count() or 1
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    if jax.local_device_count() < n:
        raise RuntimeError(f"{n} CPU devices asked for, but JAX started with "
                           f"{jax.local_device_count()}: call gridlib.devices.cpu_mesh() before "
                           "anything uses JAX, or set XLA_FLAGS=--xla_force_host_platform_device_count"
                           f"={n}")  # fmt: skip
    return local_mesh(n)


def ensemble_devices(n_seeds: int, requested: int | None = None) -> int:
    """How many devices an ensemble of ``n_seeds`` seeds is split over.

    ``requested=None`` (no ``--devices``) takes every device of this process, or the most that
    divide the seeds evenly (10 seeds on 8 GPUs use 5): the default never fails.

    Raises:
        ValueError: an explicit count outside 1..devices, or one that does not divide ``n_seeds``.
    """
    have = jax.local_device_count()
    if requested is None:
        return max(d for d in range(1, min(have, n_seeds) + 1) if n_seeds % d == 0)
    local_mesh(requested)  # the range check and its message
    if n_seeds % requested:
        fits = [d for d in range(1, min(have, n_seeds) + 1) if n_seeds % d == 0]
        raise ValueError(f"--devices {requested} does not divide the {n_seeds} seeds evenly "
                         f"(seeds are not padded); use one of {fits}")  # fmt: skip
    return requested


def ensemble_shardings(state: Any, mesh: Mesh, n_seeds: int) -> Any:
    """One :class:`jax.sharding.NamedSharding` per leaf of ``state``: split along the seed axis, or copied.

    A leaf whose leading axis is ``n_seeds`` long is split over the mesh; any other leaf (a step
    counter, a shared constant) is copied to every device. Works on arrays, tracers and
    ``jax.ShapeDtypeStruct`` leaves alike (it reads only shapes).
    """

    def one(leaf):
        shape = getattr(leaf, "shape", ())
        return NamedSharding(mesh, P(AXIS) if shape and shape[0] == n_seeds else P())

    return jax.tree.map(one, state)


def shard_ensemble(state: Any, mesh: Mesh, n_seeds: int) -> Any:
    """``state`` (leaves ``(n_seeds, ...)`` or shared) placed per :func:`ensemble_shardings`."""
    _check_divides(n_seeds, mesh, "seeds")
    return jax.device_put(state, ensemble_shardings(state, mesh, n_seeds))


def shard_ensemble_task(task, mesh: Mesh, n_seeds: int):
    """``task`` (a :class:`gridlib.experiment.Task` over a ``vmap``-ed ensemble of ``n_seeds``)
    with its state split along the seed axis over ``mesh``; ``task`` itself on one device.

    ``init`` places the fresh state; ``train_step`` pins the same layout on the state it
    returns, so the split survives the ``lax.scan`` of :func:`gridlib.experiment.fit` whatever
    the compiler's sharding propagation would choose. Metrics and evaluation sums keep their
    ``(n_seeds,)`` shape; ``fit`` gathers them to the host as before.

    Raises:
        ValueError: when the mesh's size does not divide ``n_seeds``.
    """
    if mesh.size == 1:
        return task
    _check_divides(n_seeds, mesh, "seeds")

    def init(key):
        return shard_ensemble(task.init(key), mesh, n_seeds)

    def train_step(state, x, y, key):
        state, metrics = task.train_step(state, x, y, key)
        return jax.lax.with_sharding_constraint(state, ensemble_shardings(state, mesh, n_seeds)), metrics

    return task._replace(init=init, train_step=train_step)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Every leaf of ``batch`` (``(B, ...)``) split along its leading axis over ``mesh``."""
    for leaf in jax.tree.leaves(batch):
        _check_divides(np.shape(leaf)[0], mesh, "examples of the minibatch")
    return jax.device_put(batch, NamedSharding(mesh, P(AXIS)))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """``tree`` copied to every device of ``mesh``; with no mesh, ``tree`` unchanged."""
    return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, P()))


def split_batch(fn, mesh: Mesh):
    """``fn(params, x, y) -> (total, per_example)`` run on each device's share of the examples.

    ``x: (B, ...)`` and ``y: (B,)`` are split along ``B`` over ``mesh`` (``B`` a multiple of its
    size), ``params`` are copied to every device; the ``total`` pytrees (sums over examples,
    e.g. a loss and its gradient) are added across devices, and the ``per_example`` outputs
    (``(B', ...)`` on each device) are joined back in order. Each device runs its share on its
    own thread, so on a CPU with forced devices, one per core, a model whose operations are too
    small for XLA to spread over the cores still uses them all. The sums equal ``fn`` on the
    whole batch up to the order of float additions. With one device this returns ``fn``.
    """
    if mesh.size == 1:
        return fn

    def local(params, x, y):
        total, each = fn(params, x, y)
        return jax.lax.psum(total, AXIS), each

    # check_vma=False: custom VJPs (NeuralGrid's layer) do not say how they vary over devices
    split = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS)),
                          out_specs=(P(), P(AXIS)), check_vma=False)  # fmt: skip

    def run(params, x, y):
        _check_divides(np.shape(x)[0], mesh, "examples of the minibatch")
        return split(params, x, y)

    return run


def _check_divides(n: int, mesh: Mesh, what: str) -> None:
    if n % mesh.size:
        raise ValueError(f"{mesh.size} devices do not divide the {n} {what} evenly")


# --------------------------------------------------------------------------- several processes


def _count(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def launcher(environ: Mapping[str, str] | None = None) -> str | None:
    """Which multi-process launch started this process: ``"slurm"``, ``"openmpi"``,
    ``"explicit"`` (``GRIDLIB_DISTRIBUTED=1``) or ``None`` (one process: do nothing).

    SLURM counts only inside an ``srun`` step (``SLURM_STEP_NODELIST`` set) with more than one
    task: a batch script or an array job's single task runs alone. ``GRIDLIB_DISTRIBUTED=0``
    overrides the detection.

    Raises:
        ValueError: for a ``GRIDLIB_DISTRIBUTED`` value other than 0 or 1.
    """
    env = os.environ if environ is None else environ
    flag = env.get(DISTRIBUTED_ENV, "").strip()
    if flag not in ("", "0", "1"):
        raise ValueError(f"{DISTRIBUTED_ENV}={flag!r}: use 1 (join the processes) or 0 (never)")
    if flag:
        return "explicit" if flag == "1" else None
    if "SLURM_STEP_NODELIST" in env and _count(env.get("SLURM_NTASKS")) > 1:
        return "slurm"
    if _count(env.get("OMPI_COMM_WORLD_SIZE")) > 1:
        return "openmpi"
    return None


def initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Join the other processes of this launch with ``jax.distributed.initialize()``, only when
    :func:`launcher` finds one; returns whether it did. Call it before anything touches a device.

    JAX reads the coordinator, the process count and this process's index from the launcher's
    variables (SLURM, or Open MPI 4's ``OMPI_MCA_orte_hnp_uri``); with ``GRIDLIB_DISTRIBUTED=1``
    elsewhere, set ``JAX_COORDINATOR_ADDRESS`` or use an environment JAX detects.
    """
    if launcher(environ) is None:
        return False
    jax.distributed.initialize()
    return True


def _share(items: Sequence[T], n_processes: int, index: int) -> tuple[T, ...]:
    if len(items) < n_processes:
        raise ValueError(f"{len(items)} seeds cannot be shared by {n_processes} processes; "
                         "give at least one seed per process")  # fmt: skip
    start, stop = index * len(items) // n_processes, (index + 1) * len(items) // n_processes
    return tuple(items[start:stop])


def process_share(items: Sequence[T]) -> tuple[T, ...]:
    """This process's contiguous share of ``items`` (all of them when it runs alone).

    Shares differ in length by at most one and, taken in process order, are ``items`` again.

    Raises:
        ValueError: when there are fewer items than processes.
    """
    return _share(items, jax.process_count(), jax.process_index())
