r"""Online GLE learning with Adam, laid out for throughput: feature-major, layers stacked.

:func:`online_adam` runs what a ``lax.scan`` of :func:`gridlib.gle.model.step` followed by an Adam
step computes (the per-layer form, :func:`gridlib.gle.mnist1d.train_batch_stepwise`), with the
same numbers up to float rounding (tested in float64), but arranged so that a CPU spends its
time in the matrix products:

- **Feature-major state** ``(n, B)`` instead of ``(B, n)``. Then all three products of a layer
  (forward rates ``W r``, errors sent down ``W^T e``, weight gradient ``e r^T``) are plain
  row-major matrix products; batch-major, the weight gradient contracts the batch axis of its
  left operand and falls back to a slower kernel.
- **Layers stacked**: consecutive layers of one shape, activation and plasticity form a group
  whose three products are one batched product each (the five hidden layers of the MNIST-1D
  networks are one group).
- **Bias folded into the weights**: ``[W | b]`` times ``[r; 1]``; the bias gradient is the last
  column of the weight gradient, so neither needs a reduction or an optimiser step of its own.
- **Slopes from rates**: for ``tanh``, ``sigmoid`` and ``linear`` the slope ``phi'(u_breve)`` is
  a function of the rate ``phi(u_breve)`` (``1 - r^2``, ``r (1 - r)``, ``1``), computed by the
  same expression as :data:`gridlib.gle.model.ACTIVATIONS`, so it need not be carried from step
  to step. The first step of a call still reads the slopes it is given (an all-zero initial
  state has ``r' = 0``, which is no function of ``r = 0``).
- **No optimiser state for time constants**: without ``learn_tau`` their gradients are zero, so
  Adam's moments for them stay zero and its update is exactly zero; they are left out.

A call handles one network (one seed); run seeds one after another (``lax.map``): a seed's
state then stays in the core's cache, which on two CPU cores is faster per CPU-second than
``vmap`` over seeds, although ``vmap`` turns each product into a batch of one per seed. Compiled
with :data:`COMPILER_OPTIONS`, the loop also copies less, vectorises wider and runs its kernels
without hand-offs between threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gridlib.gle.model import ACTIVATIONS, Config, Layer, LayerState, loss_value, output_error

Array = jax.Array

#: Slopes as functions of rates, the same expressions as ``ACTIVATIONS``' derivatives evaluated
#: at the ``u_breve`` that gave the rate (``tanh' = 1 - tanh^2``, ``sigmoid' = s (1 - s)``).
_SLOPE_FROM_RATE = {
    "linear": jnp.ones_like,
    "tanh": lambda r: 1.0 - r * r,
    "sigmoid": lambda r: r * (1.0 - r),
}


#: XLA:CPU options for code that runs :func:`online_adam` (``jax.jit(..., compiler_options=...)``,
#: :attr:`gridlib.experiment.Task.compiler_options`): region analysis lets copy insertion drop
#: most per-step copies of the loop state; 512-bit vectors (where the CPU has them) speed up the
#: element-wise work (``tanh``, Adam's square roots and divisions). The memory-optimised
#: schedule lets consecutive kernels reuse buffers; XLA:CPU's runtime, which runs kernels
#: concurrently only where no buffer links them, then runs a step's small kernels one after
#: another on one thread (as measured per thread on two cores). Under the default schedule it
#: runs independent kernels on both cores' threads and hands work between them many times per
#: step; on two cores that took a fifth to a quarter more CPU time per step
#: (``benchmarks/gle.py``). The arithmetic is unchanged: the results are bit for bit the
#: same. Other backends ignore these options.
COMPILER_OPTIONS = {
    "xla_cpu_copy_insertion_use_region_analysis": True,
    "xla_cpu_prefer_vector_width": 512,
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
}


def supports(cfg: Config) -> bool:
    """Whether :func:`online_adam` covers ``cfg``: biases learned, time constants fixed."""
    return cfg.learn_bias and not cfg.learn_tau


def _groups(net: Sequence[Layer], cfg: Config) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` of runs of layers with one shape, activation and plasticity; the input
    layer alone (it sends no error down)."""
    plastic = cfg.plastic or (True,) * len(net)
    key = [(lay.W.shape, cfg.activations[i], plastic[i]) for i, lay in enumerate(net)]
    cuts = [0] + [i for i in range(1, len(net)) if i == 1 or key[i] != key[i - 1]] + [len(net)]
    return tuple(zip(cuts[:-1], cuts[1:], strict=True))


