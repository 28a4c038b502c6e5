"""EP training: the task for ``fit`` and the command-line experiments of the chapters
*Why the first JAX attempt did not converge*, *Equilibrium propagation on MNIST* and
*Equilibrium propagation on Fashion-MNIST*.

* ``python -m gridlib ep-mnist`` EP (or ``--estimator symmetric`` / ``bptt``) on MNIST, or on
  Fashion-MNIST with ``--dataset fashion_mnist`` (*Equilibrium propagation on Fashion-MNIST*)
  -> ``results/ep/<dataset>_<sizes>_<estimator>_seed<s>.json`` (:func:`results_name`); checkpoints
  in ``runs/ep/...``, so an interrupted run resumes;
* ``python -m gridlib ep-seed-failures`` one short run per seed-notebook variant
  -> ``results/ep/seed_failures.json``;
* ``python -m gridlib ep-bptt-sweep`` backprop through the relaxation at scaled EP learning rates,
  EP alongside -> ``results/ep/bptt_sweep.json``.

:func:`train_step` is one minibatch: free phase (from zero, or from persistent particles), the
gradient estimate of ``cfg.estimator``, plain SGD with the per-layer rates ``cfg.alphas``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gridlib import data, flags, results, scale
from gridlib.cli import dense_memory, experiment
from gridlib.ep.bptt import bptt_gradient, pinned_target_fraction
from gridlib.ep.equilibrium import ep_gradient, sample_beta, symmetric_gradient
from gridlib.ep.model import (
    DEFAULT,
    ESTIMATORS,
    SIGNS,
    EPConfig,
    EPState,
    Params,
    check_config,
    cost,
    free_phase,
    init_params,
    one_hot,
    option_error,
    zero_states,
)
from gridlib.ep.seed_variants import SEED_VARIANTS, seed_variant_splits
from gridlib.experiment import Task, fit, run_dir_for

# --------------------------------------------------------------------------------------------
# the task


def init_state(key, cfg: EPConfig = DEFAULT, n_examples: int = 0) -> EPState:
    """Glorot parameters for ``cfg.sizes``; zero particles for ``n_examples`` if persistent."""
    cfg = check_config(cfg)
    particles = zero_states(n_examples, cfg.sizes) if cfg.persistent else ()
    return EPState(init_params(key, cfg.sizes), particles)


def _split_index(x, cfg: EPConfig):
    """With persistent particles the last input column holds the example index."""
    if cfg.persistent:
        return x[:, :-1], x[:, -1].astype(jnp.int32)
    return x, None


def train_step(state: EPState, x, labels, key, cfg: EPConfig = DEFAULT):
    """One minibatch of EP (or BPTT) training; returns ``(state, metrics)``.

    ``x: (B, n_0)`` (``(B, n_0 + 1)`` with the example index last if ``cfg.persistent``),
    ``labels: (B,)`` ints. Metrics are measured at the free fixed point *before* the update,
    as the reference code does: ``loss = mean C``, ``err`` (fraction misclassified,
    prediction ``argmax y``), and ``dlogW_k = |dW_k| / |W_k|``.
    """
    params = state.params
    x, idx = _split_index(x, cfg)
    target = one_hot(labels, cfg.sizes[-1])
    s0 = (
        tuple(p[idx] for p in state.particles)
        if idx is not None
        else zero_states(x.shape[0], cfg.sizes, x.dtype)
    )
    free = free_phase(params, x, cfg, s0)
    particles = (
        tuple(p.at[idx].set(h) for p, h in zip(state.particles, free, strict=True))
        if idx is not None
        else state.particles
    )
    if cfg.estimator == "bptt":
        grads = bptt_gradient(params, x, target, cfg, s0)
    elif cfg.estimator == "symmetric":
        grads = symmetric_gradient(params, x, target, free, cfg.beta, cfg)
    elif cfg.estimator == "ep":
        beta, ub = sample_beta(key, x.shape[0], cfg, x.dtype)
        grads, _ = ep_gradient(params, x, target, free, beta, cfg, update_beta=ub)
    else:
        raise option_error("estimator", cfg.estimator)
    new_w = tuple(w - a * g for w, a, g in zip(params.weights, cfg.alphas, grads.weights,
                                                 strict=True))
    new_b = tuple(b - a * g for b, a, g in zip(params.biases, cfg.alphas, grads.biases,
                                                 strict=True))
    y = free[-1]
    metrics = {
        "loss": jnp.mean(cost(y, target, cfg)),
        "err": jnp.mean(jnp.argmax(y, -1) != labels),
    }
    for k, (w, g, a) in enumerate(zip(params.weights, grads.weights, cfg.alphas, strict=True), 1):
        metrics[f"dlogW{k}"] = a * jnp.linalg.norm(g) / jnp.linalg.norm(w)
    return EPState(Params(new_w, new_b), particles), metrics


def eval_step(state: EPState, x, labels, cfg: EPConfig = DEFAULT):
    """Sums over the batch at the free fixed point reached from zero in ``n_eval`` steps."""
    params = state.params
    x, _ = _split_index(x, cfg)
    target = one_hot(labels, cfg.sizes[-1])
    y = free_phase(params, x, cfg, n_steps=cfg.n_eval)[-1]
    wrong = jnp.argmax(y, -1) != labels
    return {
        "loss": jnp.sum(cost(y, target, cfg)),
        "err": jnp.sum(wrong),
        "acc": jnp.sum(~wrong),
    }


def make_task(cfg: EPConfig = DEFAULT, n_examples: int = 0) -> Task:
    """A :class:`gridlib.experiment.Task` for ``cfg`` (``n_examples`` sizes the particles)."""
    cfg = check_config(cfg)
    if cfg.persistent and n_examples < 1:
        raise ValueError("persistent particles need n_examples (the training-set size)")
    return Task(
        init=partial(init_state, cfg=cfg, n_examples=n_examples),
        train_step=partial(train_step, cfg=cfg),
        eval_step=partial(eval_step, cfg=cfg),
    )


def with_index(splits):
    """Append the example index as a last float column of every split (for persistent particles).

    ``fit`` hands ``train_step`` only ``(x, y)``; the index (exact in float32 below 2^24) lets a
    step gather and scatter that example's stored state. Train indices are 0..n-1; the index of
    val/test examples is never used (evaluation starts from zero states).
    """
    width = int(np.prod(np.shape(splits.x_train)[1:]))
    out = {}
    for name in ("train", "val", "test"):
        xs = np.asarray(getattr(splits, f"x_{name}"), np.float32).reshape(-1, width)
        if len(xs) >= 2**24:
            raise ValueError("too many examples to carry their index exactly in float32")
        col = np.arange(len(xs), dtype=np.float32)[:, None]
        out[f"x_{name}"] = np.concatenate([xs, col], axis=1)
    return splits._replace(**out)


def run(cfg: EPConfig, splits, *, epochs: int, batch_size: int = 20, seed: int = 0,
        run_dir=None, name: str = "ep", progress: bool = True, eval_on=("test",)):
    """Train ``cfg`` on ``splits`` with :func:`gridlib.experiment.fit`; returns the ``Run``."""
    cfg = check_config(cfg)
    if cfg.persistent:
        splits = with_index(splits)
    task = make_task(cfg, n_examples=len(splits.y_train))
    return fit(task, splits, epochs=epochs, batch_size=batch_size, seed=seed, run_dir=run_dir,
               name=name, progress=progress, eval_on=eval_on, config=cfg._asdict())


def run_pair(splits, *, epochs: int, cfg: EPConfig = DEFAULT, seed: int = 0,
             progress: bool = False) -> dict:  # fmt: skip
    """``cfg`` trained by EP and the same sizes trained by backprop, on the same ``splits``;
    returns ``{"EP": Run, "backprop": Run}``, each evaluated on the test split.

    The backprop network is the baseline of *Equilibrium propagation on MNIST*: a feed-forward
    MLP with the clipped activation, softmax cross-entropy and Adam at 1e-3, minibatches of 20.
    """
    import optax

    from gridlib.baselines import mlp_task

    mlp = mlp_task(cfg.sizes, optax.adam(1e-3), "hard_sigmoid01")
    return {"EP": run(cfg, splits, epochs=epochs, seed=seed, name="EP", progress=progress),
            "backprop": fit(mlp, splits, epochs=epochs, batch_size=20, seed=seed, name="backprop",
                            progress=progress, eval_on=("test",))}  # fmt: skip


def run_seed_variants(splits, *, epochs: int, seed: int = 0, cfg: EPConfig = DEFAULT,
                      variants=None, progress: bool = False) -> dict:
    """Train every variant of :data:`~gridlib.ep.seed_variants.SEED_VARIANTS` (or ``variants``);
    returns name -> final metrics."""
    out = {}
    for v in variants or SEED_VARIANTS:
        desc, change, data_change = SEED_VARIANTS[v]
        sp = seed_variant_splits(splits, data_change, 20)
        r = run(cfg._replace(**change), sp, epochs=epochs, seed=seed, name=v, progress=progress)
        out[v] = {"description": desc, "test_err": r.last["test/err"],
                  "train_err_running": r.last["train/err"], "train_loss": r.last["train/loss"],
                  "test_err_per_epoch": r.history["test/err"]}
    return out


# --------------------------------------------------------------------------------------------
# command-line experiments


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError as err:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from err


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError as err:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from err


#: The data sets ``ep-mnist --dataset`` trains on: 60,000 training and 10,000 test images of
#: 28 x 28 pixels in ``[0, 1]``, ten classes, both through :func:`gridlib.data.load`.
DATASETS = ("mnist", "fashion_mnist")


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is one of :data:`DATASETS`; otherwise a one-line ``ValueError``."""
    if dataset not in DATASETS:
        raise ValueError(f"--dataset {dataset!r}: unknown data set; choose one of {', '.join(DATASETS)}")
    return dataset


