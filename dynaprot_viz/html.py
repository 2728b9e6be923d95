"""One self-contained, offline HTML page of residue dynamics (``dynaprot-viz view --html``).

The page holds everything it needs, no network: 3Dmol.js 2.5.5 (vendored from
npm's ``3dmol`` package, BSD-3-Clause, in dynaprot_viz/static/), our mesh helper,
and the data:

- the structure (PDB text) drawn as cartoon + C-alpha spheres coloured by RMSF,
  with a colour bar;
- the ellipsoids at probability p (the same mesh as the notebook renderers,
  :func:`dynaprot_viz.geometry.ellipsoid_mesh`, as base64 float32);
- RMSF colours on a robust scale (2nd-98th percentile, :func:`~dynaprot_viz.render.scales.rmsf_color_range`),
  the true minimum and maximum stated under the colour bar;
- the correlation (DCCM) matrix quantised to 8 bits (N² bytes) for the heatmap
  and for colouring by coupling: clicking a heatmap row, or choosing a residue
  in the menu, colours every residue by its correlation with that residue
  (blue negative, red positive); the heatmap has residue axes with ticks on
  round residue numbers, a colour bar, and the orientation of the figure and the
  widget (residue 1 at the top left, :data:`~dynaprot_viz.render.scales.HEATMAP_ORIGIN`);
  its colour range is the one :func:`~dynaprot_viz.render.scales.correlation_view`
  chooses (-1..1, or ±98th percentile of |C_ij| when most entries are tiny), and the
  label under it says which; the RMSF profile runs along the heatmap's top;
- pockets (:func:`dynaprot_viz.find_pockets`) listed, one click highlights a
  patch, draws its motion directions as thick blue arrows and switches the
  legend to the pocket's key;
- a complex (several chains): each chain's id as a 3D label on the chain's colour,
  whatever the colouring, a chain legend (chain id -> colour, residue count) under
  the viewer and a "chain colours" button that colours cartoon and ellipsoids by
  chain (RMSF colours stay the default); a single chain's page has none of these;
- a title naming the input file, the structure's PDB id and title when the file
  has them, the chain(s) and the model;
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

from .core.errors import InputError
from .core.gaussian import Dynamics
from .core.pockets import find_pockets
from .geometry import DEFAULT_PROBABILITY
from .render.scales import HEATMAP_ORIGIN, chain_bounds, correlation_view, residue_ticks
from .render.scene import arrow_lengths, build_scene, colormap_rgba, describe_source, ensemble_text, structure_text
from .export import pdb_chain_name_map
from .render.threedmol import ARROW_STYLE, chain_label_style, helper_js, mesh_spec, threedmol_chain, threedmol_js
from ._io import atomic_write_text

__all__ = ["standalone_html", "write_html", "page_data", "page_title"]


def _b64(arr, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def _lut(cmap: str, vmin=0.0, vmax=1.0) -> str:
    rgba = colormap_rgba(np.linspace(0, 1, 256), cmap, vmin, vmax)
    return _b64(np.round(rgba[:, :3] * 255), np.uint8)


def page_data(dynamics: Dynamics, source=None, *, probability: float = DEFAULT_PROBABILITY, scale: float = 1.0,
              cmap: str = "viridis", opacity: float = 0.8, n_samples: int = 20, seed: int = 0,
              amplitude: float = 1.0, heatmap_range: str = "auto") -> dict:
    """Everything the page's script reads, as a JSON-ready dict (arrays in base64).

    ``heatmap_range`` is the correlation colour range ("auto", "full" or "robust",
    :func:`~dynaprot_viz.render.scales.correlation_view`); the page always shows the
    DCCM itself (so that a clicked row is the residue's true correlation profile).
    """
    scene = build_scene(dynamics, structure_text(dynamics, source), probability=probability, scale=scale,
                        cmap=cmap, opacity=opacity)
    corr = np.asarray(dynamics.correlation)
    q = np.clip(np.round((corr + 1.0) * 127.5), 0, 255).astype(np.uint8)  # -1..1 -> 0..255
    if heatmap_range not in ("auto", "full", "robust"):
        raise InputError(f"heatmap_range must be 'auto', 'full' or 'robust' (the page shows the DCCM), "
                         f"got {heatmap_range!r}")
    view = correlation_view(dynamics, heatmap_range)
    pockets = []
    for k, p in enumerate(find_pockets(dynamics), start=1):
        start = np.asarray(dynamics.mean[p.residues])
        end = start + p.directions * arrow_lengths(dynamics, p, probability, scale)[:, None]
        key = build_scene(dynamics, scene.structure_text, probability=probability, scale=scale, pocket=p,
                          color_by="pocket", residues=[], subdivisions=0).legend
        pockets.append({
            "name": f"P{k}", "residues": p.residues.tolist(), "score": round(p.score, 3),
            "opening": round(p.opening, 3), "start": np.round(start, 2).tolist(),
            "end": np.round(end, 2).tolist(), "labels": p.labels(dynamics),
            "legend": {"title": f"P{k}: {key.title}", "entries": [list(e) for e in key.entries]},
        })
    frames = dynamics.sample(int(n_samples), seed=seed, amplitude=amplitude) if n_samples else None
    rmsf = dynamics.rmsf
    lg = scene.legend
    # chain ids as 3Dmol reads them from the page's PDB text (a blank chain is " ")
    written = pdb_chain_name_map(r.chain for r in dynamics.residues)
    out = {
        "model": dynamics.model_name,
        "n": dynamics.n_residues,
        "labels": [r.label() for r in dynamics.residues],
        "chains": [threedmol_chain(written[r.chain]) for r in dynamics.residues],
        "resi": [r.number for r in dynamics.residues],
        "rmsf": np.round(rmsf, 4).tolist(),
        "rmsfColors": scene.residue_hex(),
        "legend": {"title": lg.title, "vmin": lg.vmin, "vmax": lg.vmax, "note": lg.note,
                   "dataMin": lg.data_min, "dataMax": lg.data_max, "lut": _lut(cmap)},
        "couplingLut": _lut("RdBu_r"),
        "correlation": base64.b64encode(q.tobytes()).decode("ascii"),
        # how the heatmap is drawn: row 0 (the first residue) at the top, as the figure and widget
        "heatmap": {"origin": HEATMAP_ORIGIN, "vmin": view.vmin, "vmax": view.vmax, "kind": view.kind,
                    "label": view.label, "what": view.what, "rangeNote": view.range_note, "xlabel": "residue j", "ylabel": "residue i",
                    "ticks": [[i, t] for i, t in residue_ticks(dynamics.residues, target=6)],
                    # a complex: [start, stop, chain] per chain; lines between chains, names on the edges
                    "chains": [[a, b, c or "_"] for a, b, c in chain_bounds(dynamics.residues)]},
        "arrow": dict(ARROW_STYLE),
        "structure": scene.structure_text,
        "mesh": mesh_spec(scene),
        "probability": probability,
        "pockets": pockets,
        "ensemble": ensemble_text(dynamics, frames) if frames is not None else "",
        "nSamples": int(n_samples),
        "isotropic": dynamics.isotropic,
    }
    if scene.chains:  # a complex: chain labels, chain legend and chain colours (absent for one chain)
        out["chainKey"] = [{"chain": k.text, "color": k.color, "n": k.n_residues, "label": chain_label_style(k)}
                           for k in scene.chains]
        out["chainColors"] = build_scene(dynamics, scene.structure_text, color_by="chain", residues=[],
                                         subdivisions=0).residue_hex()
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 13px sans-serif; margin: 10px; color: #222; }
h3 { margin: 4px 0 2px 0; } #subtitle { margin: 0 0 8px 0; }
#wrap { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
#viewer { width: 560px; height: 500px; position: relative; border: 1px solid #ccc; }
#side { width: 470px; } #side canvas { display: block; }
#heatrow { display: flex; align-items: flex-start; }
#legend { width: 300px; height: 12px; border: 1px solid #999; }
#chainLegend .sw { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 8px; border: 1px solid #888; vertical-align: middle; }
#pocketLegend .sw { display: inline-block; width: 14px; height: 10px; margin-right: 5px; border: 1px solid #888; vertical-align: middle; }
#pocketLegend .ar { display: inline-block; width: 22px; height: 4px; margin: 0 3px 2px 0; vertical-align: middle; }
.row { margin: 6px 0; } button { margin-right: 4px; }
#pockets li { cursor: pointer; } #pockets li:hover { text-decoration: underline; }
.muted { color: #666; } .small { font-size: 11px; }
</style></head><body>
<h3 id="title">__H_TITLE__</h3>
<div id="subtitle" class="muted">__SUBTITLE__</div>
<div id="wrap">
 <div>
  <div id="viewer"></div>
  <div class="row" id="rmsfLegend"><span id="legendTitle"></span><br><canvas id="legend" width="300" height="12"></canvas>
   <span id="legendRange" class="muted"></span><div id="legendNote" class="muted small"></div></div>
  <div class="row" id="pocketLegend" hidden></div>
  <div class="row" id="chainLegend" hidden></div>
  <div class="row">residue <select id="residue"></select> <button id="reset">RMSF colours</button></div>
  <div class="row">ensemble: <button id="play">play</button><button id="pause">pause</button>
   ms/frame <input id="speed" type="number" min="20" max="2000" value="100" style="width:5em">
   <label><input id="bounce" type="checkbox" checked> bounce</label> <span id="nsamp" class="muted"></span></div>
 </div>
 <div id="side">
  <div class="muted">__RMSF_LABEL__ per residue</div><canvas id="profile" width="400" height="74"></canvas>
  <div id="heatrow">
   <canvas id="heatmap" width="400" height="388" title="click a row: colour by correlation with that residue"></canvas>
   <canvas id="heatmapBar" width="64" height="388" title="colour bar of the correlation map"></canvas>
  </div>
  <div id="heatmapLabel" class="muted small"></div>
  <div class="muted small">residue 1 at the top left; click a row to colour by correlation with that residue</div>
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
  var n = D.n, corr = dynaprotViz.bytes(D.correlation), H = D.heatmap;
  var lut = dynaprotViz.bytes(D.legend.lut), clut = dynaprotViz.bytes(D.couplingLut);
  var viewer = $3Dmol.createViewer(document.getElementById("viewer"), {backgroundColor: "white"});
  viewer.addModel(D.structure, "pdb");
  var ensembleModel = null, shapes = [], extras = [];
  function hex(r, g, b) { return "#" + [r, g, b].map(function (v) { return ("0" + v.toString(16)).slice(-2); }).join(""); }
  function lutColor(table, t) { var k = Math.max(0, Math.min(255, Math.round(t * 255))); return [table[3*k], table[3*k+1], table[3*k+2]]; }
  // correlation byte (0..255 for -1..1) -> position on the heatmap's colour range
  function corrT(b) { return ((b / 127.5 - 1) - H.vmin) / (H.vmax - H.vmin); }
  function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2); }
  function showColorbar(on) {
    document.getElementById("rmsfLegend").hidden = !on;
    document.getElementById("pocketLegend").hidden = on;
  }
  function drawLegend(table, title, lo, hi, note) {
    showColorbar(true);
    var c = document.getElementById("legend").getContext("2d");
    for (var x = 0; x < 300; x++) { var col = lutColor(table, x / 299); c.fillStyle = hex(col[0], col[1], col[2]); c.fillRect(x, 0, 1, 12); }
    document.getElementById("legendTitle").textContent = title;
    document.getElementById("legendRange").textContent = fmt(lo) + " .. " + fmt(hi);
    document.getElementById("legendNote").textContent = note || "";
  }
  function pocketLegend(p, noArrow) {
    showColorbar(false);
    var box = document.getElementById("pocketLegend"); box.innerHTML = "";
    var t = document.createElement("div"); t.textContent = p.legend.title; box.appendChild(t);
    p.legend.entries.forEach(function (e, k) {
      var row = document.createElement("div"), sw = document.createElement("span");
      sw.className = k === p.legend.entries.length - 1 && !noArrow ? "ar" : "sw"; sw.style.background = e[1];
      row.appendChild(sw); row.appendChild(document.createTextNode(e[0])); box.appendChild(row);
    });
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
  function showRmsf() { clearExtras(); applyColors(D.rmsfColors); drawLegend(lut, D.legend.title, D.legend.vmin, D.legend.vmax, D.legend.note); drawHeatmap(-1); viewer.render(); }
  function showChains() {  // a complex: cartoon and ellipsoids in chain colours
    clearExtras(); applyColors(D.chainColors);
    pocketLegend({legend: {title: "coloured by chain", entries: D.chainKey.map(function (c) {
      return ["chain " + c.chain + " (" + c.n + " residues)", c.color]; })}}, true);
    drawHeatmap(-1); viewer.render();
  }
  if (D.chainKey) {  // chain ids in 3D on their chain's colour, kept in every colouring
    var cbox = document.getElementById("chainLegend"); cbox.hidden = false;
    cbox.appendChild(document.createTextNode("chains:"));
    D.chainKey.forEach(function (c) {
      var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = c.color;
      cbox.appendChild(sw); cbox.appendChild(document.createTextNode(c.chain + " (" + c.n + ")"));
      viewer.addLabel("chain " + c.chain, c.label);
    });
    var cb = document.createElement("button"); cb.id = "chainColours"; cb.textContent = "chain colours";
    cb.style.marginLeft = "10px"; cb.addEventListener("click", showChains); cbox.appendChild(cb);
  }
  function select(j) {
    clearExtras();
    var hexes = [];
    for (var i = 0; i < n; i++) { var col = i === j ? [25, 230, 50] : lutColor(clut, corrT(corr[j * n + i])); hexes.push(hex(col[0], col[1], col[2])); }
    applyColors(hexes);
    var atoms = viewer.selectedAtoms({model: 0, chain: D.chains[j], resi: D.resi[j], atom: "CA"});
    if (atoms.length) extras.push({label: viewer.addLabel(D.labels[j], {position: atoms[0], backgroundColor: "black", fontSize: 12})});
    drawLegend(clut, "correlation with " + D.labels[j], H.vmin, H.vmax, H.label);
    document.getElementById("residue").value = String(j);
    drawHeatmap(j); viewer.render();
  }
  function showPocket(p) {
    clearExtras();
    var member = {}; p.residues.forEach(function (i) { member[i] = true; });
    var hexes = []; for (var i = 0; i < n; i++) hexes.push(member[i] ? "#ff8c00" : "#c7c7c7");
    applyColors(hexes);
    for (var k = 0; k < p.start.length; k++) {
      extras.push(viewer.addArrow(Object.assign({start: {x: p.start[k][0], y: p.start[k][1], z: p.start[k][2]},
                                                 end: {x: p.end[k][0], y: p.end[k][1], z: p.end[k][2]}}, D.arrow)));
    }
    pocketLegend(p);
    drawHeatmap(-1); viewer.render();
  }
  // heatmap: matrix drawn with row 0 (residue 1) at the top left (H.origin "upper"), one
  // pixel per residue pair scaled into the plot box, with residue axes and a colour bar
  var heat = document.getElementById("heatmap"), base = document.createElement("canvas");
  var BOX = {left: 52, top: 6, size: 340};
  base.width = n; base.height = n;
  (function () {
    var ctx = base.getContext("2d"), img = ctx.createImageData(n, n);
    for (var k = 0; k < n * n; k++) { var col = lutColor(clut, corrT(corr[k])); img.data[4*k] = col[0]; img.data[4*k+1] = col[1]; img.data[4*k+2] = col[2]; img.data[4*k+3] = 255; }
    ctx.putImageData(img, 0, 0);  // image row r = matrix row r: row 0 on top
  })();
  function pos(i) { return (i + 0.5) * BOX.size / n; }
  function drawHeatmap(j) {
    var c = heat.getContext("2d"), L = BOX.left, T = BOX.top, S = BOX.size;
    c.clearRect(0, 0, heat.width, heat.height);
    c.imageSmoothingEnabled = n > S;
    c.drawImage(base, L, T, S, S);
    c.strokeStyle = "#444"; c.lineWidth = 1; c.strokeRect(L - 0.5, T - 0.5, S + 1, S + 1);
    c.fillStyle = "#222"; c.font = "11px sans-serif";
    H.ticks.forEach(function (t) {
      var p = pos(t[0]);
      c.beginPath(); c.moveTo(L + p, T + S); c.lineTo(L + p, T + S + 4); c.moveTo(L, T + p); c.lineTo(L - 4, T + p); c.stroke();
      c.textAlign = "center"; c.textBaseline = "top"; c.fillText(t[1], L + p, T + S + 6);
      c.textAlign = "right"; c.textBaseline = "middle"; c.fillText(t[1], L - 6, T + p);
    });
    c.textAlign = "center"; c.textBaseline = "top"; c.fillText(H.xlabel, L + S / 2, T + S + 22);
    c.save(); c.translate(12, T + S / 2); c.rotate(-Math.PI / 2); c.textBaseline = "middle"; c.fillText(H.ylabel, 0, 0); c.restore();
    if (H.chains.length > 1) {  // chain boundaries and chain names (a complex)
      c.save(); c.strokeStyle = "#000"; c.lineWidth = 1.2; c.setLineDash([4, 3]);
      H.chains.forEach(function (b, k) {
        var e = b[0] * S / n;
        if (k > 0) { c.beginPath(); c.moveTo(L + e, T); c.lineTo(L + e, T + S); c.moveTo(L, T + e); c.lineTo(L + S, T + e); c.stroke(); }
      });
      c.restore(); c.font = "bold 11px sans-serif"; c.fillStyle = "#000";
      H.chains.forEach(function (b) {
        var mid = 0.5 * (b[0] + b[1]) * S / n;
        c.textAlign = "center"; c.textBaseline = "bottom"; c.fillText(b[2], L + mid, T + 12);
        c.textAlign = "left"; c.textBaseline = "middle"; c.fillText(b[2], L + 3, T + mid);
      });
      c.font = "11px sans-serif"; c.fillStyle = "#222";
    }
    if (j >= 0) { var y = T + pos(j), x = L + pos(j); c.strokeStyle = "#19e632"; c.beginPath(); c.moveTo(L, y); c.lineTo(L + S, y); c.moveTo(x, T); c.lineTo(x, T + S); c.stroke(); }
  }
  (function () {  // colour bar of the heatmap
    var bar = document.getElementById("heatmapBar"), c = bar.getContext("2d"), T = BOX.top, S = BOX.size;
    for (var y = 0; y < S; y++) { var col = lutColor(clut, 1 - y / (S - 1)); c.fillStyle = hex(col[0], col[1], col[2]); c.fillRect(6, T + y, 14, 1); }
    c.strokeStyle = "#444"; c.strokeRect(5.5, T - 0.5, 15, S + 1);
    c.fillStyle = "#222"; c.font = "11px sans-serif"; c.textAlign = "left"; c.textBaseline = "middle";
    [H.vmax, 0.5 * H.vmax + 0.5 * H.vmin, H.vmin].forEach(function (v, k) {
      var y = T + k * S / 2; c.beginPath(); c.moveTo(20, y); c.lineTo(24, y); c.stroke();
      c.fillText((v > 0 ? "+" : "") + v.toFixed(2), 26, y);
    });
    document.getElementById("heatmapLabel").textContent = H.label;
  })();
  (function () {  // RMSF profile, x aligned with the heatmap's columns
    var c = document.getElementById("profile").getContext("2d"), L = BOX.left, S = BOX.size, h = 74;
    var mx = Math.max.apply(null, D.rmsf);
    c.strokeStyle = "#444"; c.beginPath(); c.moveTo(L, 4); c.lineTo(L, h - 4); c.lineTo(L + S, h - 4); c.stroke();
    c.strokeStyle = "#000"; c.beginPath();
    for (var i = 0; i < n; i++) { var x = L + pos(i), y = h - 4 - (h - 10) * D.rmsf[i] / mx; if (i) c.lineTo(x, y); else c.moveTo(x, y); }
    c.stroke();
    c.fillStyle = "#222"; c.font = "11px sans-serif"; c.textAlign = "right"; c.textBaseline = "top";
    c.fillText(fmt(mx), L - 4, 2); c.textBaseline = "bottom"; c.fillText("0", L - 4, h - 2);
  })();
  heat.addEventListener("click", function (ev) {
    var r = heat.getBoundingClientRect(), y = (ev.clientY - r.top) * heat.height / r.height - BOX.top;
    if (y < 0 || y >= BOX.size) return;
    select(Math.min(n - 1, Math.floor(y / BOX.size * n)));
  });
  var menu = document.getElementById("residue");
  for (var i = 0; i < n; i++) { var o = document.createElement("option"); o.value = String(i); o.textContent = D.labels[i]; menu.appendChild(o); }
  menu.addEventListener("change", function () { select(parseInt(menu.value, 10)); });
  document.getElementById("reset").addEventListener("click", showRmsf);
  var list = document.getElementById("pockets");
  if (!D.pockets.length) list.outerHTML = "<p class='muted'>none found</p>";
  D.pockets.forEach(function (p, k) {
    var li = document.createElement("li");
    li.textContent = p.name + ": score " + p.score.toFixed(2) + ", opening " + Math.round(100 * p.opening) + "%: " + p.labels.slice(0, 4).join(", ") + (p.labels.length > 4 ? " ..." : "");
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


def page_title(dynamics: Dynamics, source=None, input_name: str | None = None) -> tuple[str, str]:
    """(title, subtitle) of the page.

    The title names the input file (``input_name``, else the source path's name),
    the structure's PDB id when the file has one, the chain(s), the model and the
    size, e.g. ``"1ake.cif · 1AKE chain A · anm dynamics, 214 residues"``; the
    subtitle is the structure's title (``_struct.title`` / TITLE) or "".
    """
    info = describe_source(source)
    name = input_name or info["file"]
    chains = sorted({r.chain for r in dynamics.residues})
    shown = ", ".join(c if c.strip() else "(blank)" for c in chains[:4]) + (" ..." if len(chains) > 4 else "")
    where = " ".join(x for x in (info["entry"], f"chain{'s' if len(chains) > 1 else ''} {shown}") if x)
    parts = [x for x in (name, where) if x]
    parts.append(f"{dynamics.model_name} dynamics, {dynamics.n_residues} residues"
                 + (" (isotropic model)" if dynamics.isotropic else ""))
    return " · ".join(parts), info["title"] or ""


def standalone_html(dynamics: Dynamics, source=None, *, title: str | None = None, input_name: str | None = None,
                    **options) -> str:
    """The page as a string; ``options`` as :func:`page_data` (probability, scale, cmap, opacity,
    n_samples, seed, amplitude, heatmap_range).

    ``title`` replaces the default title (:func:`page_title`: input file, PDB id, chain,
    model); ``input_name`` names the input when ``source`` is not a path (e.g. a
    ``.dynamics.npz``)."""
    data = page_data(dynamics, source, **options)
    auto_title, subtitle = page_title(dynamics, source, input_name)
    title = title or auto_title
    return fill_page(_PAGE, data, {"__TITLE__": title, "__H_TITLE__": title, "__SUBTITLE__": subtitle,
                                   "__RMSF_LABEL__": dynamics.rmsf_label})


def fill_page(template: str, data: dict, texts: dict, *, allow_nan: bool = True) -> str:
    """A standalone page from its template: ``texts`` ({placeholder: plain text}, HTML-escaped)
    and ``__PROB__`` / ``__VERSION__`` / ``__HELPER__`` first, then the embedded 3Dmol.js at
    ``__THREEDMOL__`` and ``data`` as JSON at ``__DATA__`` (shared by the single and the
    comparison page)."""
    from . import __version__

    # JSON inside <script>: escape "</" so no string can close the tag
    payload = json.dumps(data, separators=(",", ":"), allow_nan=allow_nan).replace("</", "<\\/")
    out = template
    fixed = {"__PROB__": f"{data['probability']:g}", "__VERSION__": __version__, "__HELPER__": helper_js()}
    for key, value in [(k, _html.escape(v)) for k, v in texts.items()] + list(fixed.items()):
        out = out.replace(key, value)
    # the big pieces last, so that no placeholder text inside them is replaced
    head, _, tail = out.partition("__THREEDMOL__")
    tail_a, _, tail_b = tail.partition("__DATA__")
    return head + threedmol_js().replace("</script", "<\\/script") + tail_a + payload + tail_b


def write_html(dynamics: Dynamics, path, source=None, **options) -> Path:
    """Write :func:`standalone_html` to ``path`` atomically; returns the path."""
    return atomic_write_text(Path(path), standalone_html(dynamics, source, **options))