class _Group(NamedTuple):
    """Dynamic state of a group of ``G`` layers, feature-major ``(G, n, B)``. ``rp`` is ``None``
    where it is derived from ``r``; ``e_bottom`` is ``None`` for the input layer."""

    u: Array
    v: Array
    r: Array
    rp: Array | None
    e_bottom: Array | None


def _augment(layers: Sequence[Any]) -> Array:
    """``(G, n_out, n_in + 1)``: ``[W | b]`` of each layer (or of each layer's moments)."""
    return jnp.stack([jnp.concatenate([lay.W, lay.b[:, None]], axis=-1) for lay in layers])


def _fm(a: Array) -> Array:
    return jnp.swapaxes(a, -1, -2)


def _pack_state(dyn: Sequence[LayerState], a: int, b: int) -> _Group:
    st = jax.tree.map(lambda *x: _fm(jnp.stack(x)), *dyn[a:b])
    return _Group(st.u, st.v, st.r, st.rp, None if a == 0 else st.e_bottom)


def _with_ones(r: Array) -> Array:
    return jnp.concatenate([r, jnp.ones(r.shape[:-2] + (1, r.shape[-1]), r.dtype)], axis=-2)


def _step(wa, taus, dyn, x, target, cfg: Config, groups):
    """One synchronous Euler step of all groups; ``x: (n_0, B)``, ``target: (B, n_N)``.

    A group whose ``rp`` is ``None`` derives its slopes from its rates; the new state carries
    ``rp`` only where it cannot be derived. Returns ``(new_dyn, weight_gradients, out)`` with
    ``out: (n_N, B)`` the previous output.
    """
    plastic = cfg.plastic or (True,) * len(cfg.activations)
    batch = x.shape[-1]
    dyn = tuple(st._replace(rp=_SLOPE_FROM_RATE[cfg.activations[a]](st.r)) if st.rp is None else st
                for st, (a, _) in zip(dyn, groups, strict=True))  # fmt: skip
    new_dyn, grads = [], []
    for gi, ((a, b), w, (tau_m, tau_r), st) in enumerate(zip(groups, wa, taus, dyn, strict=True)):
        below = x if gi == 0 else dyn[gi - 1].r[-1]
        r_pre = _with_ones(jnp.concatenate([below[None], st.r[:-1]]) if b - a > 1 else below[None])
        if gi == len(groups) - 1:
            above = _fm(output_error(_fm(st.r[-1]), target, cfg))
        else:
            above = dyn[gi + 1].e_bottom[0]
        e_above = jnp.concatenate([st.e_bottom[1:], above[None]]) if b - a > 1 else above[None]
        inst_e = e_above * st.rp
        inst_s = jnp.einsum("gij,gjb->gib", w, r_pre)
        tau_m, tau_r = tau_m[..., None], tau_r[..., None]
        if cfg.prospective_errors:
            v_dot = (inst_e - st.v) / tau_r
            v_new = st.v + cfg.dt * v_dot
            e = st.v + tau_m * v_dot
        else:
            v_new = e = inst_e
        soma = inst_s + cfg.gamma * e if cfg.gamma != 0 else inst_s
        u_dot = (soma - st.u) / tau_m
        u_new = st.u + cfg.dt * u_dot
        u_breve = st.u + tau_r * u_dot
        phi, dphi = ACTIVATIONS[cfg.activations[a]]
        e_bottom = None
        if a > 0:
            # W^T materialised (the barrier keeps the compiler from folding the transpose back
            # into the product, which would make it the slow transposed-operand kind)
            w_t = jax.lax.optimization_barrier(_fm(w[..., :-1]))
            e_bottom = jnp.einsum("gji,gib->gjb", w_t, e)
        rp = None if cfg.activations[a] in _SLOPE_FROM_RATE else dphi(u_breve)
        new_dyn.append(_Group(u_new, v_new, phi(u_breve), rp, e_bottom))
        if plastic[a]:
            grads.append(-jnp.einsum("gib,gjb->gij", e, r_pre) / batch)
        else:
            grads.append(jnp.zeros_like(w))
    return tuple(new_dyn), tuple(grads), dyn[-1].r[-1]