def results_tag(cfg: EPConfig, dataset: str = "mnist") -> str:
    """``<dataset>_<sizes>_<estimator>``, e.g. ``fashion_mnist_784-500-10_ep``."""
    return f"{check_dataset(dataset)}_{'-'.join(str(n) for n in cfg.sizes)}_{cfg.estimator}"


def results_name(cfg: EPConfig, *, dataset: str = "mnist", seed: int = 0, tag: str = "",
                 ci: bool = False) -> str:  # fmt: skip
    """The results name of an ``ep-mnist`` run: ``ep/<dataset>_<sizes>_<estimator>_seed<s>``.

    ``ep/mnist_784-500-10_ep_seed0`` for the reference run, ``ep/fashion_mnist_784-500-10_ep_seed0``
    for the same network on Fashion-MNIST; under ``ep/ci/`` at CI scale. A ``tag`` replaces
    :func:`results_tag`, the part before ``_seed``.
    """
    return f"ep/{'ci/' if ci else ''}{tag or results_tag(cfg, dataset)}_seed{seed}"


def record_config(cfg: EPConfig, *, dataset: str, epochs: int, batch_size: int, n_train: int,
                  n_test: int) -> dict:  # fmt: skip
    """The config an ``ep-mnist`` record saves: every :class:`EPConfig` field, the schedule and
    the split, and ``dataset`` for any data set but MNIST.

    MNIST records predate the ``--dataset`` flag and have no ``dataset`` field (absent means
    MNIST); leaving it out keeps their configuration, and so re-runs and rechecks of them,
    unchanged.
    """
    config = {**cfg._asdict(), "epochs": epochs, "batch_size": batch_size, "n_train": n_train,
              "n_test": n_test}  # fmt: skip
    if check_dataset(dataset) != "mnist":
        config["dataset"] = dataset
    return config


