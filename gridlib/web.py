"""What the book's live page (*The grids, live*) loads: its JavaScript, weights, digits, fixtures.

``python -m gridlib export-web`` writes into ``_static/live/`` (the book's static files, served
beside the pages):

- the ES modules of ``web/`` (copied as they are: no build step);
- ``filtergrid.bin``: the analog-filter grid's trained parameters from the published run
  :data:`FILTERGRID_RUN` (its ``final_params``, with the record's provenance), and the book's
  initialisation at the run's seed, from which the page trains;
- ``neuralgrid.bin``, ``gridnet.bin``: the trained parameters of :data:`NEURALGRID_RUN` and
  :data:`GRIDNET_RUN`, where :func:`gridlib.results.load_arrays` finds them (absent otherwise);
- ``digits.bin``: the first ``n_train`` MNIST training digits and the first ``n_test`` test
  digits (the held-out set), pixels ``k`` as bytes (the library reads them as ``k/256``);
- ``garments.bin``: the first ``n_garments`` Fashion-MNIST test images (held out from
  NeuralGrid's training), bytes ``k`` (the library reads them as ``float32(k) * float32(1/255)``),
  with their labels and the class names :data:`gridlib.data.FASHION_CLASSES`;
- ``manifest.json``: which of the files above this export holds;
- ``fixtures.bin``: what the library computes in float64 (JAX with x64) on fixed inputs, for the
  parity tests of the JavaScript (``tests/test_live_parity.py``).

Every ``.bin`` file is one :func:`pack` bundle: a little-endian ``uint32`` length, that many
bytes of JSON (``{"meta": ..., "arrays": {name: {"dtype", "shape", "offset"}}}``), zero padding
to a multiple of 8, then the arrays' bytes (little-endian, C order). ``web/bundle.js`` reads it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gridlib import results, storage
from gridlib.provenance import REPO_ROOT

#: The JavaScript sources, copied into the book by :func:`export`.
WEB_DIR = REPO_ROOT / "web"
#: Where :func:`export` writes by default (served as ``_static/live/`` of the built book).
LIVE_DIR = REPO_ROOT / "_static" / "live"

#: The published filter-grid run whose ``final_params`` the page classifies with.
FILTERGRID_RUN = "filtergrid/snap1_adam_b32_e10_n60000_seed0"
#: The published NeuralGrid run whose saved parameters the page ships, where saved.
NEURALGRID_RUN = "neuralgrid/fashion_mnist_blog_seed0"
#: The published gridnet run whose saved parameters the page ships, where saved.
GRIDNET_RUN = "gridnet/cpu_seed0"

#: Held-out digits of the filter grid's readout and SnAP-1/SnAP-0 gradient fixtures.
FIXTURE_DIGITS = 3
#: Held-out images of the NeuralGrid (Fashion-MNIST) and gridnet (MNIST) logit fixtures.
LOGIT_DIGITS = 20
#: Held-out digits of gridnet's prediction fixture (NeuralGrid's covers every shipped garment).
GRIDNET_PRED_DIGITS = 100
#: Fashion-MNIST test images the page ships for NeuralGrid (its published run's data set).
GARMENTS = 300
#: Adam steps of SnAP-1 training in the fixtures, from the initialisation.
ADAM_STEPS = 50
#: Batch size of the fixtures' training steps, and of the page's (the published runs' 32).
BATCH = 32

_DTYPES = {"f4": np.float32, "f8": np.float64, "u1": np.uint8, "i4": np.int32}


def pack(arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> bytes:
    """One bundle (module docstring) of ``arrays`` (float32/64, uint8, int32) and ``meta`` (JSON)."""
    index, chunks, offset = {}, [], 0
    for name, value in arrays.items():
        a = np.ascontiguousarray(value)
        code = next((k for k, t in _DTYPES.items() if a.dtype == t), None)
        if code is None:
            raise ValueError(f"array {name!r} has dtype {a.dtype}; a bundle holds {sorted(_DTYPES)}")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        index[name] = {"dtype": code, "shape": list(a.shape), "offset": offset}
        chunks.append(raw + b"\0" * (-len(raw) % 8))
        offset += len(chunks[-1])
    head = json.dumps({"meta": meta, "arrays": index}, allow_nan=False).encode()
    head += b" " * (-(len(head) + 4) % 8)
    return struct.pack("<I", len(head)) + head + b"".join(chunks)


def unpack(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`pack`: ``(arrays, meta)``."""
    (n,) = struct.unpack_from("<I", blob)
    head = json.loads(blob[4 : 4 + n])
    base = 4 + n
    out = {}
    for name, e in head["arrays"].items():
        dt = np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")
        count = int(np.prod(e["shape"], dtype=np.int64))
        out[name] = np.frombuffer(blob, dt, count, base + e["offset"]).reshape(e["shape"])
    return out, head["meta"]


