r"""Backpropagation through time through the *same* discretised GLE dynamics.

The baselines of the teacher--student chapter: autodiff of the summed output loss over a window
of ``window`` Euler steps, one optimiser step per window, the dynamic state carried from window
to window (truncated BPTT; one window over the whole sequence is full BPTT). And the exact
adjoint :math:`\lambda_l(t) = -\delta \mathcal L / \delta I_l(t)` of every layer's input current,
the quantity that GLE's causal errors approximate.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from gridlib.gle.model import (
    Array,
    Config,
    Layer,
    LayerState,
    loss_value,
    simulate,
)
from gridlib.gle.online import (
    Learner,
    clamp_tau,
)


def window_loss(net, state, xs, targets, cfg: Config, drives=None):
    """``beta * sum_t mean_b L(out_t, target_t)`` of a forward run without output nudging.

    Returns ``(loss, (final_state, outs))``. The state is a constant (no gradient flows into
    the previous window).
    """
    state = jax.lax.stop_gradient(tuple(state))
    final, outs = simulate(net, state, xs, None, cfg, drives=drives)
    loss = cfg.beta * jnp.sum(jnp.mean(loss_value(outs, targets, cfg), axis=-1))
    return loss, (final, outs)


def bptt_grads(net, state, xs, targets, cfg: Config):
    """Exact gradient of :func:`window_loss` with respect to the parameters.

    ``tau_r`` never learns and ``tau_m`` only with ``cfg.learn_tau``; layers outside
    ``cfg.plastic`` get zero gradients, as in the local rule.
    """
    (loss, (final, outs)), g = jax.value_and_grad(window_loss, has_aux=True)(
        tuple(net), state, xs, targets, cfg
    )
    plastic = cfg.plastic or (True,) * len(net)
    g = tuple(
        Layer(
            gl.W if p else jnp.zeros_like(gl.W),
            gl.b if (p and cfg.learn_bias) else jnp.zeros_like(gl.b),
            gl.tau_m if (p and cfg.learn_tau) else jnp.zeros_like(gl.tau_m),
            jnp.zeros_like(gl.tau_r),
        )
        for gl, p in zip(g, plastic, strict=True)
    )
    return g, loss, final, outs


def truncated_bptt(
    learner: Learner,
    xs: Array,
    targets: Array,
    cfg: Config,
    optimizer: optax.GradientTransformation,
    window: int,
    *,
    tau_min: float | None = None,
):
    """Truncated BPTT over ``xs: (T, B, n_0)`` in windows of ``window`` steps (``T % window == 0``).

    Returns ``(learner, (outs, losses))`` like :func:`gridlib.gle.learn` (``losses`` per step).
    """
    T = xs.shape[0]
    if window < 1 or T % window:
        raise ValueError(f"window={window} must be a positive divisor of the {T} steps")
    xw = xs.reshape((T // window, window) + xs.shape[1:])
    tw = targets.reshape((T // window, window) + targets.shape[1:])

    def body(lr_: Learner, inp):
        x, t = inp
        g, _, final, outs = bptt_grads(lr_.net, lr_.state, x, t, cfg)
        upd, opt_state = optimizer.update(g, lr_.opt_state, lr_.net)
        net = clamp_tau(optax.apply_updates(lr_.net, upd), tau_min)
        return Learner(net, opt_state, final), (outs, jnp.mean(loss_value(outs, t, cfg), axis=-1))

    learner, (outs, losses) = jax.lax.scan(body, learner, (xw, tw))
    return learner, (outs.reshape((T,) + outs.shape[2:]), losses.reshape(T))


def adjoint(
    net: Sequence[Layer],
    state: Sequence[LayerState],
    xs: Array,
    targets: Array,
    cfg: Config,
) -> tuple[Array, ...]:
    r"""Exact discrete adjoint :math:`\lambda_l[n] = -\partial(\sum_k L_k)/\partial I_l[n]`.

    ``I_l[n]`` is a current added to layer ``l``'s ``W r + b`` at step ``n``; summed (not
    averaged) over the batch so each stream keeps its own adjoint. Per layer ``(T, B, n_l)``.
    The continuous limit is :math:`\lambda = \mathcal I^+_{\tau_m}\mathcal D^-_{\tau_r}[\varphi'
    W^\top \lambda_{above}]`, anti-causal: it needs the future of the loss.
    """
    B = xs.shape[1]
    drives = tuple(jnp.zeros((xs.shape[0], B, lay.W.shape[0]), xs.dtype) for lay in net)

    def total(d):
        return B * window_loss(tuple(net), state, xs, targets, cfg, drives=d)[0] / cfg.beta

    return tuple(-g for g in jax.grad(total)(drives))