def load_splits(dataset: str = "mnist"):
    """The full 60k/10k split of ``dataset`` (2000/1000 examples at GRIDLIB_SCALE=ci)."""
    return data.load(check_dataset(dataset), n_train=scale.pick(ci=2000, full=None),
                     n_test=scale.pick(ci=1000, full=None))  # fmt: skip


def _check_ep_mnist(args) -> None:
    check_dataset(args["dataset"])


def _ep_memory(args) -> float:
    """Dense weights and, for backprop through the relaxation, every free step's states."""
    sizes = [784, *(int(h) for h in args["hidden"].split(",")), 10]
    steps = args["n_free"] if args["estimator"] == "bptt" else 4
    return dense_memory(sizes, args["batch_size"], per_unit=steps)


@experiment("ep-mnist", check=_check_ep_mnist, memory=_ep_memory, flags={
    "dataset": flags.choice(DATASETS),
    "estimator": flags.choice(ESTIMATORS),
    "sign": flags.choice(SIGNS),
    "beta": flags.real(0.0, 10.0, open_low=True, meaning="the nudging strength"),
    "eps": flags.real(0.0, 2.0, open_low=True, meaning="the relaxation step"),
    "cost_scale": flags.real(0.0, 1000.0, open_low=True),
    "n_free": flags.integer(1, 100_000),
    "n_nudge": flags.integer(1, 100_000),
    "n_eval": flags.integer(1, 100_000),
    "tag": flags.Domain(str, special=("",), meaning="'' for the default tag"),
})
def ep_mnist(
    dataset: str = "mnist",
    hidden: str = "500",
    epochs: int = 25,
    seed: int = 0,
    beta: float = 0.5,
    alphas: str = "0.1,0.05",
    eps: float = 0.5,
    n_free: int = 20,
    n_nudge: int = 4,
    n_eval: int = 50,
    estimator: str = "ep",
    sign: str = "batch",
    cost_scale: float = 1.0,
    persistent: bool = False,
    batch_size: int = 20,
    tag: str = "",
    progress: bool = True,
) -> dict:
    """Equilibrium propagation on MNIST or Fashion-MNIST (60k train, full 10k test); saves results/ep/.

    Defaults: the reference 784-500-10 configuration (25 epochs) on MNIST. ``--estimator bptt``
    trains the same network by backprop through the free relaxation. At GRIDLIB_SCALE=ci:
    2000/1000 examples.

    Args:
        dataset: mnist or fashion_mnist (results ep/<dataset>_<sizes>_<estimator>_seed<s>).
        hidden: hidden layer sizes, comma-separated ("256,256").
        epochs: passes over the training set.
        seed: initialisation and shuffling seed.
        estimator: ep (one-sided, random sign), symmetric (centered) or bptt.
        tag: results name before _seed (default: <dataset>_<sizes>_<estimator>).
    """
    check_dataset(dataset)
    cfg = check_config(EPConfig(
        sizes=(784, *_ints(hidden), 10), eps=eps, n_free=n_free, n_nudge=n_nudge, n_eval=n_eval,
        beta=beta, alphas=_floats(alphas), cost_scale=cost_scale, estimator=estimator, sign=sign,
        persistent=persistent,
    ))
    splits = load_splits(dataset)
    name = results_name(cfg, dataset=dataset, seed=seed, tag=tag, ci=scale.is_ci())
    out = run(cfg, splits, epochs=epochs, batch_size=batch_size, seed=seed,
              run_dir=run_dir_for(name), name=name, progress=progress)
    last = out.last
    metrics = {
        "test_err": last["test/err"], "test_acc": last["test/acc"],
        "train_err_running": last["train/err"], "mean_epoch_time_s":
            float(np.mean(out.history["epoch_time_s"])), "epochs": epochs,
    }
    results.save(name, config=record_config(cfg, dataset=dataset, epochs=epochs, batch_size=batch_size,
                                            n_train=len(splits.y_train), n_test=len(splits.y_test)),
                 metrics=metrics, history=out.history, seed=seed)  # fmt: skip
    print(f"{name}: test error {100 * metrics['test_err']:.2f}%")
    return metrics


