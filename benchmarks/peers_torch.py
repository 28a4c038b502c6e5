"""The PyTorch side of ``benchmarks/peers.py``: one warm worker process per reference.

Runs under a Python that has PyTorch (``GRIDLIB_PEER_PYTHON``), never under gridlib's
environment, and imports only ``torch``, ``numpy`` and the reference code from the folder
the driver names (``$GRIDLIB_PEERS/<repository>``). Nothing of the references is copied here:
each adapter below builds the reference's own model class and runs the body of the
reference's own training loop on the minibatches the driver sends (see the protocol below).

What the adapters change in the references (and nothing else):

* **Imports.** Modules the timed code never calls (``torchvision``, ``matplotlib``, ``PIL``)
  are replaced by empty stand-ins when they are not installed: the references import them at
  module level for data loading and plotting only.
* **Data.** The minibatches come from the driver (gridlib's data cache: the same arrays that
  gridlib trains on), not from ``torchvision`` / ``mnist1d`` loaders; no augmentation.
* **The loop.** One timed unit is a fixed list of minibatches through the reference's training
  loop body, written out below with the reference's calls in the reference's order; logging,
  TensorBoard, plotting, checkpoints and the evaluation at epoch ends are left out.

  - ``neuralgrid`` (kaifishr/NeuralGrid at ``0ea8bec``, the blog's 2021 model,
    ``src/neural_grid_2d.py::GridNeuralNetwork2D``; loop of ``main.py``): forward,
    ``CrossEntropyLoss``, ``zero_grad``, ``backward``, ``Adam(lr=1e-4).step``, and the running
    loss and accuracy (``loss.item()``, argmax) of ``main.py``.
  - ``gle`` (unibe-cns/gle-code, ``experiments/mnist1d/plastic_e2e.py``'s ``E2ELagMLPNet`` with
    its parameters; loop of ``mnist1d_training.train``): for each of the 360 time slices of
    ``lib.memory.Slicer``: ``zero_grad``, ``model(input, target, beta)`` under ``no_grad``, the
    summed CE loss, ``Adam.step``, and ``loss.item()``; the summed logits give the prediction.
  - ``ep`` (Laborieux-Axel/Equilibrium-Propagation, ``model_utils.P_MLP`` 784-512-10, the
    repository's MNIST command ``check/train_mnist.sh``: ``T1 30, T2 10, betas 0 0.1, mbs 50,
    Adam 5e-4``, MSE loss; loop of ``model_utils.train`` with ``alg='EP'``): ``init_neurons``,
    the free phase, the running-accuracy argmax, the nudged phase, ``compute_syn_grads``,
    ``Adam.step``. The activation is the repository's ``hard_sigmoid`` (``--act
    hard_sigmoid``), the clipped rate gridlib's EP uses, instead of that command's ``mysig``
    (a smooth sigmoid), so that both sides evaluate the same kind of nonlinearity;
    ``--check-thm`` (a diagnostic) is off.

Protocol (stdout is reserved for it; everything the references print goes to stderr): the
driver starts ``python benchmarks/peers_torch.py`` and writes to its stdin one JSON line
``{"adapter": ..., "ref": REFERENCE_DIR, "nbytes": N}`` followed by N bytes of an ``.npz``
archive (the minibatches). The worker builds the model, runs the unit once (warm-up) and prints
``ready ...``; then for every ``run`` line on stdin it runs the unit once and prints its wall
and CPU seconds (all its threads); ``quit`` or the end of input ends it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import time
import types
from unittest import mock


def _stand_in(*names: str) -> None:
    """Empty modules for the top-level packages in ``names`` that are not installed."""
    for name in names:
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue

        def getattr_(attr, _name=name):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return mock.MagicMock(name=f"{_name}.{attr}")

        for sub in (name, *(f"{name}.{s}" for s in _SUBMODULES.get(name, ()))):
            mod = types.ModuleType(sub)
            mod.__getattr__ = getattr_
            mod.__path__ = []  # a package, so that its submodules import
            sys.modules[sub] = mod


_SUBMODULES = {
    "torchvision": ("transforms", "datasets", "utils"),
    "matplotlib": ("pyplot", "backends", "backends.backend_agg", "figure", "cm", "colors"),
    "PIL": ("Image",),
}


def _neuralgrid(ref: str, data):
    """One unit: the minibatches ``data['x'] (K, B, 784)``, ``data['y'] (K, B)`` of main.py's loop."""
    import torch

    sys.path.insert(0, ref)
    from src.neural_grid_2d import GridNeuralNetwork2D

    h, w = (int(v) for v in data["grid"])
    params = {"data": {"image_height": 28, "image_width": 28, "n_channels": 1, "n_classes": 10},
              "grid_2d": {"height": h, "width": w}}  # fmt: skip
    model = GridNeuralNetwork2D(params)
    loss_func = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    xs = torch.from_numpy(data["x"]).reshape(*data["x"].shape[:2], 1, 28, 28)
    ys = torch.from_numpy(data["y"]).long()
    model.train()

    def unit():
        running_loss, running_accuracy = 0.0, 0.0
        for x, y in zip(xs, ys, strict=True):
            y_pred = model(x)
            loss = loss_func(y_pred, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            running_accuracy += (torch.argmax(y_pred, dim=-1) == y).float().sum()
        return running_loss

    return unit


def _gle(ref: str, data):
    """One unit: the minibatches ``data['x'] (K, 100, 360)`` through mnist1d_training.train's loop."""
    import torch

    sys.path[:0] = [ref, os.path.join(ref, "experiments", "mnist1d")]
    from lib.memory import Slicer
    from lib.utils import get_loss_and_derivative
    from networks import E2ELagMLPNet

    # plastic_e2e.py's parameters for the 15k network (6 lag layers of 17 fast + 36 slow units)
    dt, sample_length, seq = 0.2, 72, int(data["seq_len"])
    loss_fn, loss_fn_deriv = get_loss_and_derivative("ce", "linear")
    E2ELagMLPNet.compute_target_error = loss_fn_deriv
    model = E2ELagMLPNet(dt=dt, tau=1.2, prospective_errors=True, n_hidden_layers=6,
                         hidden_fast_size=17, hidden_slow_size=36, phi="tanh",
                         output_phi="linear")  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3 * sample_length / seq)
    xs = torch.from_numpy(data["x"])
    ys = torch.from_numpy(data["y"]).long()
    model.train()

    def unit():
        n_correct = 0
        for x, target in zip(xs, ys, strict=True):
            memory = Slicer(x.float())
            n_steps = len(memory)
            output_over_time, batch_loss = [], 0.0
            for inp in memory:
                optimizer.zero_grad()
                with torch.no_grad():
                    output = model(inp, target, beta=1.0)
                    loss = loss_fn(output, target, reduction="sum")
                output_over_time.append(output.detach())
                optimizer.step()
                batch_loss += loss.item() / n_steps / inp.shape[0]
            pred = torch.stack(output_over_time, dim=1).sum(axis=1).argmax(dim=1, keepdim=True)
            n_correct += pred.eq(target.view_as(pred)).sum().item()
        return n_correct

    return unit


