import os
from pathlib import Path

# xdist runs two workers on two cores: one thread each. Oversubscribed numba parallel regions are
# pathological (every prange waits a scheduler slice for its descheduled thread: measured 10-15x slower
# training), so the kernels and the job/poses child processes (which inherit this) run single-threaded.
os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_configure(config):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_collection_modifyitems(config, items):
    """Files with slow tests first. scripts/test.sh hands whole files to the two workers in this order
    (--dist loadfile --no-loadscope-reorder), so a slow file is never the last one left while the other
    worker idles; xdist's own order (by test count) put the few-test, minute-long real-data files last."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file's tests stay together, in order


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The shared real-photo datasets: skipped when HANDFUL_DATASETS is unset, failed when it is
    set but points nowhere."""
    value = os.environ.get("HANDFUL_DATASETS")
    if not value:
        pytest.skip("HANDFUL_DATASETS is not set (real-photo datasets are optional outside CI)")
    root = Path(value)
    if not root.is_dir():
        pytest.fail(f"HANDFUL_DATASETS={value} is set but is not a folder")
    return root


@pytest.fixture
def dataset(datasets_root):
    def get(name: str) -> Path:
        path = datasets_root / name
        if not path.is_dir():
            pytest.fail(f"dataset {name} is missing from HANDFUL_DATASETS={datasets_root}")
        return path

    return get
