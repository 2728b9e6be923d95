"""One self-contained, offline HTML page of residue dynamics (``dynaprot-viz view --html``).

The page holds everything it needs, no network: 3Dmol.js 2.5.5 (vendored from
npm's ``3dmol`` package, BSD-3-Clause, in dynaprot_viz/static/), our mesh helper,
and the data:

- the structure (PDB text) drawn as cartoon + C-alpha spheres coloured by RMSF,
  with a colour bar;
- the ellipsoids at probability p (the same mesh as the notebook renderers,
  :func:`dynaprot_viz.geometry.ellipsoid_mesh`, as base64 float32);
- the correlation (DCCM) matrix quantised to 8 bits (N² bytes) for the heatmap
  and for colouring by coupling: clicking a heatmap row, or choosing a residue
  in the menu, colours every residue by its correlation with that residue
  (blue negative, red positive); the RMSF profile runs along the heatmap's top;
- pockets (:func:`dynaprot_viz.find_pockets`) listed, one click highlights a
  patch and draws its motion directions as arrows;
- K ensemble samples (:meth:`Dynamics.sample`) as extra models, animated back
  and forth with play / pause and speed.

Size: about 0.6 MB of JavaScript plus ~0.2 MB per 100 residues at N = 1,000.
"""

from __future__ import annotations

import base64
import html as _html
import json
from pathlib import Path

import numpy as np

from .core.gaussian import Dynamics
from .core.pockets import find_pockets
from .geometry import DEFAULT_PROBABILITY
from .render.scene import build_scene, colormap_rgba, ensemble_text, structure_text
from .export import pdb_chain_name_map
from .render.threedmol import helper_js, mesh_spec, threedmol_chain, threedmol_js
from ._io import atomic_write_text

__all__ = ["standalone_html", "write_html", "page_data"]


