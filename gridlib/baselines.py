"""Backprop baselines: a multilayer perceptron and a helper that turns any differentiable
model into a :class:`~gridlib.experiment.Task`.

Every chapter compares its local rule with the same network trained by backprop; this module
is the one place that does so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gridlib import data as gdata
from gridlib import devices, flags, results
from gridlib.cli import dense_memory, experiment
from gridlib.experiment import Task, fit, run_dir_for


class SupervisedState(NamedTuple):
    """Parameters and optimiser state of a model trained by gradient descent."""

    params: Any
    opt_state: optax.OptState


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy; ``logits: (B, C)``, ``y: (B,)`` int -> ``(B,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def supervised_task(
    init_params: Callable[[jax.Array], Any],
    apply: Callable[[Any, jax.Array], jax.Array],
    optimizer: optax.GradientTransformation,
    *,
    microbatches: int = 1,
    mesh: jax.sharding.Mesh | None = None,
) -> Task:
    """A :class:`Task` that trains ``apply(params, x) -> logits`` by backprop on mean cross-entropy.

    Two ways to compute the same gradient faster, each equal to the whole-batch gradient up to
    the order of float additions:

    * ``microbatches=k`` splits each minibatch into ``k`` equal parts and adds up their
      gradients in a ``lax.scan``, so the activations one part keeps for its backward pass stay
      in cache (NeuralGrid's 128 x 128 grid at batch 256 keeps 16 MB per stored array);
    * ``mesh`` (a 1-D mesh of several devices, :func:`gridlib.devices.local_mesh`) splits each
      minibatch over its devices first (:func:`gridlib.devices.split_batch`). On a CPU, start
      Python with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` for ``N`` devices.

    The batch size must be a multiple of ``microbatches`` times the mesh's size.
    """
    microbatches = int(microbatches)
    if microbatches < 1:
        raise ValueError(f"microbatches must be a positive integer, got {microbatches}")

    def init(key: jax.Array) -> SupervisedState:
        params = init_params(key)
        state = SupervisedState(params, optimizer.init(params))
        # on a mesh, start where every step leaves the state: copied to each device (else the
        # second call of a jitted step would compile again, for the new placement)
        return devices.replicate(state, mesh)

    def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits = apply(params, x)
        return cross_entropy(logits, y).mean(), logits

    def sum_loss(params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits = apply(params, x)
        return cross_entropy(logits, y).sum(), logits

    def summed(params: Any, x: jax.Array, y: jax.Array) -> tuple[tuple[jax.Array, Any], jax.Array]:
        """``((loss summed over x: (B, ...), its gradient), logits)``, ``microbatches`` parts
        at a time."""
        k = microbatches
        if x.shape[0] % k:
            raise ValueError(f"batch size {x.shape[0]} is not a multiple of microbatches={k}")

        def one(total, xy):
            (loss, logits), grads = jax.value_and_grad(sum_loss, has_aux=True)(params, *xy)
            return jax.tree.map(jnp.add, total, (loss, grads)), logits

        # part j holds examples j, j + k, j + 2k, ...
        parts = jax.tree.map(lambda a: a.reshape(-1, k, *a.shape[1:]).swapaxes(0, 1), (x, y))
        zero = (jnp.zeros((), x.dtype), jax.tree.map(jnp.zeros_like, params))
        total, logits = jax.lax.scan(one, zero, parts)
        return total, logits.swapaxes(0, 1).reshape(x.shape[0], -1)

    # the whole batch at once unless asked otherwise: the published runs' arithmetic
    split = None
    if microbatches > 1 or mesh is not None:
        split = summed if mesh is None else devices.split_batch(summed, mesh)

    def train_step(state: SupervisedState, x, y, key):
        del key
        if split is None:
            (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, y)
        else:
            (loss, grads), logits = split(state.params, x, y)
            loss, grads = jax.tree.map(lambda a: a / x.shape[0], (loss, grads))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return SupervisedState(params, opt_state), {"loss": loss, "acc": acc}

    def eval_step(state: SupervisedState, x, y):
        logits = apply(state.params, x)
        return {"loss": cross_entropy(logits, y).sum(), "acc": jnp.sum(jnp.argmax(logits, -1) == y)}

    return Task(init, train_step, eval_step)


class Dense(NamedTuple):
    """One affine layer: ``x @ w + b`` with ``w: (n_in, n_out)``, ``b: (n_out,)``."""

    w: jax.Array
    b: jax.Array


def mlp_init(key: jax.Array, sizes: Sequence[int], dtype: jnp.dtype | None = None) -> list[Dense]:
    """Glorot-uniform weights and zero biases for layer sizes ``(n_0, ..., n_L)``.

    ``dtype`` defaults to JAX's default float (float64 when x64 is enabled).
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"an MLP needs at least two positive layer sizes, got {tuple(sizes)}")
    dtype = dtype or jnp.zeros(()).dtype
    keys = jax.random.split(key, len(sizes) - 1)
    init = jax.nn.initializers.glorot_uniform()
    return [
        Dense(init(k, (m, n), dtype), jnp.zeros((n,), dtype))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid01": lambda x: jnp.clip(x, 0.0, 1.0),
}


def mlp_apply(params: Sequence[Dense], x: jax.Array, activation: str = "relu") -> jax.Array:
    """Logits of an MLP; ``x: (B, n_0)`` -> ``(B, n_L)``; no activation after the last layer."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]
    for layer in params[:-1]:
        x = act(x @ layer.w + layer.b)
    return x @ params[-1].w + params[-1].b


def mlp_task(sizes: Sequence[int], optimizer: optax.GradientTransformation, activation: str = "relu",
             **split: Any) -> Task:  # fmt: skip
    """An MLP with layer ``sizes`` trained by backprop with ``optimizer``; ``split``:
    :func:`supervised_task`'s ``microbatches`` and ``mesh``."""
    sizes = tuple(int(s) for s in sizes)
    mlp_init(jax.random.PRNGKey(0), sizes)  # validates sizes now, not inside jit
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    return supervised_task(
        lambda key: mlp_init(key, sizes), lambda p, x: mlp_apply(p, x, activation), optimizer, **split
    )


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"500,500"`` -> ``(500, 500)``; ``""`` -> ``()``."""
    try:
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError as err:
        raise ValueError(f"hidden sizes must be comma-separated integers, got {text!r}") from err


def _mlp_memory(args: dict[str, Any]) -> float:
    sizes = [784, *(int(h) for h in args["hidden"].split(",")), 10]
    return dense_memory(sizes, args["batch_size"])


@experiment("mlp", memory=_mlp_memory, flags={
    "dataset": flags.choice(lambda: tuple(gdata.LOADERS)),
    "activation": flags.choice(lambda: tuple(sorted(ACTIVATIONS))),
    "n_train": flags.integer(1, 1_000_000, special=(0,), meaning="0: all"),
})
def run_mlp(
    dataset: str = "mnist",
    hidden: str = "500",
    activation: str = "relu",
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    n_train: int = 0,
    validation: int = 0,
    seed: int = 0,
    name: str = "",
) -> dict:
    """A backprop MLP baseline (Adam) on mnist, fashion_mnist or mnist1d.

    Args:
        dataset: mnist, fashion_mnist or mnist1d.
        hidden: hidden layer sizes, comma-separated ("256,256").
        activation: relu, tanh, sigmoid or hard_sigmoid01.
        epochs: passes over the training set.
        batch_size: minibatch size.
        lr: Adam's learning rate.
        n_train: training examples (0: all).
        validation: examples held out from the end of the training set for validation.
        seed: initialisation and shuffling seed.
        name: results name (default: baselines/<dataset>-mlp-<sizes>_seed<seed>).
    """
    splits = gdata.load(dataset, n_train=n_train or None, validation=validation)
    sizes = (splits.x_train.shape[1], *parse_sizes(hidden), 10)
    config = dict(dataset=dataset, sizes=sizes, activation=activation, epochs=epochs,
                  batch_size=batch_size, lr=lr, n_train=len(splits.x_train), validation=validation)  # fmt: skip
    name = name or f"baselines/{dataset}-mlp-{'-'.join(map(str, sizes))}_seed{seed}"
    run = fit(mlp_task(sizes, optax.adam(lr), activation), splits, epochs=epochs, batch_size=batch_size,
              seed=seed, run_dir=run_dir_for(name), name=name, config=config)  # fmt: skip
    path = results.save(name, config=config, metrics=run.last, history=run.history, seed=seed)
    print(f"wrote {path}: " + ", ".join(f"{k}={v:.4f}" for k, v in run.last.items() if "/" in k))
    return run.last
