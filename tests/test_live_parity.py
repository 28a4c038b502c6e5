"""The live page's JavaScript (``web/``) against the library, in headless Chromium and Firefox.

``gridlib.web.export`` writes the page's files and the library's float64 fixtures into a
temporary folder (a subprocess: JAX's x64 switch stays out of this process); the folder is served
on localhost and opened in Debian's Chromium, driven like ``tests/browser/check_pages.py``, and in
Debian's Firefox (``firefox-esr``), driven over WebDriver BiDi (``tests/browser/live_firefox.py``).
Every test runs in both browsers.

- ``tests/browser/live_parity.html`` runs the modules on the fixtures' inputs: the filter grid's
  readout and SnAP-1/SnAP-0 gradients agree to 1e-9 relative, 50 Adam steps of SnAP-1 to 1e-6,
  NeuralGrid's logits on the shipped Fashion-MNIST test garments (its published run's data set)
  and gridnet's on the held-out MNIST digits to 1e-5, and their predictions exactly;
- the page itself (the HTML of ``book/live.md`` between its ``live:begin``/``live:end`` marks)
  classifies a synthetic stroke drawn on its pad with pointer events, trains in its worker, and
  logs no error and requests nothing outside the site; it hides the NeuralGrid and gridnet
  panels where the export has no trained parameters for them;
- the garment panel shows NeuralGrid's prediction, for the garments a reader picks, equal to the
  library's. Until NeuralGrid's published run carries its parameters, the panel is checked on a
  copy of the export whose ``neuralgrid.bin`` holds the fixtures' parameters (the library's
  initialisation), standing in for the trained ones.

The export is made with the fewest digits the fixtures need (:data:`N_TRAIN`, :data:`N_TEST`):
every check stays, on less data to load and evaluate.

The Chromium cases are skipped without a Chromium, except on CI (there they fail); the Firefox
cases are skipped without a Firefox (``make chromium`` installs both where it can), and without
a working one except on CI. ``GRIDLIB_LIVE_EXPORT=<folder>`` reuses an export already made there
(``python -m gridlib export-web`` writes one to ``_static/live``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gridlib import web

ROOT = Path(__file__).resolve().parents[1]
BROWSER = ROOT / "tests" / "browser"

_spec = importlib.util.spec_from_file_location("check_pages", BROWSER / "check_pages.py")
check_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_pages)
_spec = importlib.util.spec_from_file_location("live_firefox", BROWSER / "live_firefox.py")
live_firefox = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live_firefox)

READOUT_RTOL = 1e-9
ADAM_RTOL = 1e-6
LOGITS_RTOL = 1e-5
#: The smallest export the fixtures allow: 50 Adam steps of batch 32, gridnet's 100 predictions.
N_TRAIN, N_TEST = 1600, 100


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("live-site")
    reuse = os.environ.get("GRIDLIB_LIVE_EXPORT", "").strip()
    if reuse:
        shutil.copytree(reuse, root / "live")
        for src in (ROOT / "web").glob("*.js"):  # the sources under test, not the copy's
            shutil.copy(src, root / "live" / src.name)
    else:
        env = {**os.environ, "GRIDLIB_RUNS": str(root), "JAX_PLATFORMS": "cpu"}
        code = ("import sys; from gridlib import web; "
                f"web.export(sys.argv[1], n_train={N_TRAIN}, n_test={N_TEST})")
        subprocess.run([sys.executable, "-c", code, str(root / "live")], check=True, env=env,
                       cwd=ROOT, timeout=600)
    for name in ("live_parity.html", "live_parity.js"):
        shutil.copy(BROWSER / name, root / name)
    (root / "page.html").write_text(web.page_html())
    return root


@pytest.fixture(scope="module", params=["chromium", "firefox"])
def browser(request):
    if request.param == "firefox":
        exe = live_firefox.find_firefox()
        if exe is None:
            pytest.skip("no Firefox (apt-get install firefox-esr)")
        try:
            b = live_firefox.Firefox(exe, 1280, 900)
        except live_firefox.FirefoxUnavailable as exc:
            if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
                raise  # installed on CI (make chromium) but not working: a failure there
            pytest.skip(f"Firefox unusable: {exc}")
        yield b
        b.close()
        return
    exe = check_pages.find_chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("no Chromium on CI")
        pytest.skip("no Chromium (apt-get install chromium)")
    b = check_pages.Chromium(exe, 1280, 900)
    yield b
    b.close()


def open_page(browser, base: str, page: str, expression: str, timeout: float = 240.0):
    """Open ``page``, evaluate the async ``expression`` in it; returns ``(value, problems)``,
    problems being console errors, uncaught exceptions, failed and external requests."""
    if isinstance(browser, live_firefox.Firefox):
        return browser.open_page(base, page, expression, timeout)
    session = browser.open_tab()
    browser.call("Log.enable", {}, session)
    events: list = []
    browser.call("Page.navigate", {"url": base + page}, session)
    browser.wait_event("Page.loadEventFired", session, 60, events)
    value = browser.evaluate(session, expression, timeout)  # raises with the page's exception
    browser.drain_events(session, events)
    problems = []
    for ev in events:
        m, p = ev["method"], ev.get("params", {})
        if m == "Runtime.exceptionThrown":
            problems.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append(f"console.{p['type']}: {json.dumps(p.get('args'))[:200]}")
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            problems.append(f"log: {p['entry'].get('text')}")
        elif m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not url.startswith((base, "data:", "blob:")):
                problems.append(f"external request: {url}")
        elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
            problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
    return value, problems


@pytest.fixture(scope="module")
def served(site):
    server, base = check_pages.serve(site)
    yield base
    server.shutdown()


@pytest.fixture(scope="module")
def parity(browser, served):
    value, problems = open_page(browser, served, "live_parity.html", "window.parity")
    assert not problems, problems
    return value


def test_filtergrid_readout_and_gradients_match_the_library(parity):
    assert parity["readout"] < READOUT_RTOL, parity
    for key in ("snap1", "snap0", "snap1.loss", "snap0.loss"):
        assert parity[key] < READOUT_RTOL, (key, parity)


def test_fifty_adam_steps_of_snap1_match_the_library(parity):
    assert parity["adam"] < ADAM_RTOL, parity
    assert parity["examples_per_s"] > 0


def test_neuralgrid_and_gridnet_logits_and_predictions_match_the_library(parity):
    assert parity["neuralgrid"] < LOGITS_RTOL, parity
    assert parity["gridnet"] < LOGITS_RTOL, parity
    # NeuralGrid on Fashion-MNIST garments, every one of those shipped: same predictions
    assert parity["ng_dataset"] == "fashion_mnist", parity
    assert parity["ng_preds"] == parity["ng_images"] >= 20, parity
    assert parity["ng_pred_mismatch"] == 0 and parity["gn_pred_mismatch"] == 0, parity


# Draw a vertical stroke (a "1") with pointer events, then train for a moment in the worker.
PAGE_SCRIPT = r"""
(async () => {
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function until(cond, ms, what) {
    const t0 = performance.now();
    while (!cond()) {
      if (performance.now() - t0 > ms) throw new Error("timed out waiting for " + what);
      await sleep(50);
    }
  }
  await until(() => $("live-root").dataset.ready === "true", 60000, "the page");
  $("live-clear").click();
  const pad = $("live-pad");
  const box = pad.getBoundingClientRect();
  const at = (type, fy) => pad.dispatchEvent(new PointerEvent(type, {bubbles: true,
    pointerId: 1, clientX: box.left + 0.5 * box.width, clientY: box.top + fy * box.height}));
  at("pointerdown", 0.15);
  for (let k = 1; k <= 20; k++) at("pointermove", 0.15 + 0.7 * k / 20);
  at("pointerup", 0.85);
  const pred = $("live-fg-pred").dataset;
  const drawn = {pred: pred.pred, ink: Number(pred.ink), centre: Number(pred.centre),
                 label: $("live-label").textContent, ng_hidden: $("live-ng").hidden,
                 gn_hidden: $("live-gn").hidden, note: $("live-models-note").textContent};
  // before Train: no rate yet, and the accuracy shown is the initialisation's
  await until(() => $("live-heldout").dataset.seen === "0", 60000, "the first evaluation");
  const before = {rate: $("live-rate").textContent, rate_value: $("live-rate").dataset.value ?? null,
                  what: $("live-heldout-what").textContent, heldout: $("live-heldout").textContent};
  // each model: a sentence in words, its run folded under "Provenance"
  const models = {};
  for (const m of ["fg", "gn", "ng"]) {
    const d = $(`live-${m}-provenance`);
    models[m] = {about: $(`live-${m}-about`).textContent, tag: d.tagName, open: d.open,
                 summary: d.querySelector("summary").textContent, folded: d.textContent};
  }
  $("live-run").click();
  await until(() => Number($("live-rate").dataset.value || 0) > 0, 60000, "training");
  await sleep(2500);
  $("live-run").click();
  return {...drawn, before, models, rate: Number($("live-rate").dataset.value),
          heldout: Number($("live-heldout").dataset.value)};
})()
"""


def test_the_page_classifies_a_drawn_stroke_and_trains_cleanly(browser, served, site):
    value, problems = open_page(browser, served, "page.html", PAGE_SCRIPT)
    assert not problems, problems
    assert value["label"] == "your drawing" and value["pred"] in list("0123456789"), value
    # the stroke arrived as a 28 x 28 digit: ink, centred in column 13-14 like MNIST's ones
    assert value["ink"] > 1000 and 12 <= value["centre"] <= 15, value
    assert value["rate"] > 0 and 0 <= value["heldout"] <= 1, value
    # a model without trained parameters in the export: its panel hidden, the note names it
    manifest = json.loads((site / "live" / "manifest.json").read_text())
    for model, key in (("neuralgrid", "ng_hidden"), ("gridnet", "gn_hidden")):
        assert value[key] is not manifest[model], (model, value)
    if not manifest["neuralgrid"]:
        assert "NeuralGrid" in value["note"] and "not shown" in value["note"], value
    # before Train: a dash for the rate, and the accuracy is said to be the initialisation's
    before = value["before"]
    assert before["rate"] == "\u2013" and before["rate_value"] is None, before
    assert "untrained" in before["what"] and "initialisation" in before["what"], before
    assert before["heldout"].endswith("\u00a0%"), before  # no line break before %
    # each shipped model: its test accuracy in a sentence (from the export), and its run name and
    # command folded into a closed <details><summary>Provenance</summary>, not in the sentence
    for tag, name, key in (("fg", "filtergrid", "test/acc"), ("gn", "gridnet", "test_acc"),
                           ("ng", "neuralgrid", "test_acc")):
        if name != "filtergrid" and not manifest[name]:
            continue
        _, meta = web.unpack((site / "live" / f"{name}.bin").read_bytes())
        run, shown = meta["trained"], value["models"][tag]
        assert f"{100 * run['metrics'][key]:.2f}\u00a0%" in shown["about"], (name, shown)
        assert f"seed {run['seed']} of" in shown["about"], (name, shown)
        assert run["name"] not in shown["about"] and "commit" not in shown["about"], (name, shown)
        assert shown["tag"] == "DETAILS" and not shown["open"], (name, shown)
        assert shown["summary"] == "Provenance", (name, shown)
        assert run["name"] in shown["folded"] and run["describe"] in shown["folded"], (name, shown)


@pytest.fixture(scope="module")
def garment_page(site) -> str:
    """The page whose garment panel the test drives: the export's own where it ships NeuralGrid's
    trained parameters, else a copy whose ``neuralgrid.bin`` holds the fixtures' parameters."""
    from gridlib import web

    live = site / "live"
    if json.loads((live / "manifest.json").read_text())["neuralgrid"]:
        return "page.html"
    stand_in = site / "live_ng"
    shutil.copytree(live, stand_in)
    arrays, meta = web.unpack((live / "fixtures.bin").read_bytes())
    params = {k.removeprefix("ng.param."): v for k, v in arrays.items() if k.startswith("ng.param.")}
    trained = {"name": "stand-in: the library's initialisation", "describe": "test only",
               "config": {}, "metrics": {"test_acc": 0.0}}
    ng_meta = {**meta["neuralgrid"], "trained": trained}
    (stand_in / "neuralgrid.bin").write_bytes(web.pack(params, ng_meta))
    manifest = json.loads((live / "manifest.json").read_text())
    (stand_in / "manifest.json").write_text(json.dumps({**manifest, "neuralgrid": True}))
    (site / "page_ng.html").write_text(web.page_html("live_ng"))
    return "page_ng.html"


