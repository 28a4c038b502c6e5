"""The seed notebook's failures, one at a time: its energy and the data pipeline it had.

The chapter *Why the first JAX attempt did not converge* measures every suspicious line of the
seed alone. The model-side ones are options
of :class:`~gridlib.ep.model.EPConfig` (``rho="hard_sigmoid"``, ``aggregate="sum"``,
``sign="example-mismatch"``, ``state_grad="mean"``; ``square="u"`` is the paper's form, not a
bug); the data-pipeline ones are :func:`seed_variant_splits`. :data:`SEED_VARIANTS` names every
variant the chapter trains (:func:`gridlib.ep.experiments.run_seed_variants`), and
:func:`seed_energy` is the seed's own energy function, whose squared norm is NaN-prone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def seed_energy(x, h, y, biases, weights, rho=jax.nn.hard_sigmoid):
    """The seed notebook's energy, verbatim in structure (one example; ``jnp.linalg.norm``).

    ``0.5 * |rho(layer)|^2`` is written as the squared Euclidean *norm*; its gradient at a zero
    vector is ``2 |v| * v / |v| = 0 * nan = nan``. With ``rho = jax.nn.hard_sigmoid`` (the seed)
    ``rho(0) = 1/2`` hides this; with the correct ``rho = clip`` and zero initial states every
    state gradient is NaN.
    """
    layers = (x, h, y)
    squared_norm = 0.5 * sum(jnp.linalg.norm(rho(v)) ** 2 for v in layers)
    linear = -sum(jnp.dot(rho(v), b) for v, b in zip(layers, biases, strict=True))
    quadratic = -sum(
        jnp.dot(jnp.dot(rho(a), w), rho(b))
        for a, w, b in zip(layers[:-1], weights, layers[1:], strict=True)
    )
    return squared_norm + linear + quadratic


#: name -> (description, EPConfig changes, data change). Data changes: "labels-100" (targets of
#: ``jax.nn.one_hot(y[:100])[i]``: JAX clamps the index, so every example past 99 gets the
#: label of example 99) and "one-batch" (the seed's ``range(0, B, B)`` loop: every update sees
#: the first minibatch; we tile it to the training-set size so the number of updates is equal).
SEED_VARIANTS: dict[str, tuple[str, dict, str | None]] = {
    "reference": ("reference semantics", {}, None),
    "square-u": ("1/2 u^2 instead of 1/2 rho(u)^2 (not a bug)", {"square": "u"}, None),
    "hard-sigmoid": ("rho = jax.nn.hard_sigmoid", {"rho": "hard_sigmoid"}, None),
    "sum": ("update summed over the batch", {"aggregate": "sum"}, None),
    "sign-mismatch": ("per-example sign of beta, update divided by +beta",
                      {"sign": "example-mismatch"}, None),
    "mean-energy-grad": ("state gradient of the batch-mean energy", {"state_grad": "mean"}, None),
    "labels-100": ("only the first 100 labels one-hot encoded", {}, "labels-100"),
    "one-batch": ("one minibatch per epoch", {}, "one-batch"),
    "seed": ("the seed's actual bugs together: hard_sigmoid and one minibatch",
             {"rho": "hard_sigmoid"}, "one-batch"),
}


def seed_variant_splits(splits, data_change: str | None, batch_size: int):
    """The training split as the seed notebook's data pipeline would have fed it."""
    if data_change is None:
        return splits
    n = len(splits.y_train)
    if data_change == "labels-100":
        # what the seed's encoding gives when indexed by example: JAX clamps out-of-range gathers
        targets = jax.nn.one_hot(jnp.asarray(splits.y_train[:100]), 10)[jnp.arange(n)]
        return splits._replace(y_train=np.asarray(jnp.argmax(targets, -1), np.int32))
    if data_change == "one-batch":
        reps = n // batch_size
        return splits._replace(
            x_train=np.tile(splits.x_train[:batch_size], (reps, 1)),
            y_train=np.tile(splits.y_train[:batch_size], reps),
        )
    raise ValueError(f"unknown data change {data_change!r}; use 'labels-100' or 'one-batch'")
