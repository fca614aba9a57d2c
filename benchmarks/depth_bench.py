"""Multi-view depth prior on real photos with known cameras: accuracy against a reference
triangulation and seconds per view, for each feature matcher.

    HANDFUL_DATASETS=/path/to/datasets .venv/bin/python benchmarks/depth_bench.py \
        [--features sift,aliked,disk] [case ...]

Cases: ``fern`` (llff_fern, the LLFF 3-view split, 252 px working size) and ``fountain``
(strecha_fountain_p11, 3 photos spread over it, 384 px). The reference is pycolmap SIFT matches
over more photos, triangulated with the dataset's cameras (``engine.priors.reference``); per view it
prints the median relative depth error, the share of reference points off by more than 5 %, the
share of them the map covers confidently (>= 0.5), and seconds per view. ``time_vs_sift`` is the
ratio to the SIFT run of the same case, same moment (SIFT is the baseline: no learned model).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.priors.depth import MultiViewDepth  # noqa: E402
from engine.priors.reference import dataset_names, depth_agreement, llff_split, load_views, reference_points  # noqa: E402


def _fern(names):
    train, held_out = llff_split(names, 3)
    return train, sorted(set(train) | set(held_out) | set(names[4::8])), 252


def _fountain(names):
    train = [names[i] for i in (0, len(names) // 2, len(names) - 1)]
    return train, names, 384


CASES = {"fern": ("llff_fern", _fern), "fountain": ("strecha_fountain_p11", _fountain)}
HEADER = ["case", "features", "view", "median_rel_%", "over_5%_%", "covered_%", "compared", "s_per_view", "time_vs_sift"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: {', '.join(CASES)}")
    parser.add_argument("--features", default="sift,aliked,disk", help="sift first: it is the time baseline")
    args = parser.parse_args(argv)
    root = os.environ.get("HANDFUL_DATASETS")
    if not root:
        print("set HANDFUL_DATASETS to the datasets folder", file=sys.stderr)
        return 2
    rows = []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for case in args.cases or list(CASES):
        folder_name, choose = CASES[case]
        folder = Path(root) / folder_name
        train, reference_names, long_edge = choose(dataset_names(folder))
        with tempfile.TemporaryDirectory(prefix="depth_bench_") as tmp:
            reference = reference_points(folder, reference_names, tmp)
        cams, images = load_views(folder, train)
        sift_s = None
        for features in args.features.split(","):
            prior = MultiViewDepth(long_edge=long_edge, features=features)
            start = time.perf_counter()
            maps = prior.estimate(cams, images)
            per_view = (time.perf_counter() - start) / len(maps)
            if features == "sift":
                sift_s = per_view
            for name, m in zip(train, maps):
                a = depth_agreement(m, reference[name])
                rows.append([case, features, name, round(100 * a.median_relative_error, 2),
                             round(100 * a.share_over_5pct, 1), round(100 * a.coverage, 1), a.compared,
                             round(per_view, 2), round(per_view / sift_s, 2) if sift_s else None])
                print("  ".join(str(v) for v in rows[-1]) + f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print_table("multi-view depth prior vs a reference triangulation (3 photos, known cameras)", HEADER, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