# Pick garments as a reader does: next, next, previous, then a class from the menu.
GARMENT_SCRIPT = r"""
(async () => {
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const t0 = performance.now();
  while ($("live-root").dataset.ready !== "true") {
    if (performance.now() - t0 > 60000) throw new Error("timed out waiting for the page");
    await sleep(50);
  }
  const shown = [];
  const read = () => {
    const d = $("live-ng-pred").dataset;
    shown.push({index: Number(d.index), pred: Number(d.pred), text: $("live-ng-pred").textContent,
                truth: $("live-ng-true").textContent});
  };
  read();
  $("live-ng-next").click(); read();
  $("live-ng-next").click(); read();
  $("live-ng-prev").click(); read();
  const pick = $("live-ng-class");
  pick.value = "8";
  pick.dispatchEvent(new Event("change"));
  read();
  return {hidden: $("live-ng").hidden, shown, right: Number($("live-ng-score").dataset.right),
          reset: pick.value};
})()
"""


def test_the_garment_panel_shows_the_librarys_neuralgrid_predictions(browser, served, site,
                                                                      garment_page):
    from gridlib import web

    value, problems = open_page(browser, served, garment_page, GARMENT_SCRIPT)
    assert not problems, problems
    fix, _ = web.unpack((site / "live" / "fixtures.bin").read_bytes())
    garments, meta = web.unpack((site / "live" / "garments.bin").read_bytes())
    names, labels, preds = meta["classes"], garments["y_test"], fix["ng.pred"]
    assert not value["hidden"], value
    assert [s["index"] for s in value["shown"]] == [0, 1, 2, 1, int(np.argmax(labels[2:] == 8)) + 2]
    for s in value["shown"]:
        assert s["pred"] == preds[s["index"]] and s["text"] == names[s["pred"]], (s, value)
        assert f"true class: {names[labels[s['index']]]}" in s["truth"], s
    assert labels[value["shown"][-1]["index"]] == 8 and value["reset"] == "", value
    # the panel's count of right answers over every shipped garment is the library's
    assert value["right"] == int(np.sum(preds == labels)), value