def online_adam(
    net: Sequence[Layer],
    opt: optax.ScaleByAdamState,
    dyn: Sequence[LayerState],
    xs: Array,
    target: Array,
    cfg: Config,
    lr: Array,
    adam: optax.GradientTransformation,
):
    """Online GLE learning over ``xs: (T, B, n_0)`` with a constant ``target: (B, n_N)``.

    At every step: one :func:`gridlib.gle.model.step`, then ``upd, opt = adam.update(grads,
    opt)`` and ``p <- p - lr * upd`` for every weight and bias (the MNIST-1D update). ``adam``
    must act element by element with zero update for zero gradient and zero moments (Adam).

    Args:
        net: the layers (``supports(cfg)`` must hold).
        opt: ``adam``'s state for ``net`` (moments with the structure of ``net``).
        dyn: the dynamic state, batch-major as :func:`gridlib.gle.model.init_state` makes it.
        xs: ``(T, B, n_0)`` inputs, time leading.
        target: ``(B, n_N)`` the target at every step.
        cfg: static settings.
        lr: the learning rate (a scalar array).
        adam: the optimiser (e.g. ``optax.scale_by_adam()``).

    Returns:
        ``(net, opt, dyn, out_sum, loss_sum)``: the new parameters, optimiser and dynamic states
        (same structures and layouts as given), the outputs summed over time ``(B, n_N)`` and the
        per-example loss summed over time ``(B,)``.
    """
    if not supports(cfg):
        raise ValueError("online_adam needs learn_bias=True and learn_tau=False; "
                         "use the per-layer form (model.step) otherwise")  # fmt: skip
    net, dyn = tuple(net), tuple(dyn)
    groups = _groups(net, cfg)
    wa = tuple(_augment(net[a:b]) for a, b in groups)
    taus = tuple((jnp.stack([lay.tau_m for lay in net[a:b]]), jnp.stack([lay.tau_r for lay in net[a:b]]))
                 for a, b in groups)  # fmt: skip
    moments = (tuple(_augment(opt.mu[a:b]) for a, b in groups),
               tuple(_augment(opt.nu[a:b]) for a, b in groups))  # fmt: skip
    state = tuple(_pack_state(dyn, a, b) for a, b in groups)
    xs_fm = _fm(xs)

    def body(carry, x_t):
        wa, mu, nu, count, state, out_sum, loss_sum = carry
        state, grads, out = _step(wa, taus, state, x_t, target, cfg, groups)
        upd, st = adam.update(grads, opt._replace(count=count, mu=mu, nu=nu))
        wa = tuple(p - lr * u for p, u in zip(wa, upd, strict=True))
        out = _fm(out)
        carry = (wa, st.mu, st.nu, st.count, state, out_sum + out, loss_sum + loss_value(out, target, cfg))
        return carry, None

    zeros = jnp.zeros(target.shape, xs.dtype)
    carry = (wa, *moments, opt.count, state, zeros, zeros[:, 0])
    # the first step reads the slopes it is given; from then on they follow from the rates
    carry, _ = body(carry, xs_fm[0])
    carry, _ = jax.lax.scan(body, carry, xs_fm[1:])
    wa, mu, nu, count, state, out_sum, loss_sum = carry

    def unpack(aug, like):
        return tuple(like[a + i]._replace(W=w[i, :, :-1], b=w[i, :, -1])
                     for w, (a, b) in zip(aug, groups, strict=True) for i in range(b - a))  # fmt: skip

    def unpack_state(g: _Group, a: int, b: int):
        rp = g.rp if g.rp is not None else _SLOPE_FROM_RATE[cfg.activations[a]](g.r)
        eb = g.e_bottom if g.e_bottom is not None else _fm(dyn[0].e_bottom[None])
        return [LayerState(*(_fm(f[i]) for f in (g.u, g.v, g.r, rp, eb))) for i in range(b - a)]

    new_dyn = tuple(s for g, (a, b) in zip(state, groups, strict=True) for s in unpack_state(g, a, b))
    opt = opt._replace(count=count, mu=unpack(mu, opt.mu), nu=unpack(nu, opt.nu))
    return unpack(wa, net), opt, new_dyn, out_sum, loss_sum
