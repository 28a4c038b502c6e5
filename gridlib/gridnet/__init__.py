"""gridnet: a 3-D grid of scalar cells, updated in blocks with a frozen halo, trained by backprop.

A cube of ``G^3`` cells, each with its own 27 neighbour weights, bias and residual scale, is cut
into blocks of ``S^3``; one outer step applies ``I`` local updates to every block while the
one-cell halo stays frozen at its start-of-step value; ``O`` outer steps, each followed by a
global LayerNorm, carry an image from the input face to the readout face.

- :mod:`~gridlib.gridnet.cell`        the local update: offsets, activations, stencil, cell parameters
- :mod:`~gridlib.gridnet.blocking`    block layout, halo windows, the literal blocked outer step, masks
- :mod:`~gridlib.gridnet.hand_vjp`    the fast cells-major outer step and its hand-written VJP
- :mod:`~gridlib.gridnet.model`       config, parameters, outer loop, forward pass, diagnostics
- :mod:`~gridlib.gridnet.reference`   naive references: synchronous grid, 27-neighbour gather
- :mod:`~gridlib.gridnet.summary`     what the chapter loads and shows, checked against the configuration
  the prose describes
- :mod:`~gridlib.gridnet.experiments` presets, the backprop task and ``python -m gridlib gridnet-mnist``

Example:
    A 4 x 4 x 4 cube in blocks of 2 x 2 x 2, three outer steps: two images in, ten logits
    out. The fast forward pass (cells-major steps with a hand-written VJP) equals the naive
    one built on the 27-neighbour gather:

    >>> import jax, jax.numpy as jnp
    >>> from gridlib import gridnet
    >>> cfg = gridnet.Config(grid=4, block=2, outer=3)
    >>> params = gridnet.init(jax.random.PRNGKey(0), cfg)
    >>> x = jax.random.uniform(jax.random.PRNGKey(1), (2, 784))  # two images
    >>> logits = gridnet.forward(params, x, cfg)
    >>> logits.shape
    (2, 10)
    >>> naive = gridnet.forward_naive(params, x, cfg)
    >>> bool(jnp.allclose(logits, naive, atol=1e-4))
    True
"""

from gridlib.gridnet.blocking import (
    block_step_windows,
    blocked_step,
    cells_to_blocks,
    check_blocking,
    from_blocks,
    same_block_masks,
    to_blocks,
    windows,
)
from gridlib.gridnet.cell import (
    ACTIVATIONS,
    LEAKY_SLOPE,
    OFFSETS,
    CellParams,
    activation,
    activation_grad,
    check_activation,
    init_cells,
    stencil,
)
from gridlib.gridnet.hand_vjp import step, step_cm, transpose_weights
from gridlib.gridnet.model import (
    LN_EPS,
    MNIST_MEAN,
    MNIST_STD,
    Config,
    Params,
    depth_grad_norms,
    forward,
    image_layout,
    influence,
    init,
    initial_grid,
    iterate,
    layer_norm,
    loss_fn,
    readout,
    run_grid,
    trajectory,
)
from gridlib.gridnet.reference import forward_naive, naive_step, neighbour_table, sync_step

__all__ = [
    "ACTIVATIONS",
    "LEAKY_SLOPE",
    "LN_EPS",
    "MNIST_MEAN",
    "MNIST_STD",
    "OFFSETS",
    "CellParams",
    "Config",
    "Params",
    "activation",
    "activation_grad",
    "block_step_windows",
    "blocked_step",
    "cells_to_blocks",
    "check_activation",
    "check_blocking",
    "depth_grad_norms",
    "forward",
    "forward_naive",
    "from_blocks",
    "image_layout",
    "influence",
    "init",
    "init_cells",
    "initial_grid",
    "iterate",
    "layer_norm",
    "loss_fn",
    "naive_step",
    "neighbour_table",
    "readout",
    "run_grid",
    "same_block_masks",
    "stencil",
    "step",
    "step_cm",
    "sync_step",
    "to_blocks",
    "trajectory",
    "transpose_weights",
    "windows",
]
