"""The standalone page (dynaprot_viz/html.py, `dynaprot-viz view --html`), opened in headless Chromium.

The browser test needs Debian's chromium (`apt-get install -y chromium`) and
websocket-client; it skips with the reason when either is absent.
"""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.html import page_data, standalone_html, write_html

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def ubq():
    return dv.predict(DATA / "1ubi.pdb", model="anm")


def test_page_is_self_contained(ubq):
    page = standalone_html(ubq, DATA / "1ubi.pdb", n_samples=5)
    assert "cdn.jsdelivr" not in page and "https://" not in page.split("<script>")[0]
    assert "$3Dmol" in page and "dynaprotViz.addEllipsoids" in page
    assert page.count("<script") == 4  # 3Dmol, helper, data, app
    start = page.index('<script id="dynaprot-data" type="application/json">') + len(
        '<script id="dynaprot-data" type="application/json">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data["n"] == 76 and len(data["rmsfColors"]) == 76
    assert data["ensemble"].count("MODEL") == 5
    corr = np.frombuffer(base64.b64decode(data["correlation"]), np.uint8).reshape(76, 76)
    np.testing.assert_allclose(corr / 127.5 - 1, ubq.correlation, atol=1 / 127.5)
    assert data["mesh"]["nVertices"] == 162


def test_page_data_pockets(ubq):
    data = page_data(ubq, n_samples=0)
    assert data["ensemble"] == ""
    for p, q in zip(data["pockets"], dv.find_pockets(ubq)):
        assert p["residues"] == q.residues.tolist() and len(p["end"]) == len(q)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dynaprot_viz.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_cli_view(tmp_path):
    out = tmp_path / "ubq.html"
    r = _cli("view", str(DATA / "1ubi.pdb"), "--model", "anm", "--samples", "3", "--html", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists() and "wrote" in r.stdout
    assert list(tmp_path.iterdir()) == [out]  # nothing else left behind
    # from a saved .npz, with its structure
    npz = tmp_path / "d.npz"
    dv.predict(DATA / "1ubi.pdb", model="anm").save(npz)
    out2 = tmp_path / "npz.html"
    r = _cli("view", str(npz), "--structure", str(DATA / "1ubi.pdb"), "--html", str(out2))
    assert r.returncode == 0, r.stderr
    # bad input: exit 2, one line, no output
    bad = tmp_path / "bad.html"
    r = _cli("view", str(tmp_path / "missing.pdb"), "--model", "anm", "--html", str(bad))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and not bad.exists()
    r = _cli("view", str(DATA / "1ubi.pdb"), "--model", "anm", "--html", str(tmp_path / "x.txt"))
    assert r.returncode == 2 and ".html" in r.stderr


# ---------------------------------------------------------------------- real browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Chromium:
    """Headless Chromium driven through the DevTools protocol (websocket-client)."""

    def __init__(self):
        import websocket

        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="dv-chromium-")
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-extensions", "--window-size=1100,900",
                f"--user-data-dir={self.profile}", f"--remote-debugging-port={self.port}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.2)
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, expression, timeout=60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
            if r.get("result", {}).get("value"):
                return True
            time.sleep(0.25)
        return False

    def errors(self):
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("exception", {}).get("description")
                           or p["exceptionDetails"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text"))
        return out

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("headless browser test needs Debian's chromium: apt-get install -y chromium")
    pytest.importorskip("websocket", reason="browser test needs websocket-client (pip install websocket-client)")
    b = _Chromium()
    yield b
    b.close()


def _png_array(b64png: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64png))).convert("RGB"), dtype=np.float64)


ATLAS_1AB1 = ROOT.parent / "shared" / "data" / "atlas_chains" / "1ab1_A.pdb"


