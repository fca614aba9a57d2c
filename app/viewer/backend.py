"""Select vispy's PySide6 app and the full-OpenGL ("gl+", PyOpenGL) backend (float textures, texelFetch)."""

from __future__ import annotations

import logging

import vispy


def ensure_backend() -> None:
    """Idempotent; raises RuntimeError naming the conflict when vispy was already set up otherwise."""
    from vispy.app import use_app
    from vispy.gloo import gl

    current = gl.current_backend.__name__.rsplit(".", 1)[-1] if gl.current_backend else None
    if current != "glplus":
        vispy.use(gl="gl+")
    app = use_app("pyside6")
    if app.backend_name.lower() != "pyside6":
        raise RuntimeError(f"the splat viewer needs vispy's pyside6 app, but vispy already uses {app.backend_name}")


class _IgnoreBuiltinVertexId(logging.Filter):
    """Mesa lists gl_VertexID among a program's active attributes and vispy then warns that it was
    never set; it is a GL built-in, so that warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "gl_VertexID" not in record.getMessage()


logging.getLogger("vispy").addFilter(_IgnoreBuiltinVertexId())
