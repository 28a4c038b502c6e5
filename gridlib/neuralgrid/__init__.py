"""NeuralGrid: a grid of sine neurons with one weight per *source* neuron (Fischer 2021).

- :mod:`~gridlib.neuralgrid.model`       the fast (shift-and-add) grid layer with vectorised
  sin/cos and a hand-written VJP, parameters, the 2-D and 3-D networks, forward, activations
- :mod:`~gridlib.neuralgrid.layers`      the equivalent explicit, sparse-matrix and unfold forms
  of the layer's pre-activation (references and the benchmark's baseline)
- :mod:`~gridlib.neuralgrid.reference`   the original's (shifted) double loop and a cell-by-cell
  numpy forward/backward (tests and benchmarks)
- :mod:`~gridlib.neuralgrid.summary`     what the chapter loads and shows, checked against the
  configuration the prose describes
- :mod:`~gridlib.neuralgrid.experiments` configs, presets, tasks for ``fit`` and the
  ``python -m gridlib neuralgrid-fashion`` / ``neuralgrid3d`` commands (not imported here)

Learning rule: none of its own. NeuralGrid is trained end to end by backprop (the structure,
not the rule, is local): the task is the shared :func:`gridlib.baselines.supervised_task` and
the loop the shared :func:`gridlib.experiment.fit`, so this package has no rule module.

Example:
    A network with a 16-high, 4-deep grid maps two 784-pixel images to ten logits. The fast
    shift-and-add pre-activation equals the explicit one-neuron-at-a-time sum, and so does
    the whole network built on either:

    >>> import jax, jax.numpy as jnp
    >>> from gridlib import neuralgrid as ng
    >>> params = ng.init_network(jax.random.PRNGKey(0), n_in=784, height=16,
    ...                          width=4, n_classes=10)
    >>> x = jax.random.uniform(jax.random.PRNGKey(1), (2, 784))  # pixels in [0, 1]
    >>> logits = ng.network_apply(params, x)
    >>> logits.shape
    (2, 10)
    >>> h = jax.random.normal(jax.random.PRNGKey(2), (2, 16))  # one grid column
    >>> w, b = params.grid.weight[0], params.grid.bias[0]
    >>> bool(jnp.allclose(ng.preact_fast(h, w, b), ng.preact_explicit(h, w, b),
    ...                   atol=1e-5))
    True
    >>> explicit = ng.network_apply(params, x, form="explicit")
    >>> bool(jnp.allclose(logits, explicit, atol=1e-5))
    True
"""

from gridlib.neuralgrid.layers import (
    grid3d_matrix,
    grid_matrix,
    preact3d_explicit,
    preact3d_sparse,
    preact_explicit,
    preact_sparse,
    preact_unfold,
)
from gridlib.neuralgrid.model import (
    PREACT_FORMS,
    Grid3DParams,
    GridParams,
    NetworkParams,
    box_sum,
    class_mean_activations,
    fast_cos,
    fast_sin,
    grid3d_apply,
    grid3d_layer,
    grid_activations,
    grid_forward,
    grid_layer,
    init_grid,
    init_grid3d,
    init_linear,
    init_network,
    layer,
    neighbour_sum,
    network_apply,
    normalise,
    preact3d_fast,
    preact_fast,
    sincos,
)
from gridlib.neuralgrid.reference import naive_loop_grads, seed_loop_preact

__all__ = [
    "PREACT_FORMS",
    "Grid3DParams",
    "GridParams",
    "NetworkParams",
    "box_sum",
    "class_mean_activations",
    "grid3d_apply",
    "grid3d_layer",
    "grid3d_matrix",
    "grid_activations",
    "grid_forward",
    "grid_layer",
    "grid_matrix",
    "init_grid",
    "init_grid3d",
    "init_linear",
    "init_network",
    "layer",
    "naive_loop_grads",
    "neighbour_sum",
    "network_apply",
    "normalise",
    "preact3d_explicit",
    "preact3d_fast",
    "preact3d_sparse",
    "preact_explicit",
    "preact_fast",
    "preact_sparse",
    "preact_unfold",
    "seed_loop_preact",
    "sincos",
    "fast_cos",
    "fast_sin",
]