# Every canvas of the page, once it is ready: its backing store and CSS box, and the height on
# screen, in CSS px, of the text a chart draws (its font size times the context's scale, times
# CSS px per backing pixel).
CANVAS_SCRIPT = r"""
(async () => {
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  while ($("live-root").dataset.ready !== "true") await sleep(50);
  await sleep(500); // the resize observer's redraw
  const out = {dpr: devicePixelRatio, canvases: {}};
  for (const c of document.querySelectorAll("#live-root canvas")) {
    if (!c.clientWidth) continue; // a hidden panel
    const ctx = c.getContext("2d");
    out.canvases[c.id] = {backing: [c.width, c.height], box: [c.clientWidth, c.clientHeight],
                          text: parseFloat(ctx.font) * ctx.getTransform().a * c.clientWidth / c.width,
                          ticks: [c.dataset.xTicks, c.dataset.yTicks]};
  }
  return out;
})()
"""
#: The canvases that draw text (the training-accuracy and readout-trace charts).
CHARTS = ("live-acc", "live-traces")
#: The smallest text, in CSS px on screen, that a chart may draw.
MIN_TEXT_PX = 12


def test_the_canvases_are_drawn_at_the_screens_resolution_with_readable_text(browser, served):
    """At the browser's width, and in Chromium after a change to a 390 px phone at 3 device
    pixels per CSS px: every canvas's backing store is its CSS box times devicePixelRatio, and a
    chart's text is at least :data:`MIN_TEXT_PX` CSS px high on screen."""
    value, problems = open_page(browser, served, "page.html", CANVAS_SCRIPT)
    assert not problems, problems
    views = [value]
    if isinstance(browser, check_pages.Chromium):  # the resize, and the pixel ratio, in Chromium
        session = browser.open_tab()
        browser.call("Page.navigate", {"url": served + "page.html"}, session)
        browser.wait_event("Page.loadEventFired", session, 60, [])
        browser.evaluate(session, CANVAS_SCRIPT)
        browser.call("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}, session)
        views.append(browser.evaluate(session, CANVAS_SCRIPT))
        assert views[-1]["dpr"] == 3, views[-1]
    for view in views:
        assert set(CHARTS) <= set(view["canvases"]), view
        for name, c in view["canvases"].items():
            want = [round(b * view["dpr"]) for b in c["box"]]
            assert all(abs(g - w) <= 1 for g, w in zip(c["backing"], want, strict=True)), (name, view)
        for name in CHARTS:
            assert view["canvases"][name]["text"] >= MIN_TEXT_PX, (name, view)
            # each axis has round ticks between its ends, not only the ends (0 and 100)
            for axis in view["canvases"][name]["ticks"]:
                values = [float(v) for v in axis.split(",")]
                assert len(values) >= 3 and values == sorted(values), (name, view)
                step = values[1] - values[0]
                assert all(abs(b - a - step) < 1e-9 for a, b in zip(values, values[1:], strict=False)), (name, view)
                assert round(step / 10 ** np.floor(np.log10(step)), 9) in (1, 2, 2.5, 5), (name, view)