@experiment("ep-seed-failures")
def ep_seed_failures(
    epochs: int = 1, n_train: int = 60000, n_test: int = 10000, seed: int = 0,
    progress: bool = True,
) -> dict:
    """Short MNIST runs of 784-500-10, one per seed-notebook bug; saves results/ep/seed_failures."""
    out = run_seed_variants(data.load_mnist(n_train=n_train, n_test=n_test), epochs=epochs,
                            seed=seed, progress=progress)
    results.save("ep/seed_failures", config={"epochs": epochs, "n_train": n_train,
                                             "n_test": n_test, "base": EPConfig()._asdict()},
                 metrics=out, seed=seed)
    return out


@experiment("ep-bptt-sweep", flags={
    "scales": flags.real(0.0, 1000.0, open_low=True, many=True,
                         meaning="multipliers of the EP learning rates"),
})
def ep_bptt_sweep(scales: str = "1,0.3,0.1,0.03", epochs: int = 2, n_train: int = 10000,
                  validation: int = 10000, seed: int = 0, progress: bool = True) -> dict:
    """Backprop through the 20-step free relaxation of 784-500-10 at the EP learning rates times
    each of ``scales``, selected on held-out validation data (the last ``validation`` training
    images); the same runs with EP for reference. Saves ``results/ep/bptt_sweep``."""
    n_train = scale.pick(ci=min(n_train, 1000), full=n_train)
    validation = scale.pick(ci=min(validation, 1000), full=validation)
    epochs = scale.pick(ci=1, full=epochs)
    splits = data.load_mnist(n_train=n_train, validation=validation, n_test=1)  # test unused
    base = check_config(DEFAULT)
    probe = jnp.asarray(splits.x_val[:2000])
    out = {"pinned_target_at_init": pinned_target_fraction(
        init_params(jax.random.PRNGKey(seed), base.sizes), probe, splits.y_val[:2000], base)}
    runs = [("ep", 1.0)] + [("bptt", s) for s in _floats(scales)]
    for estimator, s in runs:
        cfg = base._replace(estimator=estimator, alphas=tuple(a * s for a in base.alphas))
        r = run(cfg, splits, epochs=epochs, seed=seed, name=f"{estimator} x{s:g}",
                progress=progress, eval_on=("val",))
        key = f"{estimator} x{s:g}"
        out[key] = {"estimator": estimator, "lr_scale": s, "alphas": cfg.alphas,
                    "val_err": r.history["val/err"], "train_err_running": r.history["train/err"],
                    "pinned_target_after": pinned_target_fraction(
                        r.state.params, probe, splits.y_val[:2000], cfg)}
        print(f"{key}: validation error {100 * r.last['val/err']:.1f}%, targets pinned at 0: "
              f"{100 * out[key]['pinned_target_after']:.0f}%")
    name = f"ep/{'ci/' if scale.is_ci() else ''}bptt_sweep"
    results.save(name, config={"epochs": epochs, "n_train": n_train, "validation": validation,
                               "base": base._asdict(), "scales": _floats(scales)},
                 metrics=out, seed=seed)
    return out