def _b64(arr, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def _lut(cmap: str, vmin=0.0, vmax=1.0) -> str:
    rgba = colormap_rgba(np.linspace(0, 1, 256), cmap, vmin, vmax)
    return _b64(np.round(rgba[:, :3] * 255), np.uint8)


def page_data(dynamics: Dynamics, source=None, *, probability: float = DEFAULT_PROBABILITY, scale: float = 1.0,
              cmap: str = "viridis", opacity: float = 0.8, n_samples: int = 20, seed: int = 0,
              amplitude: float = 1.0) -> dict:
    """Everything the page's script reads, as a JSON-ready dict (arrays in base64)."""
    scene = build_scene(dynamics, structure_text(dynamics, source), probability=probability, scale=scale,
                        cmap=cmap, opacity=opacity)
    corr = np.asarray(dynamics.correlation)
    q = np.clip(np.round((corr + 1.0) * 127.5), 0, 255).astype(np.uint8)  # -1..1 -> 0..255
    pockets = []
    for p in find_pockets(dynamics):
        pockets.append({
            "residues": p.residues.tolist(), "score": round(p.score, 3), "opening": round(p.opening, 3),
            "start": np.round(dynamics.mean[p.residues], 2).tolist(),
            "end": np.round(build_scene(dynamics, scene.structure_text, probability=probability, scale=scale,
                                        pocket=p, color_by="pocket", subdivisions=0).arrow_end, 2).tolist(),
            "labels": p.labels(dynamics),
        })
    frames = dynamics.sample(int(n_samples), seed=seed, amplitude=amplitude) if n_samples else None
    rmsf = dynamics.rmsf
    # chain ids as 3Dmol reads them from the page's PDB text (a blank chain is " ")
    written = pdb_chain_name_map(r.chain for r in dynamics.residues)
    return {
        "model": dynamics.model_name,
        "n": dynamics.n_residues,
        "labels": [r.label() for r in dynamics.residues],
        "chains": [threedmol_chain(written[r.chain]) for r in dynamics.residues],
        "resi": [r.number for r in dynamics.residues],
        "rmsf": np.round(rmsf, 4).tolist(),
        "rmsfColors": scene.residue_hex(),
        "legend": {"title": scene.legend.title, "vmin": scene.legend.vmin, "vmax": scene.legend.vmax,
                   "lut": _lut(cmap)},
        "couplingLut": _lut("RdBu_r"),
        "correlation": base64.b64encode(q.tobytes()).decode("ascii"),
        "structure": scene.structure_text,
        "mesh": mesh_spec(scene),
        "probability": probability,
        "pockets": pockets,
        "ensemble": ensemble_text(dynamics, frames) if frames is not None else "",
        "nSamples": int(n_samples),
        "isotropic": dynamics.isotropic,
    }


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 13px sans-serif; margin: 10px; color: #222; }
#wrap { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
#viewer { width: 560px; height: 500px; position: relative; border: 1px solid #ccc; }
#side canvas { display: block; image-rendering: pixelated; }
#legend { width: 300px; height: 12px; border: 1px solid #999; }
.row { margin: 6px 0; } button { margin-right: 4px; }
#pockets li { cursor: pointer; } #pockets li:hover { text-decoration: underline; }
.muted { color: #777; }
</style></head><body>
<h3>__TITLE__</h3>
<div id="wrap">
 <div>
  <div id="viewer"></div>
  <div class="row"><span id="legendTitle"></span><br><canvas id="legend" width="300" height="12"></canvas>
   <span id="legendRange" class="muted"></span></div>
  <div class="row">residue <select id="residue"></select> <button id="reset">RMSF colours</button></div>
  <div class="row">ensemble: <button id="play">play</button><button id="pause">pause</button>
   ms/frame <input id="speed" type="number" min="20" max="2000" value="100" style="width:5em">
   <label><input id="bounce" type="checkbox" checked> bounce</label> <span id="nsamp" class="muted"></span></div>
 </div>
 <div id="side">
  <div class="muted">__RMSF_LABEL__</div><canvas id="profile" width="360" height="70"></canvas>
  <canvas id="heatmap" width="360" height="360" title="click a row: colour by correlation with that residue"></canvas>
  <div class="muted">correlation (DCCM), click to select a residue</div>
  <h4>Pocket candidates</h4><ol id="pockets"></ol>
 </div>
</div>
<p class="muted">Ellipsoids contain each C-alpha with probability __PROB__ (Mahalanobis radius sqrt(chi2_3.ppf(p))).
Made with dynaprot-viz __VERSION__; 3Dmol.js (BSD-3-Clause) is embedded.</p>
<script>__THREEDMOL__</script>
<script>__HELPER__</script>
<script id="dynaprot-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("dynaprot-data").textContent);
  var n = D.n, corr = dynaprotViz.bytes(D.correlation);
  var lut = dynaprotViz.bytes(D.legend.lut), clut = dynaprotViz.bytes(D.couplingLut);
  var viewer = $3Dmol.createViewer(document.getElementById("viewer"), {backgroundColor: "white"});
  viewer.addModel(D.structure, "pdb");
  var ensembleModel = null, shapes = [], extras = [];
  function hex(r, g, b) { return "#" + [r, g, b].map(function (v) { return ("0" + v.toString(16)).slice(-2); }).join(""); }
  function lutColor(table, t) { var k = Math.max(0, Math.min(255, Math.round(t * 255))); return [table[3*k], table[3*k+1], table[3*k+2]]; }
  function drawLegend(table, title, lo, hi) {
    var c = document.getElementById("legend").getContext("2d");
    for (var x = 0; x < 300; x++) { var col = lutColor(table, x / 299); c.fillStyle = hex(col[0], col[1], col[2]); c.fillRect(x, 0, 1, 12); }
    document.getElementById("legendTitle").textContent = title;
    document.getElementById("legendRange").textContent = lo.toFixed(2) + " .. " + hi.toFixed(2);
  }
  function applyColors(hexes) {
    var maps = {};
    for (var i = 0; i < n; i++) { var m = maps[D.chains[i]] || (maps[D.chains[i]] = {}); if (!(D.resi[i] in m)) m[D.resi[i]] = hexes[i]; }
    for (var ch in maps) {
      var scheme = {prop: "resi", map: maps[ch]};
      viewer.setStyle({chain: ch, model: 0}, {cartoon: {colorscheme: scheme}});
      viewer.addStyle({chain: ch, model: 0, atom: "CA"}, {sphere: {radius: 0.35, colorscheme: scheme}});
    }
    shapes.forEach(function (s) { viewer.removeShape(s); });
    var spec = Object.assign({}, D.mesh), cols = new Float32Array(3 * n);
    for (var i = 0; i < n; i++) { var h = hexes[i]; cols[3*i] = parseInt(h.substr(1, 2), 16) / 255; cols[3*i+1] = parseInt(h.substr(3, 2), 16) / 255; cols[3*i+2] = parseInt(h.substr(5, 2), 16) / 255; }
    var u = new Uint8Array(cols.buffer), s = ""; for (var k = 0; k < u.length; k++) s += String.fromCharCode(u[k]);
    spec.colors = btoa(s);
    shapes = dynaprotViz.addEllipsoids(viewer, spec);
  }
  function clearExtras() { extras.forEach(function (e) { if (e.label) viewer.removeLabel(e.label); else viewer.removeShape(e); }); extras = []; }
  function showRmsf() { clearExtras(); applyColors(D.rmsfColors); drawLegend(lut, D.legend.title, D.legend.vmin, D.legend.vmax); drawHeatmap(-1); viewer.render(); }
  function select(j) {
    clearExtras();
    var hexes = [];
    for (var i = 0; i < n; i++) { var col = i === j ? [25, 230, 50] : lutColor(clut, corr[j * n + i] / 255); hexes.push(hex(col[0], col[1], col[2])); }
    applyColors(hexes);
    var atoms = viewer.selectedAtoms({model: 0, chain: D.chains[j], resi: D.resi[j], atom: "CA"});
    if (atoms.length) extras.push({label: viewer.addLabel(D.labels[j], {position: atoms[0], backgroundColor: "black", fontSize: 12})});
    drawLegend(clut, "correlation with " + D.labels[j], -1, 1);
    document.getElementById("residue").value = String(j);
    drawHeatmap(j); viewer.render();
  }
  function showPocket(p) {
    clearExtras();
    var member = {}; p.residues.forEach(function (i) { member[i] = true; });
    var hexes = []; for (var i = 0; i < n; i++) hexes.push(member[i] ? "#ff8c00" : "#c7c7c7");
    applyColors(hexes);
    for (var k = 0; k < p.start.length; k++) {
      extras.push(viewer.addArrow({start: {x: p.start[k][0], y: p.start[k][1], z: p.start[k][2]},
                                   end: {x: p.end[k][0], y: p.end[k][1], z: p.end[k][2]}, radius: 0.3, color: "#ff8c00"}));
    }
    drawLegend(lut, "pocket: " + p.labels.slice(0, 3).join(", ") + (p.labels.length > 3 ? " ..." : ""), 0, 1);
    drawHeatmap(-1); viewer.render();
  }
  // heatmap (one pixel per residue pair, scaled by CSS) and RMSF profile
  var heat = document.getElementById("heatmap"), base = document.createElement("canvas");
  base.width = n; base.height = n;
  (function () {
    var ctx = base.getContext("2d"), img = ctx.createImageData(n, n);
    for (var k = 0; k < n * n; k++) { var col = lutColor(clut, corr[k] / 255); img.data[4*k] = col[0]; img.data[4*k+1] = col[1]; img.data[4*k+2] = col[2]; img.data[4*k+3] = 255; }
    ctx.putImageData(img, 0, 0);
  })();
  function drawHeatmap(j) {
    var c = heat.getContext("2d"); c.imageSmoothingEnabled = n > heat.width;
    c.drawImage(base, 0, 0, heat.width, heat.height);
    if (j >= 0) { var y = (j + 0.5) * heat.height / n; c.strokeStyle = "#19e632"; c.beginPath(); c.moveTo(0, y); c.lineTo(heat.width, y); c.moveTo(y, 0); c.lineTo(y, heat.height); c.stroke(); }
  }
  (function () {
    var c = document.getElementById("profile").getContext("2d"), w = 360, h = 70, mx = Math.max.apply(null, D.rmsf);
    c.strokeStyle = "#000"; c.beginPath();
    for (var i = 0; i < n; i++) { var x = (i + 0.5) * w / n, y = h - 4 - (h - 8) * D.rmsf[i] / mx; if (i) c.lineTo(x, y); else c.moveTo(x, y); }
    c.stroke(); c.fillText(mx.toFixed(2), 2, 10);
  })();
  heat.addEventListener("click", function (ev) {
    var r = heat.getBoundingClientRect(); select(Math.min(n - 1, Math.floor((ev.clientY - r.top) / r.height * n)));
  });
  var menu = document.getElementById("residue");
  for (var i = 0; i < n; i++) { var o = document.createElement("option"); o.value = String(i); o.textContent = D.labels[i]; menu.appendChild(o); }
  menu.addEventListener("change", function () { select(parseInt(menu.value, 10)); });
  document.getElementById("reset").addEventListener("click", showRmsf);
  var list = document.getElementById("pockets");
  if (!D.pockets.length) list.outerHTML = "<p class='muted'>none found</p>";
  D.pockets.forEach(function (p, k) {
    var li = document.createElement("li");
    li.textContent = "score " + p.score.toFixed(2) + ", opening " + Math.round(100 * p.opening) + "%: " + p.labels.slice(0, 4).join(", ") + (p.labels.length > 4 ? " ..." : "");
    li.addEventListener("click", function () { showPocket(p); }); list.appendChild(li);
  });
  // ensemble
  function startAnimation() {
    if (!D.ensemble) return;
    if (ensembleModel === null) {
      ensembleModel = viewer.addModelsAsFrames(D.ensemble, "pdb");
      viewer.setStyle({model: ensembleModel}, {sphere: {radius: 0.5, color: "#444444"}, line: {color: "#444444"}});
    }
    viewer.stopAnimate();
    viewer.animate({loop: document.getElementById("bounce").checked ? "backAndForth" : "forward",
                    interval: Math.max(20, parseInt(document.getElementById("speed").value, 10) || 100)});
  }
  document.getElementById("play").addEventListener("click", startAnimation);
  document.getElementById("pause").addEventListener("click", function () { viewer.stopAnimate(); });
  document.getElementById("nsamp").textContent = D.ensemble ? D.nSamples + " samples" : "no samples";
  showRmsf();
  viewer.zoomTo(); viewer.render();
  window.dynaprotReady = true;
})();
</script>
</body></html>
"""


def standalone_html(dynamics: Dynamics, source=None, *, title: str | None = None, **options) -> str:
    """The page as a string; ``options`` as :func:`page_data` (probability, scale, cmap, opacity,
    n_samples, seed, amplitude)."""
    from . import __version__

    data = page_data(dynamics, source, **options)
    title = title or (f"{dynamics.model_name} dynamics, {dynamics.n_residues} residues"
                      + (" (isotropic model)" if dynamics.isotropic else ""))
    # JSON inside <script>: escape "</" so no string can close the tag
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    out = _PAGE
    for key, value in (("__TITLE__", _html.escape(title)), ("__PROB__", f"{data['probability']:g}"),
                       ("__VERSION__", __version__), ("__HELPER__", helper_js()),
                       ("__RMSF_LABEL__", _html.escape(dynamics.rmsf_label))):
        out = out.replace(key, value)
    # the big pieces last, so that no placeholder text inside them is replaced
    head, _, tail = out.partition("__THREEDMOL__")
    tail_a, _, tail_b = tail.partition("__DATA__")
    return head + threedmol_js().replace("</script", "<\\/script") + tail_a + payload + tail_b


def write_html(dynamics: Dynamics, path, source=None, **options) -> Path:
    """Write :func:`standalone_html` to ``path`` atomically; returns the path."""
    return atomic_write_text(Path(path), standalone_html(dynamics, source, **options))
