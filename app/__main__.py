"""``python -m app`` / ``handful [FILES...]``: the desktop app.

``handful --screenshot OUT.png [--size WxH] FILE`` opens FILE, waits until the viewer has drawn it,
saves the window as a PNG and exits (exit code 2 with a message on a bad file).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import APPLICATION, ORGANIZATION, VERSION

SCREENSHOT_TIMEOUT_MS = 60_000


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m or not (100 <= int(m.group(1)) <= 16384 and 100 <= int(m.group(2)) <= 16384):
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 1600x1000, 100-16384 each)")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handful", description="Handful: turn a handful of photos into a 3D Gaussian Splatting scene.")
    parser.add_argument("files", nargs="*", type=Path,
                        help="photos, folders or videos to reconstruct, or a .ply/.spz/.splat scene to open")
    parser.add_argument("--screenshot", metavar="OUT.png", type=Path,
                        help="open FILE, save the window as a PNG once the scene is drawn, and exit")
    parser.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                        help="window size, e.g. 1600x1000 (default: the last size, or 1400x860)")
    parser.add_argument("--version", action="version", version=f"Handful {VERSION}")
    return parser


def make_application(argv: list[str]):
    from PySide6.QtWidgets import QApplication

    from .theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(VERSION)
    app.setDesktopFileName("handful")
    apply_theme(app)
    return app


def take_screenshot(window, scene_file: Path, out: Path, timeout_ms: int = SCREENSHOT_TIMEOUT_MS) -> int:
    """Open ``scene_file``, wait for the viewer's ``drawn`` signal, save ``out``; returns an exit code."""
    from PySide6.QtCore import QEventLoop, QTimer

    from engine.errors import HandfulError

    loop = QEventLoop()
    state = {"drawn": False}

    def on_drawn():
        if state["drawn"] or window.session.scene is None:
            return  # a frame of the empty view, before the scene was opened
        state["drawn"] = True
        # one more turn of the event loop so the frame that was drawn is the one grabbed
        QTimer.singleShot(50, loop.quit)

    window.viewer.drawn.connect(on_drawn)  # before opening: a view may draw while set_scene runs
    if not window.open_scene(scene_file):
        print(f"error: {window.banner.label.text()}", file=sys.stderr)
        return 2
    QTimer.singleShot(timeout_ms, loop.quit)
    window.viewer.update()
    if not state["drawn"]:
        loop.exec()
    if not state["drawn"]:
        print(f"error: the viewer did not draw {scene_file} within {timeout_ms // 1000} s "
              "(is OpenGL available? try running under xvfb-run)", file=sys.stderr)
        return 1
    if hasattr(window.viewer, "wait_until_sorted"):  # the splat viewer sorts on a worker after drawing
        window.viewer.wait_until_sorted(timeout_ms / 1000)
    try:
        window.save_screenshot(out)
    except HandfulError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # the job process of a frozen (PyInstaller) build
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.screenshot is not None and len(args.files) != 1:
        print("error: --screenshot needs exactly one scene FILE (.ply, .spz or .splat)", file=sys.stderr)
        return 2
    app = make_application([])
    from .main_window import MainWindow

    window = MainWindow()
    if args.size:
        window.resize(*args.size)
    window.show()
    if args.screenshot is not None:
        code = take_screenshot(window, args.files[0], args.screenshot)
        window.close()
        return code
    if args.files:
        window.handle_paths(args.files)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
