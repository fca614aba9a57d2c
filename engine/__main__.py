"""Command line: ``python -m engine`` / ``handful-cli``.

Subcommands live in ``engine/commands/<name>.py``; each module defines ``register(subparsers)``
which adds its parser and sets ``func`` (a callable taking the parsed args, returning an exit code).
Errors a person can act on (``HandfulError``) print one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

from .errors import HandfulError

COMMANDS = ("info", "convert", "compress", "reconstruct", "group")
# What every command imports (import names); looked up, not imported, so the check costs nothing.
REQUIRED_MODULES = ("numpy", "torch", "scipy", "numba", "cv2", "plyfile", "zstandard", "PIL")

EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected internal error (a bug: please report it with the log)
  2    bad input or a failed stage (the message names the file and what to do)
  130  cancelled (Ctrl+C); finished stages are kept in the output folder
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handful-cli",
        description="Handful engine: inspect, convert, compress and reconstruct 3D Gaussian splat scenes.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def missing_dependencies_message(missing: str) -> str:
    """What to do when this Python lacks Handful's dependencies (usually: not the project's .venv)."""
    root = Path(__file__).resolve().parents[1]
    setup = root / "scripts" / "setup.sh"
    if not setup.is_file():  # an installed package, not a checkout
        return (f"error: {sys.executable} cannot import {missing!r}, which Handful needs: "
                "install Handful with pip into this Python's environment")
    venv = root / ".venv" / "bin"
    return (f"error: this Python ({sys.executable}) cannot import {missing!r}, which Handful needs. Set up "
            f"once with `bash {setup}`, then run `{venv / 'python'} -m engine ...` (or `{venv / 'handful-cli'} ...`)")


def main(argv: list[str] | None = None) -> int:
    missing = next((m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None), None)
    if missing is not None:
        print(missing_dependencies_message(missing), file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HandfulError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
