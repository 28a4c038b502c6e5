"""SnAP-1's training step as a user calls it, one jitted call per minibatch
(:func:`gridlib.experiment.make_train_step`), against the step ``fit`` runs inside its scan
(:func:`gridlib.experiment.make_epoch_chunk`): the same bits, in float32, the library's dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gridlib.experiment import make_epoch_chunk, make_train_step
from gridlib.filtergrid.experiments import make_task

STEPS, BATCH = 3, 8  # batch 8 runs as 2 lanes of 4 chained examples (default_chain)


def _task(optimizer: str, scale: float = 1.0):
    """A 6 x 4 grid on 5-row images; ``scale`` multiplies the step size (Adam's ``lr``, or
    per-group SGD's ``eta0``)."""
    return make_task(rule="snap1", optimizer=optimizer, lr=3e-3 * scale, eta0=1e-2 * scale,
                     n_rows=6, n_cols=4, n_inputs=6, pixel_scale=1.0)


def _batches(batch: int = BATCH):
    """``STEPS`` minibatches of sparse 5-row images ``(STEPS, B, 30)`` and labels ``(STEPS, B)``."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(7), 3)
    x = jax.random.uniform(k1, (STEPS, batch, 5 * 6)) * (jax.random.uniform(k2, (STEPS, batch, 30)) < 0.3)
    return x, jax.random.randint(k3, (STEPS, batch), 0, 4)


def _one_call_per_step(task, x, y, key):
    """The user's loop: one donated call per minibatch, each minibatch a ready array."""
    step = make_train_step(task.train_step, task.compiler_options)
    state, losses = task.init(jax.random.PRNGKey(0)), []
    for i in range(STEPS):
        state, m = step(state, x[i], y[i], jax.random.fold_in(key, i))
        losses.append(m["loss"])
    return state, jnp.stack(losses)


def _as_fit_runs_it(task, x, y, key):
    chunk = make_epoch_chunk(task.train_step, task.compiler_options)
    state, m = chunk(task.init(jax.random.PRNGKey(0)), x, y, jnp.arange(STEPS, dtype=jnp.uint32), key)
    return state, m["loss"]


def _bits_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(u), np.asarray(v))
                                      for u, v in zip(la, lb, strict=True))


@pytest.mark.parametrize("optimizer, batch", [("adam", BATCH), ("sgd", 1)])
def test_one_call_per_step_equals_fits_step_bit_for_bit(optimizer, batch):
    task = _task(optimizer)
    x, y = _batches(batch)
    key = jax.random.PRNGKey(3)
    one = _one_call_per_step(task, x, y, key)
    fit = _as_fit_runs_it(task, x, y, key)
    assert one[0].params.w_left.dtype == jnp.float32
    assert _bits_equal(one, fit)
    # a planted change must show: a step size 0.1 % larger, or one pixel of the last minibatch
    assert not _bits_equal(_one_call_per_step(_task(optimizer, 1.001), x, y, key), fit)
    bumped = x.at[STEPS - 1, 0, 7].add(0.5)
    assert not _bits_equal(_one_call_per_step(task, bumped, y, key)[0], fit[0])


def test_the_one_call_step_donates_the_state():
    task = _task("adam")
    x, y = _batches()
    state = task.init(jax.random.PRNGKey(0))
    new, _ = make_train_step(task.train_step)(state, x[0], y[0], jax.random.PRNGKey(1))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state.params))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new))
    kept = task.init(jax.random.PRNGKey(0))
    make_train_step(task.train_step, donate=False)(kept, x[0], y[0], jax.random.PRNGKey(1))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(kept))
