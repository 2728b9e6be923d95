/* dynaprot-viz: ellipsoid meshes for 3Dmol.js viewers (MIT). */
(function (root) {
  "use strict";
  function bytes(s) {
    var b = atob(s), u = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);
    return u;
  }
  function f32(s) { return new Float32Array(bytes(s).buffer); }
  function u32(s) { return new Uint32Array(bytes(s).buffer); }
  /* spec: vertices, normals (b64 float32, 3 per vertex), faces (b64 uint32, 3 per face),
     colors (b64 float32, 3 per ellipsoid), nVertices, nFaces (per ellipsoid), opacity */
  function addEllipsoids(viewer, spec) {
    var V = f32(spec.vertices), N = f32(spec.normals), F = u32(spec.faces), C = f32(spec.colors);
    var nv = spec.nVertices, nf = spec.nFaces, m = C.length / 3;
    var per = Math.max(1, Math.floor(64000 / nv)), shapes = [];
    for (var a = 0; a < m; a += per) {
      var b = Math.min(m, a + per), vertexArr = [], normalArr = [], colors = [], faceArr = [];
      for (var i = a * nv; i < b * nv; i++) {
        var e = Math.floor(i / nv);
        vertexArr.push({x: V[3 * i], y: V[3 * i + 1], z: V[3 * i + 2]});
        normalArr.push({x: N[3 * i], y: N[3 * i + 1], z: N[3 * i + 2]});
        colors.push((Math.round(255 * C[3 * e]) << 16) | (Math.round(255 * C[3 * e + 1]) << 8) |
                    Math.round(255 * C[3 * e + 2]));
      }
      var off = a * nv;
      for (var k = a * nf * 3; k < b * nf * 3; k++) faceArr.push(F[k] - off);
      /* 3Dmol applies shape.color after building the mesh: a per-vertex array of 0xRRGGBB numbers
         is the form that survives (colorArr alone is overwritten by the default colour) */
      shapes.push(viewer.addCustom({vertexArr: vertexArr, normalArr: normalArr, faceArr: faceArr,
                                    color: colors, opacity: spec.opacity}));
    }
    return shapes;
  }
  root.dynaprotViz = {addEllipsoids: addEllipsoids, f32: f32, bytes: bytes};
})(typeof window !== "undefined" ? window : this);