def _ep(ref: str, data):
    """One unit: the minibatches ``data['x'] (K, 50, 784)`` through model_utils.train's EP loop."""
    import torch

    sys.path.insert(0, ref)
    import model_utils as mu

    sizes = [int(v) for v in data["sizes"]]
    t1, t2 = int(data["t1"]), int(data["t2"])
    beta_1, beta_2 = 0.0, float(data["beta"])
    model = mu.P_MLP(sizes, activation=mu.hard_sigmoid)
    criterion = torch.nn.MSELoss(reduction="none")
    optimizer = torch.optim.Adam(
        [{"params": s.parameters(), "lr": 5e-4} for s in model.synapses])
    xs = torch.from_numpy(data["x"])
    ys = torch.from_numpy(data["y"]).long()
    model.train()

    def unit():
        run_correct = 0
        for x, y in zip(xs, ys, strict=True):
            neurons = model.init_neurons(x.size(0), "cpu")
            neurons = model(x, y, neurons, t1, beta=beta_1, criterion=criterion)
            neurons_1 = mu.copy(neurons)
            with torch.no_grad():
                pred = torch.argmax(neurons[-1], dim=1).squeeze()
                run_correct += (y == pred).sum().item()
            neurons = model(x, y, neurons, t2, beta=beta_2, criterion=criterion)
            neurons_2 = mu.copy(neurons)
            model.compute_syn_grads(x, y, neurons_1, neurons_2, (beta_1, beta_2), criterion)
            optimizer.step()
        return run_correct

    return unit


ADAPTERS = {"neuralgrid": _neuralgrid, "gle": _gle, "ep": _ep}


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the references' prints (and C-level output) go to stderr
    sys.stdout = sys.stderr
    _stand_in("torchvision", "matplotlib", "PIL")
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("GRIDLIB_PEER_THREADS", os.cpu_count() or 1)))
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    with np.load(io.BytesIO(stdin.read(header["nbytes"])), allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    unit = ADAPTERS[header["adapter"]](header["ref"], data)
    unit()  # warm-up
    print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", file=proto)
    for line in stdin:
        if line.strip() != b"run":
            break
        t0, c0 = time.perf_counter(), time.process_time()
        unit()
        print(f"{time.perf_counter() - t0:.6f} {time.process_time() - c0:.6f}", file=proto)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