@pytest.mark.parametrize("case", ["ubq", "two_chains", "blank_chain"])
def test_page_renders_in_chromium(browser, tmp_path, case, ubq):
    if case == "ubq":
        dyn, src = ubq, DATA / "1ubi.pdb"
    elif case == "blank_chain":  # an MD file (ATLAS) with blank chain ids: issue 13
        if not ATLAS_1AB1.exists():
            pytest.skip("../shared/data/atlas_chains/1ab1_A.pdb not present (blank-chain case needs it)")
        src = ATLAS_1AB1
        dyn = dv.predict(src, model="anm")
    else:
        from dynaprot_viz.widget import stack_dynamics

        src = DATA / "1ake.cif"
        dyn = stack_dynamics([dv.predict(src, model="anm", chain=c) for c in "AB"])
    page = write_html(dyn, tmp_path / f"{case}.html", src, n_samples=4)
    b = browser
    b.events.clear()
    for domain in ("Page", "Runtime", "Log"):
        b.call(f"{domain}.enable")
    # no network: every request except the file itself fails
    b.call("Network.enable")
    b.call("Network.setBlockedURLs", urls=["http://*", "https://*", "ws://*", "wss://*"])
    b.call("Page.navigate", url=page.as_uri())
    assert b.wait_for("window.dynaprotReady === true"), f"page did not finish: {b.errors()}"
    # exercise the linked views: select a residue, show a pocket, play the ensemble
    b.call("Runtime.evaluate", expression="document.getElementById('residue').value='5';"
           "document.getElementById('residue').dispatchEvent(new Event('change'));")
    b.call("Runtime.evaluate", expression="var li=document.querySelector('#pockets li'); if (li) li.click();")
    b.call("Runtime.evaluate", expression="document.getElementById('play').click();")
    time.sleep(1.0)
    b.call("Runtime.evaluate", expression="document.getElementById('reset').click();")
    time.sleep(0.5)
    shot = b.call("Page.captureScreenshot", format="png")
    if os.environ.get("DV_KEEP_SCREENSHOT"):
        (Path(os.environ["DV_KEEP_SCREENSHOT"]) / f"{case}.png").write_bytes(base64.b64decode(shot["data"]))
    errors = b.errors()
    assert not errors, f"console errors: {errors}"
    img = _png_array(shot["data"])
    # the viewer div sits at the top left: the molecule makes its pixels vary
    region = img[40:540, 10:650]
    assert region.std() > 10.0, f"blank viewer (pixel std {region.std():.2f})"
    nonwhite = (region.sum(axis=2) < 3 * 240).mean()
    assert nonwhite > 0.02, f"almost nothing drawn ({nonwhite:.3%} non-white pixels)"
    # RMSF colours on the cartoon: drawn pixels are coloured, not the grey of an unstyled
    # wireframe (what a blank chain id gave when the page selected chain "")
    drawn = region[region.sum(axis=2) < 3 * 240]
    coloured = ((drawn.max(axis=1) - drawn.min(axis=1)) > 40).mean()
    assert coloured > 0.15, f"molecule drawn without colours ({coloured:.1%} of its pixels coloured)"
    # every C-alpha of the prediction is reached by the page's chain selections
    counted = b.call("Runtime.evaluate", returnByValue=True, expression=(
        "(function(){var D=JSON.parse(document.getElementById('dynaprot-data').textContent);"
        "var m=$3Dmol.createViewer(document.createElement('div'));m.addModel(D.structure,'pdb');"
        "var k=0;for(var i=0;i<D.n;i++){k+=m.selectedAtoms({chain:D.chains[i],resi:D.resi[i],atom:'CA'}).length;}"
        "return k;})()"))["result"]["value"]
    assert counted == dyn.n_residues


def test_isotropic_models_say_so(ubq_anm):
    """An isotropic predictor (ResAxial) draws spheres: the legend and the page say so."""
    import numpy as np

    from dynaprot_viz.core.gaussian import Dynamics
    from dynaprot_viz.html import standalone_html
    from dynaprot_viz.render.scene import build_scene

    tr = np.trace(ubq_anm.marginals, axis1=1, axis2=2) / 3
    iso = Dynamics(ubq_anm.mean, tr[:, None, None] * np.eye(3), ubq_anm.coupling, ubq_anm.residues,
                   "resaxial", isotropic=True)
    assert "isotropic" in build_scene(iso).legend.title
    assert "isotropic" not in build_scene(ubq_anm).legend.title
    assert "(isotropic model)</title>" in standalone_html(iso)


