"""Command-line experiments of the GLE chapters: ``python -m gridlib gle-...``.

* ``gle-lagline``: the LagLine teacher--student task for one model (``gle``, ``bp``,
  ``bptt_tw4``, ``bptt_tw2``, ``bptt_tw1``) -> ``results/gle/lagline/<model>.json``.
* ``gle-lagnet``: LagNet, GLE vs the exact adjoint method -> ``results/gle/lagnet.json``.
* ``gle-mnist1d``: an ensemble of seeds of one MNIST-1D network trained at once (``vmap``)
  -> ``results/gle/mnist1d/<arch>_seeds<...>.json``; checkpoints in ``runs/gle/...`` so an
  interrupted run resumes. ``--devices N`` splits the seeds over N local devices; under a
  multi-process launch each process trains its share of the seeds and writes its own file
  (:mod:`gridlib.devices`).
"""

from __future__ import annotations

import contextlib
import time

import jax
import numpy as np

from gridlib import checkpoint, devices, flags, results, scale
from gridlib.cli import experiment
from gridlib.experiment import run_dir_for
from gridlib.gle import mnist1d as m1d
from gridlib.gle import teachers


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError as err:
        raise ValueError(f"seeds must be a comma-separated list of integers, got {text!r}") from err
    if not seeds:
        raise ValueError("give at least one seed")
    return seeds


@experiment("gle-lagline", flags={
    "model": flags.choice(teachers.LAGLINE_MODELS),
    "t_train": flags.real(0.0, 1e7, open_low=True, special=(-1.0,),
                          meaning="time units; -1: the scale's default"),
})
def lagline(model: str = "gle", seed: int = 1, t_train: float = -1.0, lr: float = 1e-4,
            progress: bool = True, resume: bool = True, save: bool = True) -> dict:
    """LagLine teacher-student: recover w = (1, 2) and tau_m = (1, 2) online (one model).

    ``t_train < 0`` picks the scale's default (4000 time units in full, 400 in CI).
    """
    t_train = t_train if t_train > 0 else scale.pick(ci=400.0, full=4000.0)
    setup = teachers.LagLineSetup(t_train=t_train, lr=lr)
    t0 = time.perf_counter()
    run_dir = run_dir_for(f"gle/lagline_seed{seed}/{model}") if resume else None
    with checkpoint.lock(run_dir) if run_dir is not None else contextlib.nullcontext():
        out = teachers.run_lagline(model, jax.random.PRNGKey(seed), setup, n_chunks=20,
                                   progress=progress, run_dir=run_dir)
    wall = time.perf_counter() - t0
    metrics = {
        "final_w": out["w"][-1],
        "final_tau_m": out["tau_m"][-1],
        "final_loss": float(out["loss"][-1]),
        "wall_s": wall,
        "steps_per_s": (setup.t_train + setup.t_init) / setup.dt / wall,
    }
    print(f"LagLine {model}: w={out['w'][-1]}, tau_m={out['tau_m'][-1]}, "
          f"loss={out['loss'][-1]:.3g} ({wall:.1f}s)")
    if save:
        results.save(f"gle/lagline/{model}", config={"model": model, **setup._asdict()},
                     metrics=metrics, seed=seed, extra={k: v for k, v in out.items()})
    return out


@experiment("gle-lagnet", flags={
    "n_steps": flags.integer(1, 10**9, special=(-1,), meaning="-1: the scale's default"),
})
def lagnet(seed: int = 5, n_steps: int = -1, save: bool = True) -> dict:
    """LagNet: GLE learns the first layer of a two-path teacher; compared with the adjoint method.

    ``n_steps < 0`` picks the scale's default (100,100 steps in full, 20,000 in CI).
    """
    n = n_steps if n_steps > 0 else scale.pick(ci=20_000, full=100_100)
    setup = teachers.LagNetSetup()
    t0 = time.perf_counter()
    out = teachers.run_lagnet(jax.random.PRNGKey(seed), setup, n_steps=n)
    wall = time.perf_counter() - t0
    metrics = {
        "final_w_gle": out["w_gle"][-1],
        "final_w_am": out["w_am"][-1],
        "final_loss_gle": float(out["loss_gle"][-1]),
        "final_loss_am": float(out["loss_am"][-1]),
        "wall_s": wall,
    }
    print(f"LagNet: GLE w={out['w_gle'][-1]}, AM w={out['w_am'][-1]}, teacher "
          f"{out['w_teacher']} ({wall:.1f}s)")
    if save:
        results.save("gle/lagnet", config={"n_steps": n, **setup._asdict()}, metrics=metrics,
                     seed=seed, extra=out)
    return out


def mnist1d_result_name(arch: str, seeds: tuple[int, ...]) -> str:
    return f"gle/mnist1d/{arch}_seeds{'-'.join(str(s) for s in seeds)}"


_SCALE_DEFAULT = "-1: the scale's default"


