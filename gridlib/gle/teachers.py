r"""Teacher--student tasks: LagLine (learn weights *and* membrane time constants) and LagNet.

**LagLine.** A chain ``1 -> 1 -> 1`` of softplus neurons, no bias, teacher ``w = (1, 2)``,
``tau_m = (1, 2)``, ``tau_r = 0.1``. The input is a ``+-1`` square wave of period 4 (random phase
per stream), Gaussian-smoothed over 5 steps. The student starts from ``w, tau_m ~ U(0, 1)`` and
must recover both. Models: ``gle`` (prospective errors), ``bp`` (instantaneous errors, same
forward pass) and ``bptt_tw{4,2,1}`` (truncated BPTT through the same Euler dynamics, windows of
4, 2, 1 time units).

**LagNet.** ``1 -> 2 -> 2 -> 1``, tanh hidden layers with one instantaneous (``tau_r = tau_m``)
and one lagging (``tau_r = 0.1``) neuron each, a linear output; the input is a sum of three
sines; only the first layer's two weights learn. GLE errors are compared with the exact adjoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gridlib import checkpoint
from gridlib.gle.bptt import adjoint, truncated_bptt
from gridlib.gle.model import (
    Config,
    Layer,
    init_state,
    loss_value,
    simulate,
    validate,
)
from gridlib.gle.online import (
    Learner,
    learn,
)

LAGLINE_MODELS = ("gle", "bp", "bptt_tw4", "bptt_tw2", "bptt_tw1")


class LagLineSetup(NamedTuple):
    """LagLine hyper-parameters (the published values are the defaults; times in a.u.)."""

    dt: float = 0.01
    gamma: float = 1.0
    beta: float = 0.01
    batch: int = 100
    period: float = 4.0
    sigma_steps: float = 5.0
    t_init: float = 50.0
    t_train: float = 4000.0
    lr: float = 1e-4
    tau_min_factor: float = 10.0
    record_every: float = 4.0
    teacher_w: tuple[float, float] = (1.0, 2.0)
    teacher_tau_m: tuple[float, float] = (1.0, 2.0)
    tau_r: float = 0.1


def lagline_config(setup: LagLineSetup, model: str) -> Config:
    """The network settings of a LagLine student (``model`` picks the error dynamics)."""
    if model not in LAGLINE_MODELS:
        raise ValueError(f"unknown LagLine model {model!r}; use one of {LAGLINE_MODELS}")
    return Config(
        activations=("softplus", "softplus"),
        dt=setup.dt,
        gamma=setup.gamma if model in ("gle", "bp") else 0.0,
        beta=setup.beta,
        prospective_errors=model == "gle",
        loss="mse",
        learn_bias=False,
        learn_tau=True,
    )


def lagline_net(w, tau_m, tau_r, dtype=jnp.float32) -> tuple[Layer, Layer]:
    """The chain ``1 -> 1 -> 1`` with weights ``w = (w1, w2)`` and time constants ``tau_m``."""
    w = jnp.asarray(w, dtype)
    tm = jnp.asarray(tau_m, dtype)
    tr = jnp.asarray(tau_r, dtype)
    z = jnp.zeros(1, dtype)
    return tuple(Layer(w[i].reshape(1, 1), z, tm[i].reshape(1), tr.reshape(1)) for i in range(2))


def lagline_input_table(setup: LagLineSetup) -> np.ndarray:
    """One period of the smoothed square wave, ``(P,)`` with ``P = period/dt`` steps.

    The Gaussian smoothing (standard deviation ``sigma_steps``) is circular, so the periodic
    signal is smooth everywhere.
    """
    n = int(round(setup.period / setup.dt))
    sq = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    k = np.arange(n)
    k = np.minimum(k, n - k)
    kern = np.exp(-0.5 * (k / setup.sigma_steps) ** 2)
    kern /= kern.sum()
    return np.real(np.fft.ifft(np.fft.fft(sq) * np.fft.fft(kern)))


def _inputs(table, phase, n0, n_steps):
    """``(n_steps, B, 1)`` inputs of the streams with integer ``phase: (B,)`` from step ``n0``."""
    idx = (n0 + jnp.arange(n_steps)[:, None] + phase[None, :]) % table.shape[0]
    return table[idx][..., None]


def run_lagline(model: str, key: jax.Array, setup: LagLineSetup | None = None,
                dtype=jnp.float32, trace_steps: int = 800, *, n_chunks: int = 1,
                progress: bool = False, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train one LagLine student; return its parameter and loss trajectories.

    Timeline: ``t_init`` without learning (first half with the teacher's ``tau_m``, second half
    with the student's own), then ``t_train`` of learning. Returns a dict of numpy arrays:
    ``t`` (record times), ``w (n, 2)``, ``tau_m (n, 2)``, ``loss (n,)`` (mean over each record
    interval), ``init_loss`` (per record interval during ``t_init``), and ``trace_*``: the output,
    target and both layers' errors of stream 0 over the first and last ``trace_steps`` steps.

    The learning phase runs in ``n_chunks`` jitted calls, with a progress bar if ``progress``;
    with ``run_dir`` a checkpoint is written after each call and a rerun with the same arguments
    resumes from it.
    """
    setup = setup or LagLineSetup()
    cfg = lagline_config(setup, model)
    dt = setup.dt
    rec = int(round(setup.record_every / dt))
    n_init = int(round(setup.t_init / dt))
    n_train = int(round(setup.t_train / dt))
    if n_train % rec or n_init % 2:
        raise ValueError(
            f"t_train={setup.t_train} must be a multiple of record_every={setup.record_every} "
            f"and t_init={setup.t_init} an even number of steps"
        )
    teacher = lagline_net(setup.teacher_w, setup.teacher_tau_m, setup.tau_r, dtype)
    k_w, k_t, k_p = jax.random.split(key, 3)
    tau_min = setup.tau_min_factor * dt
    student = lagline_net(
        jax.random.uniform(k_w, (2,), dtype),
        jnp.maximum(jax.random.uniform(k_t, (2,), dtype), tau_min),
        setup.tau_r,
        dtype,
    )
    validate(student, cfg)
    table = jnp.asarray(lagline_input_table(setup), dtype)
    phase = jax.random.randint(k_p, (setup.batch,), 0, table.shape[0])

    if model.startswith("bptt"):
        window = int(round(float(model.removeprefix("bptt_tw")) / dt))
        if rec % window:
            raise ValueError(f"record interval {rec} steps is not a multiple of window {window}")
        optimizer = optax.adam(setup.lr * window)
    else:
        window = 0
        optimizer = optax.adam(setup.lr)

    def chunk(carry, n0, length: int, learn_on: bool, use_teacher_tau: bool = False):
        lr_, t_state = carry
        xs = _inputs(table, phase, n0, length)
        t_state, targets = simulate(teacher, t_state, xs, None, cfg._replace(beta=0.0))
        net = lr_.net
        if use_teacher_tau:
            net = tuple(s._replace(tau_m=t.tau_m) for s, t in zip(net, teacher, strict=True))
        if not learn_on:
            st, outs = simulate(net, lr_.state, xs, targets, cfg)
            losses = jnp.mean(loss_value(outs, targets, cfg), axis=-1)
            return (lr_._replace(state=st), t_state), losses
        if window:
            lr_, (_, losses) = truncated_bptt(lr_, xs, targets, cfg, optimizer, window,
                                              tau_min=tau_min)
        else:
            lr_, (_, losses) = learn(lr_, xs, targets, cfg, optimizer, tau_min=tau_min)
        return (lr_, t_state), losses

    @jax.jit
    def init_phase(carry):
        half = n_init // 2
        carry, l1 = chunk(carry, 0, half, False, True)  # correct tau, wrong w
        carry, l2 = chunk(carry, half, half, False, False)  # the student's own tau
        return carry, jnp.concatenate([l1, l2])

    @jax.jit
    def train_phase(carry, starts):
        def body(c, n0):
            c, losses = chunk(c, n0, rec, True)
            lr_ = c[0]
            w = jnp.stack([lay.W[0, 0] for lay in lr_.net])
            tm = jnp.stack([lay.tau_m[0] for lay in lr_.net])
            return c, (jnp.mean(losses), w, tm)

        return jax.lax.scan(body, carry, starts)

    @jax.jit
    def trace(carry, n0):
        # record one stream's signals over a window without changing the run
        lr_, t_state = carry
        xs = _inputs(table, phase, n0, trace_steps)
        _, targets = simulate(teacher, t_state, xs, None, cfg._replace(beta=0.0))
        _, (so, _) = simulate(lr_.net, lr_.state, xs, targets, cfg, record=True)
        return xs[:, 0, 0], so.out[:, 0, 0], targets[:, 0, 0], so.errors[0][:, 0, 0], so.errors[1][:, 0, 0]

    learner = Learner(student, optimizer.init(student), init_state(student, setup.batch))
    carry = (learner, init_state(teacher, setup.batch))
    chunks = np.array_split(n_init + np.arange(0, n_train, rec), max(1, min(n_chunks, n_train // rec)))
    fingerprint = repr((model, tuple(setup), np.asarray(jax.random.key_data(key)).tolist(),
                        str(jnp.dtype(dtype)), trace_steps, len(chunks)))
    tag = hashlib.sha256(fingerprint.encode()).hexdigest()[:12]  # one file per configuration
    ckpt = Path(run_dir) / f"lagline_{model}_{tag}.npz" if run_dir is not None else None
    parts: list = []
    part_shapes: dict[int, Any] = {}

    def template(meta: dict) -> dict:
        """The saved arrays' structure, shapes and dtypes, from the code (never the file)."""
        init_like, losses_like = jax.eval_shape(init_phase, carry)
        n_done = meta.get("n_parts")
        if not isinstance(n_done, int) or not 0 <= n_done <= len(chunks):
            raise checkpoint.CheckpointError(f"checkpoint {ckpt} records {n_done!r} of "
                                             f"{len(chunks)} chunks; {checkpoint.FRESH_HINT}")
        for c in {len(chunks[i]) for i in range(n_done)} - set(part_shapes):
            part_shapes[c] = jax.eval_shape(train_phase, init_like, jnp.zeros(c, jnp.int32))[1]
        return {"carry": carry, "init_losses": losses_like,
                "first": jax.eval_shape(trace, init_like, n_init),
                "parts": [part_shapes[len(chunks[i])] for i in range(n_done)]}

    if ckpt is not None:
        checkpoint.remove_stale(ckpt)
    saved = checkpoint.load(ckpt, fingerprint, template) if ckpt is not None else None
    if saved is not None:
        carry = jax.tree.map(jnp.asarray, saved.state["carry"])
        init_losses, first = saved.state["init_losses"], saved.state["first"]
        parts = [tuple(p) for p in saved.state["parts"]]
    else:
        carry, init_losses = init_phase(carry)
        first = trace(carry, n_init)
    from tqdm import tqdm

    for i in tqdm(range(len(parts), len(chunks)), desc=f"LagLine {model}", disable=not progress,
                  initial=len(parts), total=len(chunks), unit="chunk"):
        carry, part = train_phase(carry, jnp.asarray(chunks[i]))
        part = jax.device_get(part)
        if not all(np.all(np.isfinite(p)) for p in part):
            raise FloatingPointError(f"LagLine {model}: the loss or weights became NaN/inf in chunk "
                                     f"{i + 1} of {len(chunks)}: the run diverged (try a smaller lr)")
        parts.append(part)
        if ckpt is not None:
            checkpoint.save(ckpt, {"carry": carry, "init_losses": init_losses, "first": first,
                                   "parts": parts},
                            {"fingerprint": fingerprint, "n_parts": len(parts)})
    losses, ws, taus = (np.concatenate([p[j] for p in parts]) for j in range(3))
    last = trace(carry, n_init + n_train)
    names = ("x", "out", "target", "e1", "e2")
    out = {
        "t": np.asarray(setup.t_init + (np.arange(len(losses)) + 1) * setup.record_every),
        "w": np.asarray(ws),
        "tau_m": np.asarray(taus),
        "loss": np.asarray(losses),
        # mean over 1 a.u. bins during t_init
        "init_loss": np.asarray(init_losses).reshape(-1, int(round(1 / dt))).mean(axis=1),
        "w0": np.asarray([lay.W[0, 0] for lay in student]),
        "tau_m0": np.asarray([lay.tau_m[0] for lay in student]),
    }
    out.update({f"trace_first_{k}": np.asarray(v) for k, v in zip(names, first, strict=True)})
    out.update({f"trace_last_{k}": np.asarray(v) for k, v in zip(names, last, strict=True)})
    return out


# --------------------------------------------------------------------------------------------
# LagNet
# --------------------------------------------------------------------------------------------


class LagNetSetup(NamedTuple):
    """LagNet hyper-parameters (the published values are the defaults; times in a.u.)."""

    dt: float = 0.01
    t_total: float = 1001.0
    omegas: tuple[float, ...] = (0.49, 1.07, 1.98)
    gamma: float = 1e-3
    beta: float = 1.0
    lr: float = 2e-4
    momentum: float = 0.9
    learn_start: int = 8000
    am_window: int = 300
    am_lr: float = 7e-2
    record_every: int = 100


def lagnet_teacher(dtype=jnp.float32) -> tuple[Layer, Layer, Layer]:
    """Teacher with a strong slow path: hid_1 ``[[-0.5], [1]]``, hid_2 ``diag(0.5, 1)``, top
    ``[[0.5, 1]]``; hidden ``tau_m = 1``, ``tau_r = (1, 0.1)``; output ``tau_m = tau_r = 1``."""
    a = lambda v: jnp.asarray(v, dtype)
    tr = a([1.0, 0.1])
    return (
        Layer(a([[-0.5], [1.0]]), a([0.0, 0.0]), a([1.0, 1.0]), tr),
        Layer(a([[0.5, 0.0], [0.0, 1.0]]), a([0.0, 0.0]), a([1.0, 1.0]), tr),
        Layer(a([[0.5, 1.0]]), a([0.0]), a([1.0]), a([1.0])),
    )


def lagnet_config(setup: LagNetSetup, gamma: float | None = None) -> Config:
    """Only the first layer learns; no biases; prospective errors; MSE."""
    return Config(
        activations=("tanh", "tanh", "linear"),
        dt=setup.dt,
        gamma=setup.gamma if gamma is None else gamma,
        beta=setup.beta,
        prospective_errors=True,
        loss="mse",
        learn_bias=False,
        learn_tau=False,
        plastic=(True, False, False),
    )


def lagnet_inputs(setup: LagNetSetup, n_steps: int, dtype=jnp.float32) -> jax.Array:
    """``(n_steps, 1, 1)``: the sum of unit sines at ``setup.omegas``."""
    t = jnp.arange(n_steps, dtype=dtype) * setup.dt
    return sum(jnp.sin(w * t) for w in setup.omegas)[:, None, None]


def run_lagnet(key: jax.Array, setup: LagNetSetup | None = None, dtype=jnp.float32,
               n_steps: int | None = None) -> dict[str, Any]:
    """GLE and adjoint-method (windowed BPTT, the exact reference) students of the LagNet teacher.

    Returns numpy arrays: ``t``, ``w_gle (n, 2)``, ``w_am (n, 2)``, ``loss_gle``, ``loss_am``
    (per record interval) and, over the last window, ``trace_e_gle`` (GLE errors of the first
    layer) and ``trace_lambda`` (its exact adjoint for the same parameters and state).
    """
    setup = setup or LagNetSetup()
    teacher = lagnet_teacher(dtype)
    cfg = lagnet_config(setup)
    cfg_am = lagnet_config(setup, gamma=0.0)
    n = n_steps or int(round(setup.t_total / setup.dt))
    n = (n // setup.am_window) * setup.am_window
    w1 = jax.random.uniform(key, (2, 1), dtype, -1.0, 1.0)  # torch init for fan_in = 1
    student = (teacher[0]._replace(W=w1),) + teacher[1:]
    validate(student, cfg)
    win = 2000  # a window after learning, with frozen weights, for the errors-vs-adjoint figure
    xs_all = lagnet_inputs(setup, n + win, dtype)
    _, t_all = simulate(teacher, init_state(teacher, 1), xs_all, None, cfg._replace(beta=0.0))
    xs, targets = xs_all[:n], t_all[:n]
    rec = setup.record_every
    # GLE: SGD with momentum at every step, learning switched on at learn_start
    opt = optax.sgd(setup.lr, momentum=setup.momentum)

    @jax.jit
    def gle_run(net):
        lr0 = Learner(net, opt.init(net), init_state(net, 1))
        st, _ = simulate(net, lr0.state, xs[: setup.learn_start], targets[: setup.learn_start], cfg)
        lr0 = lr0._replace(state=st)
        xr = xs[setup.learn_start:]
        tr = targets[setup.learn_start:]
        m = (xr.shape[0] // rec) * rec
        xr, tr = xr[:m].reshape(-1, rec, 1, 1), tr[:m].reshape(-1, rec, 1, 1)

        def body(c, inp):
            c, (_, losses) = learn(c, inp[0], inp[1], cfg, opt)
            return c, (jnp.mean(losses), c.net[0].W[:, 0])

        return jax.lax.scan(body, lr0, (xr, tr))

    # AM: exact gradients over windows of am_window steps, one momentum-SGD step per window
    opt_am = optax.sgd(setup.am_lr, momentum=setup.momentum)

    @jax.jit
    def am_run(net):
        lr0 = Learner(net, opt_am.init(net), init_state(net, 1))
        st, _ = simulate(net, lr0.state, xs[: setup.learn_start], None, cfg_am)
        lr0 = lr0._replace(state=st)
        xr = xs[setup.learn_start:]
        tr = targets[setup.learn_start:]
        m = (xr.shape[0] // setup.am_window) * setup.am_window
        xr = xr[:m].reshape(-1, setup.am_window, 1, 1)
        tr = tr[:m].reshape(-1, setup.am_window, 1, 1)
        # the adjoint method's gradient is the time integral: loss summed over steps times dt
        cfg_dt = cfg_am._replace(beta=setup.beta * setup.dt)

        def body(c, inp):
            c, (_, losses) = truncated_bptt(c, inp[0], inp[1], cfg_dt, opt_am, setup.am_window)
            return c, (jnp.mean(losses), c.net[0].W[:, 0])

        return jax.lax.scan(body, lr0, (xr, tr))

    lr_gle, (loss_gle, w_gle) = gle_run(student)
    lr_am, (loss_am, w_am) = am_run(student)
    # errors vs adjoint over the window after learning, same parameters and state for both
    x_end, t_end = xs_all[n:], t_all[n:]
    st0 = lr_gle.state
    _, (so, _) = jax.jit(lambda s: simulate(lr_gle.net, s, x_end, t_end, cfg, record=True))(st0)
    lam = jax.jit(lambda s: adjoint(lr_gle.net, s, x_end, t_end, cfg))(st0)
    t_gle = (setup.learn_start + (np.arange(len(loss_gle)) + 1) * rec) * setup.dt
    t_am = (setup.learn_start + (np.arange(len(loss_am)) + 1) * setup.am_window) * setup.dt
    return {
        "t_gle": t_gle,
        "t_am": t_am,
        "w_gle": np.asarray(w_gle),
        "w_am": np.asarray(w_am),
        "loss_gle": np.asarray(loss_gle),
        "loss_am": np.asarray(loss_am),
        "w_teacher": np.asarray(teacher[0].W[:, 0]),
        "w0": np.asarray(w1[:, 0]),
        "trace_t": (n + np.arange(win)) * setup.dt,
        "trace_e_gle": np.asarray(so.errors[0][:, 0, :]),
        "trace_lambda": np.asarray(lam[0][:, 0, :]),
        "trace_out": np.asarray(so.out[:, 0, 0]),
        "trace_target": np.asarray(t_end[:, 0, 0]),
    }