def test_page_heatmap_legends_and_arrows_in_chromium(browser, tmp_path, ubq):
    """Issue 13 item 6, in a real browser: the heatmap is drawn with residue 1 at the top left
    (as the figure), with axes and a colour bar; the RMSF legend states the true range; a pocket
    switches the legend to the pocket's key and draws arrows one can see."""
    page = write_html(ubq, tmp_path / "ubq.html", DATA / "1ubi.pdb", n_samples=0)
    b = browser
    b.events.clear()
    for domain in ("Page", "Runtime", "Log"):
        b.call(f"{domain}.enable")
    b.call("Page.navigate", url=page.as_uri())
    assert b.wait_for("window.dynaprotReady === true"), f"page did not finish: {b.errors()}"

    def js(expr):
        return b.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    assert js("document.getElementById('title').textContent").startswith("1ubi.pdb · 1UBI chain A")
    # heatmap pixels: row i of the matrix is drawn i cells from the top (residue 1 at the top
    # left, the diagonal from the top left to the bottom right, as in the figure)
    n, c = ubq.n_residues, ubq.correlation
    flipped = c[::-1]  # what row i would show if the rows ran bottom to top
    score = np.where(c < -0.1, flipped, -np.inf)  # C_ij negative where the flipped map is positive
    i, j = np.unravel_index(np.argmax(score), c.shape)
    assert c[i, j] < -0.1 and flipped[i, j] > 0.1

    def pixel(row, col):
        return js(f"(function(){{var d=document.getElementById('heatmap').getContext('2d').getImageData("
                  f"Math.floor(52+({col}+0.5)*340/{n}), Math.floor(6+({row}+0.5)*340/{n}),1,1).data;"
                  f"return [d[0],d[1],d[2]];}})()")

    red = np.array([103, 0, 31])
    assert np.abs(np.array(pixel(0, 0)) - red).sum() < 40 and np.abs(np.array(pixel(n - 1, n - 1)) - red).sum() < 40
    at, mirror = pixel(i, j), pixel(n - 1 - i, j)
    assert at[2] > at[0] + 40, f"cell ({i}, {j}) with C = {c[i, j]:.2f} is not blue: {at}"
    assert mirror[0] > mirror[2] + 40 or c[n - 1 - i, j] < 0.05, f"row order flipped: {mirror}"
    # axes: tick labels and axis labels are drawn left of and below the matrix (ink there)
    ink = js("(function(){var c=document.getElementById('heatmap').getContext('2d');"
             "function inked(x,y,w,h){var d=c.getImageData(x,y,w,h).data,k=0;for(var i=3;i<d.length;i+=4)k+=d[i]>0;return k;}"
             "return [inked(0,6,50,340), inked(52,348,340,40)];})()")
    assert ink[0] > 200 and ink[1] > 200, f"no tick labels beside the heatmap: {ink}"
    bar = js("(function(){var d=document.getElementById('heatmapBar').getContext('2d').getImageData(6,6,14,340).data;"
             "return [d[0],d[1],d[2],d[d.length-4],d[d.length-3],d[d.length-2]];})()")
    assert bar[0] > bar[2] and bar[5] > bar[3], f"colour bar not red at the top and blue at the bottom: {bar}"
    assert "correlation (DCCM)" in js("document.getElementById('heatmapLabel').textContent")
    # RMSF legend: robust range shown, true range stated
    note = js("document.getElementById('legendNote').textContent")
    assert f"{ubq.rmsf.max():.2f}" in note and "percentile" in note
    assert not js("document.getElementById('rmsfLegend').hidden")
    # a pocket: the legend becomes the pocket's key; the arrows show (blue pixels in the viewer)
    js("document.querySelector('#pockets li').click()")
    time.sleep(0.7)
    assert js("document.getElementById('rmsfLegend').hidden") is True
    key = js("document.getElementById('pocketLegend').textContent")
    assert js("document.getElementById('pocketLegend').hidden") is False and "pocket residues" in key and "arrows" in key
    shot = _png_array(b.call("Page.captureScreenshot", format="png")["data"])
    view = shot[60:560, 10:570]
    r, g, bl_ = view[..., 0], view[..., 1], view[..., 2]
    blue = (bl_ > 120) & (bl_ - r > 80) & (bl_ - g > 40)
    assert blue.mean() > 0.0005, f"motion arrows hardly visible ({blue.mean():.3%} of the viewer)"
    assert not b.errors(), f"console errors: {b.errors()}"