# ---------------------------------------------------------------------------------------------
# the pieces


def _provenance(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the page says of a published run: its name, seed, configuration and metrics (its
    sentence in words) and :func:`gridlib.results.describe` (folded under *Provenance*)."""
    return {"name": record["name"], "seed": record["provenance"].get("seed"),
            "describe": results.describe(record, remade=False),
            "config": record["config"], "metrics": record["metrics"]}


def _digits(n_train: int, n_test: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The first ``n_train`` training and ``n_test`` test digits of MNIST as bytes ``k``."""
    from gridlib import data

    s = data.load_mnist(n_train=n_train, n_test=n_test)
    def to_k(x):
        return np.rint(np.asarray(x, np.float64) * 256).astype(np.uint8)

    arrays = {"x_train": to_k(s.x_train), "y_train": s.y_train.astype(np.uint8),
              "x_test": to_k(s.x_test), "y_test": s.y_test.astype(np.uint8)}
    if not np.array_equal(arrays["x_train"] / 256.0, np.asarray(s.x_train, np.float64)):
        raise ValueError("MNIST pixels are not k/256: the byte encoding would change them")
    meta = {"dataset": "mnist", "pixels": "k/256", "n_train": n_train, "n_test": n_test,
            "train": f"the first {n_train} of the 60,000 training digits",
            "test": f"the first {n_test} of the 10,000 test digits (held out)"}
    return arrays, meta


def _garments(n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The first ``n`` Fashion-MNIST test images as bytes ``k``, their labels and class names."""
    from gridlib import data

    s = data.load_fashion_mnist(n_train=1, n_test=n)
    k = np.rint(np.asarray(s.x_test, np.float64) * 255).astype(np.uint8)
    if not np.array_equal(k.astype(np.float32) * np.float32(1 / 255), s.x_test):
        raise ValueError("Fashion-MNIST pixels are not float32(k) * float32(1/255)")
    arrays = {"x_test": k, "y_test": s.y_test.astype(np.uint8)}
    meta = {"dataset": "fashion_mnist", "pixels": "float32(k) * float32(1/255), in float32",
            "n_test": n, "classes": list(data.FASHION_CLASSES),
            "test": f"the first {n} of the 10,000 Fashion-MNIST test images (held out)"}
    return arrays, meta


def _filtergrid_settings() -> dict[str, Any]:
    from gridlib.filtergrid import state_floats_per_parameter
    from gridlib.filtergrid.cell import DT
    from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE

    n, m, t_len = 28, 10, 28
    return {"n_rows": n, "n_cols": m, "t_len": t_len, "gain": 10.0, "pixel_scale": MNIST_PIXEL_SCALE,
            "dt": DT, "lr": 3e-3, "batch_size": BATCH, "loss": "sum",
            "state_per_parameter": {rule: state_floats_per_parameter(rule, n, m, t_len=t_len)
                                    for rule in ("snap0", "snap1", "bptt")}}


def _filtergrid(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import jax

    from gridlib.filtergrid import init_params

    record = results.load(FILTERGRID_RUN)
    final = record["extra"]["final_params"]
    init = init_params(jax.random.PRNGKey(seed), 28, 10)
    arrays = {}
    for field in ("log_tau", "w_left", "w_top", "bias"):
        arrays[f"trained.{field}"] = np.asarray(final[field], np.float64)
        arrays[f"init.{field}"] = np.asarray(getattr(init, field), np.float32)
    meta = {"settings": _filtergrid_settings(), "trained": _provenance(record),
            "init": {"seed": seed, "how": "gridlib.filtergrid.init_params(PRNGKey(seed), 28, 10)"}}
    return arrays, meta


def _trained_arrays(name: str) -> dict[str, np.ndarray] | None:
    """The saved parameters of published run ``name``, or None where none are saved yet."""
    load_arrays = getattr(results, "load_arrays", None)
    if load_arrays is None or not results.exists(name):
        return None
    try:
        return {k.lstrip("."): np.asarray(v) for k, v in load_arrays(name).items()}
    except storage.StoredFileError:
        return None


def _neuralgrid_init(seed: int = 0) -> dict[str, np.ndarray]:
    import jax

    from gridlib.neuralgrid.model import init_network

    p = init_network(jax.random.PRNGKey(seed), 784, 64, 64, 10)
    return {"w_in": p.w_in, "b_in": p.b_in, "grid.weight": p.grid.weight, "grid.bias": p.grid.bias,
            "w_out": p.w_out, "b_out": p.b_out}


def _gridnet_init(seed: int = 0) -> dict[str, np.ndarray]:
    import jax

    from gridlib.gridnet.experiments import CPU
    from gridlib.gridnet.model import init

    p = init(jax.random.PRNGKey(seed), CPU)
    return {"cells.w": p.cells.w, "cells.b": p.cells.b, "cells.r": p.cells.r, "embed": p.embed,
            "ln_g": p.ln_g, "ln_b": p.ln_b, "ro_g": p.ro_g, "ro_b": p.ro_b, "ro_w": p.ro_w,
            "ro_c": p.ro_c}


def _gridnet_config() -> dict[str, Any]:
    from gridlib.gridnet.experiments import CPU
    from gridlib.gridnet.model import LN_EPS, MNIST_MEAN, MNIST_STD, image_layout

    pool, offset = image_layout(CPU.grid)
    return {**CPU._asdict(), "pool": pool, "offset": offset, "ln_eps": LN_EPS,
            "mnist_mean": MNIST_MEAN, "mnist_std": MNIST_STD}


def _model(name: str, run: str, init_fn) -> tuple[dict[str, np.ndarray], dict[str, Any], bool]:
    """``(arrays, meta, trained)``: the trained parameters of ``run`` where saved, else the
    library's initialisation at seed 0 (used by the fixtures either way)."""
    trained = _trained_arrays(run)
    if trained is not None:
        return trained, {"model": name, "trained": _provenance(results.load(run))}, True
    arrays = {k: np.asarray(v, np.float32) for k, v in init_fn().items()}
    return arrays, {"model": name, "trained": None, "init": {"seed": 0}}, False


# ---------------------------------------------------------------------------------------------
# the float64 fixtures


def _as64(tree):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda z: jnp.asarray(np.asarray(z, np.float64)), tree)


def filtergrid_fixtures(fg: Mapping[str, np.ndarray], digits: Mapping[str, np.ndarray]
                        ) -> dict[str, np.ndarray]:
    """Readout, loss and SnAP-1/SnAP-0 gradients on the first :data:`FIXTURE_DIGITS` held-out
    digits, and :data:`ADAM_STEPS` Adam steps of SnAP-1 from the initialisation, in float64.

    Call inside ``jax.enable_x64(True)``."""
    import jax
    import jax.numpy as jnp
    import optax

    from gridlib.filtergrid import GridParams, forward, readout, snap0_grads, snap1_grads
    from gridlib.filtergrid.snap1 import snap1_batch_grads

    s = _filtergrid_settings()
    scale = s["gain"] * s["pixel_scale"]

    def seqs(x):  # digits k -> (B, T, N) drives: pixel k/256 times gain and pixel scale
        return jnp.asarray((x.astype(np.float64) / 256.0).reshape(-1, 28, 28) * scale)

    fields = GridParams._fields
    init = GridParams(*(_as64(fg[f"init.{f}"]) for f in fields))
    trained = GridParams(*(_as64(fg[f"trained.{f}"]) for f in fields))
    xs = seqs(digits["x_test"][:FIXTURE_DIGITS])
    labels = digits["y_test"][:FIXTURE_DIGITS].astype(np.int32)
    out: dict[str, np.ndarray] = {"fg.labels": labels}
    run = jax.jit(jax.vmap(lambda p, x: readout(forward(p, x)), in_axes=(None, 0)))
    for tag, p in (("init", init), ("trained", trained)):
        out[f"fg.readout.{tag}"] = np.asarray(run(p, xs))
    for rule, fn in (("snap1", snap1_grads), ("snap0", snap0_grads)):
        loss, _, grads = jax.jit(jax.vmap(fn, in_axes=(None, 0, 0)))(init, xs, jnp.asarray(labels))
        out[f"fg.{rule}.loss"] = np.asarray(loss)
        for f in fields:
            out[f"fg.{rule}.{f}"] = np.asarray(getattr(grads, f))

    opt = optax.adam(s["lr"])

    @jax.jit
    def step(params, state, x, y):
        _, _, grads = snap1_batch_grads(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state = init, opt.init(init)
    for k in range(ADAM_STEPS):
        sl = slice(k * BATCH, (k + 1) * BATCH)
        params, state = step(params, state, seqs(digits["x_train"][sl]),
                             jnp.asarray(digits["y_train"][sl].astype(np.int32)))
    for f in fields:
        out[f"fg.adam.{f}"] = np.asarray(getattr(params, f))
    return out


def model_fixtures(ng: Mapping[str, np.ndarray], gn: Mapping[str, np.ndarray],
                   digits: Mapping[str, np.ndarray], garments: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """In float64, from the parameters the page ships: NeuralGrid's logits on the first
    :data:`LOGIT_DIGITS` shipped garments (Fashion-MNIST, its published run's data set) and its
    predictions on all of them; gridnet's logits on the first :data:`LOGIT_DIGITS` held-out
    MNIST digits and its predictions on the first :data:`GRIDNET_PRED_DIGITS`.
    Call inside ``jax.enable_x64(True)``."""
    import jax
    import jax.numpy as jnp

    from gridlib.gridnet.cell import CellParams
    from gridlib.gridnet.experiments import CPU
    from gridlib.gridnet.model import Params, forward
    from gridlib.neuralgrid.model import GridParams, NetworkParams, network_apply

    x = jnp.asarray(digits["x_test"].astype(np.float64) / 256.0)
    # the pixels as gridlib.data.load_fashion_mnist gives them (float32), widened exactly
    garment_x = garments["x_test"].astype(np.float32) * np.float32(1 / 255)
    a = _as64(dict(ng))
    net = NetworkParams(a["w_in"], a["b_in"], GridParams(a["grid.weight"], a["grid.bias"]),
                        a["w_out"], a["b_out"])
    ng_logits = np.asarray(jax.jit(network_apply)(net, _as64(garment_x)))
    g = _as64(dict(gn))
    gp = Params(CellParams(g["cells.w"], g["cells.b"], g["cells.r"]), g["embed"], g["ln_g"],
                g["ln_b"], g["ro_g"], g["ro_b"], g["ro_w"], g["ro_c"])
    gn_logits = np.asarray(jax.jit(forward, static_argnums=2)(gp, x[:GRIDNET_PRED_DIGITS], CPU))
    return {"ng.logits": ng_logits[:LOGIT_DIGITS], "ng.pred": ng_logits.argmax(-1).astype(np.int32),
            "gn.logits": gn_logits[:LOGIT_DIGITS], "gn.pred": gn_logits.argmax(-1).astype(np.int32)}


# ---------------------------------------------------------------------------------------------
# the command


def export(out: str | Path | None = None, n_train: int = 3000, n_test: int = 1000,
           n_garments: int = GARMENTS) -> list[Path]:
    """Write the live page's files into ``out`` (default :data:`LIVE_DIR`); returns their paths.

    Every write goes through :func:`gridlib.storage.write_bytes` (atomic, confined)."""
    import jax

    out = Path(out) if out is not None else LIVE_DIR
    if (n_test < max(LOGIT_DIGITS, GRIDNET_PRED_DIGITS, FIXTURE_DIGITS)
            or n_train < ADAM_STEPS * BATCH or n_garments < LOGIT_DIGITS):
        raise ValueError(f"need n_train >= {ADAM_STEPS * BATCH}, n_test >= "
                         f"{max(LOGIT_DIGITS, GRIDNET_PRED_DIGITS)} and n_garments >= "
                         f"{LOGIT_DIGITS} for the fixtures")
    written = []
    for src in sorted(WEB_DIR.glob("*.js")):
        written.append(storage.write_bytes(out / src.name, src.read_bytes()))
    digits, digits_meta = _digits(n_train, n_test)
    written.append(storage.write_bytes(out / "digits.bin", pack(digits, digits_meta)))
    garments, garments_meta = _garments(n_garments)
    written.append(storage.write_bytes(out / "garments.bin", pack(garments, garments_meta)))
    fg, fg_meta = _filtergrid()
    written.append(storage.write_bytes(out / "filtergrid.bin", pack(fg, fg_meta)))
    ng, ng_meta, ng_trained = _model("neuralgrid", NEURALGRID_RUN, _neuralgrid_init)
    gn, gn_meta, gn_trained = _model("gridnet", GRIDNET_RUN, _gridnet_init)
    gn_meta["config"] = _gridnet_config()
    ng_meta["config"] = {"n_in": 784, "height": int(ng["w_in"].shape[1]),
                         "width": int(ng["grid.weight"].shape[0]), "n_classes": 10}
    for name, arrays, meta, trained in (("neuralgrid", ng, ng_meta, ng_trained),
                                        ("gridnet", gn, gn_meta, gn_trained)):
        target = out / f"{name}.bin"
        if trained:
            written.append(storage.write_bytes(target, pack(arrays, meta)))
        elif target.exists():  # stale weights of an earlier export must not stay
            target.unlink()
    manifest = {"neuralgrid": ng_trained, "gridnet": gn_trained, "digits": digits_meta,
                "garments": garments_meta, "filtergrid": FILTERGRID_RUN}
    written.append(storage.write_json(out / "manifest.json", manifest))
    with jax.enable_x64(True):
        fix = {**filtergrid_fixtures(fg, digits), **model_fixtures(ng, gn, digits, garments)}
    fix_meta = {"digits": FIXTURE_DIGITS, "logit_digits": LOGIT_DIGITS,
                "gridnet_pred_digits": GRIDNET_PRED_DIGITS, "garments": n_garments,
                "adam_steps": ADAM_STEPS,
                "batch_size": BATCH, "filtergrid": fg_meta["settings"],
                "neuralgrid": ng_meta, "gridnet": gn_meta,
                "how": "gridlib.web.export in float64 (jax x64)"}
    params = {f"ng.param.{k}": v for k, v in ng.items()} | {f"gn.param.{k}": v for k, v in gn.items()}
    written.append(storage.write_bytes(out / "fixtures.bin", pack({**fix, **params}, fix_meta)))
    return written


def page_html(folder: str = "live") -> str:
    """The live elements of ``book/live.md`` (between its ``live:begin``/``live:end`` marks, with
    its style) as one stand-alone page that loads its scripts from ``folder``: what the parity
    tests and ``benchmarks/live.py`` open, without building the book."""
    text = (REPO_ROOT / "book" / "live.md").read_text()
    start, end = text.index("<!-- live:begin -->"), text.index("<!-- live:end -->")
    style = text[text.index("<style>"): text.index("</style>") + len("</style>")]
    body = text[start:end].replace("../_static/live/", f"{folder}/")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>live</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<link rel='icon' href='data:,'>"
            f"{style}</head><body>{body}</body></html>")


def main(argv: list[str]) -> int:
    """``python -m gridlib export-web [--n-train N] [--n-test N] [--n-garments N]``."""
    from gridlib import flags
    from gridlib.cli import OneLineParser

    parser = OneLineParser(prog="python -m gridlib export-web", description=__doc__.split("\n")[0])
    parser.add_flag("--n-train", flags.COMMON["n_train"], 3000, help="MNIST training digits shipped")
    parser.add_flag("--n-test", flags.COMMON["n_test"], 1000, help="MNIST test digits shipped (held out)")
    parser.add_flag("--n-garments", flags.integer(LOGIT_DIGITS, 10_000), GARMENTS,
                    help="Fashion-MNIST test images shipped for NeuralGrid (held out)")
    args = parser.parse_args(argv)
    paths = export(n_train=args.n_train, n_test=args.n_test, n_garments=args.n_garments)
    size = sum(p.stat().st_size for p in paths)
    print(f"export-web: {len(paths)} files, {size / 1e6:.1f} MB in {LIVE_DIR.relative_to(REPO_ROOT)}")
    return 0