@experiment("gle-mnist1d", devices=True, flags={
    "arch": flags.choice(m1d.ARCHS),
    "epochs": flags.integer(1, 100_000, special=(-1,), meaning=_SCALE_DEFAULT),
    "n_train": flags.integer(1, 4000, special=(-1,), meaning=_SCALE_DEFAULT),
    "n_test": flags.integer(1, 1000, special=(-1,), meaning=_SCALE_DEFAULT),
})
def mnist1d(arch: str = "e2e15k", seeds: str = "12,34,56,78,98,76,54,32,42,69", epochs: int = -1,
            n_train: int = -1, n_test: int = -1, schedule: bool = True, resume: bool = True,
            progress: bool = True, save: bool = True) -> dict:
    """MNIST-1D through a GLE network (e2e15k, e2e42k or static), several seeds at once.

    ``epochs``/``n_train``/``n_test`` < 0 pick the scale's defaults (full: 150 epochs on the
    4000/1000 split; CI: 2 epochs on 400/200). The learning rate follows ReduceLROnPlateau on
    the test loss, as published. With several processes, each trains its share of ``seeds``.
    """
    from gridlib import data
    from gridlib.experiment import fit

    seed_list = devices.process_share(_seeds(seeds))
    session = results.current_session()
    n_devices = devices.ensemble_devices(len(seed_list), session.devices if session else None)
    setup = m1d.setup_for(arch, schedule=schedule)
    epochs = epochs if epochs >= 0 else scale.pick(ci=2, full=150)
    n_train = n_train if n_train > 0 else scale.pick(ci=400, full=4000)
    n_test = n_test if n_test > 0 else scale.pick(ci=200, full=1000)
    splits = data.load_mnist1d(n_train=n_train, n_test=n_test, final_seq_length=setup.seq_len)
    task = m1d.make_task(setup, seed_list, len(splits.x_train), splits.x_test, splits.y_test,
                         seed_loop="vmap" if n_devices > 1 else "map")  # a split seed axis needs vmap
    task = devices.shard_ensemble_task(task, devices.local_mesh(n_devices), len(seed_list))
    name = mnist1d_result_name(arch, seed_list)
    config = {"setup": setup._asdict(), "seeds": seed_list, "epochs": epochs,
              "n_train": len(splits.x_train), "n_test": len(splits.x_test)}
    run_dir = run_dir_for(name) if resume else None
    run = fit(task, splits, epochs=epochs, batch_size=setup.batch, seed=0, run_dir=run_dir,
              name=f"gle {arch} x{len(seed_list)}", eval_on=("test",), progress=progress,
              config=config, eval_batch_size=len(splits.x_test), steps_per_call=None)
    metrics = _mnist1d_metrics(arch, setup, run.history, epochs)
    if save:
        results.save(name, config=config, metrics=metrics, history=run.history,
                     seed=seed_list[0], extra={"devices": n_devices})
    return {"run": run, "metrics": metrics}


def _mnist1d_metrics(arch: str, setup: m1d.Setup, history: dict, epochs: int) -> dict:
    done = len(history.get("epoch", []))
    acc = np.asarray(history["test/acc"][-1], dtype=float) if done else np.zeros(0)
    net, _ = m1d.make_net(jax.random.PRNGKey(0), setup)
    metrics = {
        "epochs_done": done,
        "epochs": epochs,
        "complete": done >= epochs,
        "test_acc_per_seed": acc,
        "test_acc_mean": float(acc.mean()) if acc.size else None,
        "test_acc_std": float(acc.std()) if acc.size else None,
        "n_params": m1d.n_params(net) if arch != "static" else m1d.n_params(net[4:]),
        "epoch_time_s_mean": float(np.mean(history["epoch_time_s"])) if done else None,
    }
    if acc.size:
        print(f"{arch}, {acc.size} seeds, epoch {done}/{epochs}: test acc "
              f"{100 * acc.mean():.1f} +- {100 * acc.std():.1f}%")
    return metrics


@experiment("gle-mnist1d-snapshot", flags={"arch": flags.choice(m1d.ARCHS)})
def mnist1d_snapshot(arch: str = "e2e15k", seeds: str = "12,34,56,78,98,76,54,32,42,69",
                     schedule: bool = True) -> dict:
    """Write the results file of an unfinished gle-mnist1d run from its last checkpoint.

    The run's planned epochs come from its checkpoint, so the file says ``complete: false``
    with the epochs done until the run has done them all. The publish guard never lets it
    replace a complete published run; the run itself replaces it when it finishes (resume it
    with the same gle-mnist1d arguments).
    """
    from gridlib.experiment import CHECKPOINT_FILE, _fingerprint

    seed_list = _seeds(seeds)
    name = mnist1d_result_name(arch, seed_list)
    ckpt = run_dir_for(name) / CHECKPOINT_FILE
    if not ckpt.is_file():
        raise FileNotFoundError(f"no checkpoint {ckpt}; start the run with gle-mnist1d first")
    setup = m1d.setup_for(arch, schedule=schedule)
    # The run's fingerprint hashes its inputs; those this command names must be the checkpoint's.
    named = {"config": {"setup": setup._asdict(), "seeds": seed_list}, "seed": 0,
             "batch_size": setup.batch, "name": f"gle {arch} x{len(seed_list)}"}

    def differences(meta: dict) -> list[str]:
        inputs = meta.get("inputs") or {}
        if _fingerprint(inputs) != meta["fingerprint"]:
            return ["fingerprint (the recorded inputs are not the ones fingerprinted)"]
        recorded = {**{k: inputs.get(k) for k in named if k != "config"},
                    "config": {k: (inputs.get("config") or {}).get(k) for k in named["config"]}}
        return results.config_differences(recorded, named)

    meta = checkpoint.read_meta(ckpt, differences)
    epochs = meta["inputs"]["config"]["epochs"]  # what the run was asked for, not a flag
    metrics = _mnist1d_metrics(arch, setup, meta["history"], epochs)
    command = (f"python -m gridlib gle-mnist1d --arch {arch} --seeds {','.join(map(str, seed_list))}"
               + ("" if schedule else " --schedule false"))
    config = {"setup": setup._asdict(), "seeds": seed_list, "epochs": epochs,
              **{k: meta["inputs"]["config"][k] for k in ("n_train", "n_test")}}
    results.save(name, config=config, metrics=metrics, history=meta["history"],
                 seed=seed_list[0], extra={"run_command": command})
    return metrics
