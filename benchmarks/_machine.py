"""Machine description and table printing shared by every benchmark script.

Benchmarks print the machine they ran on so that figures from different machines are never compared
by accident.
"""

from __future__ import annotations

import os
import platform
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception:  # a benchmark must still print its table without optional packages
        return "not installed"
    return str(getattr(module, "__version__", "unknown"))


def machine_info() -> dict:
    """CPU model, core counts, Python/torch/numba versions and the GPU when there is one."""
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": _version("torch"),
        "numba": _version("numba"),
        "numpy": _version("numpy"),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:
        info["gpu"] = "unknown"
    return info


def _cell(value) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) >= 100 else f"{value:.4g}"
        return f"{value:.3e}"
    return "" if value is None else str(value)


def print_table(title: str, header: list[str], rows: list[list], file=None) -> None:
    """A plain-text table with right-aligned columns, preceded by the machine description."""
    out = file or sys.stdout
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        for i, c in enumerate(row):
            if i < len(widths):
                widths[i] = max(widths[i], len(c))
            else:
                widths.append(len(c))
    info = machine_info()
    print(f"== {title}", file=out)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), file=out)
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)), file=out)
    out.flush()


__all__ = ["machine_info", "print_table"]
