"""Renderers of residue dynamics: a :class:`Scene` (plain state) drawn by py3Dmol or nglview.

py3Dmol and nglview are optional (``pip install 'dynaprot-viz[jupyter]'``) and
imported only when a renderer is called.
"""

from .scene import Legend, Scene, build_scene, colormap_rgba, ensemble_text, rgba_to_hex, structure_text

__all__ = [
    "Legend",
    "Scene",
    "build_scene",
    "colormap_rgba",
    "ensemble_text",
    "render",
    "rgba_to_hex",
    "structure_text",
    "BACKENDS",
]

BACKENDS = ("py3dmol", "nglview")


def render(scene: Scene, backend: str = "py3dmol", **options):
    """Draw ``scene`` with ``backend`` (``"py3dmol"`` or ``"nglview"``)."""
    from ..core.errors import InputError

    if backend == "py3dmol":
        from .threedmol import render_py3dmol

        return render_py3dmol(scene, **options)
    if backend == "nglview":
        from .ngl import render_nglview

        return render_nglview(scene, **options)
    raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
