"""Does a solved camera set agree with the matches it was made from? (runs inside the pose worker)

A mapper that reaches every photo is not necessarily right: with repeated structure (a façade's
windows) or photos that share nothing, matches that are wrong but agree with each other place a
photo confidently in the wrong spot, and with low reprojection error, since the wrong points are
simply the ones that were kept. What such a solution cannot do is explain the *other* verified
matches: each photo pair's matches, found and verified on that pair alone, are triangulated with
the solved cameras, and a match agrees when it lands in front of both cameras and reprojects within
a few pixels in both photos. A right solution explains most verified matches of every pair it
relies on; a wrong one leaves a pair (or a loop of pairs) it contradicts.

Written by hand because pycolmap reports only the points it kept, not how the matches it dropped
disagree; the linear triangulation is the standard DLT, batched with numpy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

# A pair "supports" the solution when at least this many of its verified matches, and this
# fraction of them, agree with the solved cameras. Measured on the benchmark sets (ALIKED, at the
# verification threshold): every pair of rightly placed photos agreed with 94-100% of its matches;
# castle photos placed from repeated windows agreed with 53-68% of their matches with the photo
# that placed them, and 27-55% with another.
MIN_AGREEING = 15
MIN_AGREEING_FRACTION = 0.8
# A pair with this many verified matches that agrees with less than CONTRADICTION_FRACTION of them
# contradicts the solution (fewer matches can be chance: a pair that shares little).
CONTRADICTING_MATCHES = 30
CONTRADICTION_FRACTION = 0.5


def triangulate(P1: np.ndarray, P2: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """(N,3) points from normalised image coordinates ``x1``, ``x2`` (N,2) seen by the (3,4)
    world-to-camera matrices ``P1``, ``P2`` (linear triangulation, smallest singular vector)."""
    rows = np.stack([
        x1[:, :1] * P1[2] - P1[0], x1[:, 1:] * P1[2] - P1[1],
        x2[:, :1] * P2[2] - P2[0], x2[:, 1:] * P2[2] - P2[1],
    ], axis=1)  # (N, 4, 4)
    _, _, vt = np.linalg.svd(rows)
    h = vt[:, -1]
    w = h[:, 3:]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return h[:, :3] / w


def match_agreement(P1, P2, x1, x2, focal1: float, focal2: float, max_error_px: float) -> dict:
    """How many matches (normalised coordinates) the two cameras explain: triangulated in front
    of both, reprojected within ``max_error_px`` (pixels: normalised error x focal) in both photos.
    Also the median triangulation angle (degrees) of the agreeing matches."""
    x1, x2 = np.asarray(x1, np.float64).reshape(-1, 2), np.asarray(x2, np.float64).reshape(-1, 2)
    if len(x1) == 0:
        return {"matches": 0, "agreeing": 0, "fraction": 0.0, "tri_angle_deg": 0.0}
    X = triangulate(P1, P2, x1, x2)
    Xh = np.c_[X, np.ones(len(X))]
    c1, c2 = Xh @ P1.T, Xh @ P2.T
    front = (c1[:, 2] > 0) & (c2[:, 2] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.linalg.norm(c1[:, :2] / c1[:, 2:] - x1, axis=1) * focal1
        e2 = np.linalg.norm(c2[:, :2] / c2[:, 2:] - x2, axis=1) * focal2
    ok = front & (e1 <= max_error_px) & (e2 <= max_error_px)
    angle = 0.0
    if ok.any():
        centre1 = -P1[:, :3].T @ P1[:, 3]
        centre2 = -P2[:, :3].T @ P2[:, 3]
        r1, r2 = X[ok] - centre1, X[ok] - centre2
        cos = np.sum(r1 * r2, 1) / (np.linalg.norm(r1, axis=1) * np.linalg.norm(r2, axis=1))
        angle = float(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1)))))
    agreeing = int(ok.sum())
    return {"matches": len(x1), "agreeing": agreeing, "fraction": agreeing / len(x1), "tri_angle_deg": angle}


@dataclass
class Verdict:
    """The check of one solution: per pair of placed photos, and the photos it places reliably."""

    pairs: dict[tuple[str, str], dict] = field(default_factory=dict)
    supported: list[str] = field(default_factory=list)  # placed and backed by a supporting pair
    doubtful: dict[str, str] = field(default_factory=dict)  # placed, but not reliably: name -> why
    score: float = 0.0  # agreeing verified matches over the supporting pairs

    def to_dict(self) -> dict:
        return {"score": self.score, "supported": self.supported, "doubtful": self.doubtful,
                "pairs": {f"{a}|{b}": v for (a, b), v in self.pairs.items()}}


def judge(poses: dict[str, np.ndarray], matches: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
          focals: dict[str, float], max_error_px: float) -> Verdict:
    """``poses``: name -> (3,4) world-to-camera; ``matches``: (a, b) -> verified matches as
    normalised coordinates in a and in b; ``focals``: name -> focal in pixels.

    A pair supports the solution when enough of its matches agree with it; a pair contradicts it
    when many of its verified matches disagree. A contradiction says that one of its two photos is
    misplaced *or* that the pair's matches are wrong: repeated texture gives pairs verified but
    wrong matches (the bundled sample, a right 24-photo solution: 10 such pairs, 0-18 of 30-48
    matches agreeing). Which is it? A photo's agreement with the pair it was placed from proves
    nothing (the mapper placed it to fit those matches: castle_3's far-side photo, placed from a
    look-alike wall, agrees with 60 of that pair's 65 matches), so a photo's *independent* support
    is what its other supporting pairs agree: the agreeing matches of all but its strongest one.
    A contradiction weighs against the photo of the two with less independent support (then less
    support), and the photo is left out when one such pair disagrees with more matches than its
    independent support holds. One pair, not the sum: wrong matches point to as many wrong places
    as there are wrong pairs and do not back each other, while the supporting pairs all confirm
    the one place. So a photo confirmed by a chain of pairs keeps its place against wrong pairs
    (the sample: independent support 106-272 matches, the largest contradiction 48), and one
    backed only by the pair that placed it does not; photos misplaced together, each backed only
    by the other, go together. Of the groups that supporting pairs link among the photos left, the
    one with the most photos (then agreeing matches) is kept: its photos are supported."""
    verdict = Verdict()
    names = sorted(poses)
    for a, b in itertools.combinations(names, 2):
        key = (a, b) if (a, b) in matches else (b, a)
        if key not in matches:
            continue
        xa, xb = matches[key]
        stats = match_agreement(poses[key[0]], poses[key[1]], xa, xb, focals[key[0]], focals[key[1]], max_error_px)
        stats["supports"] = stats["agreeing"] >= MIN_AGREEING and stats["fraction"] >= MIN_AGREEING_FRACTION
        stats["contradicts"] = stats["matches"] >= CONTRADICTING_MATCHES and stats["fraction"] < CONTRADICTION_FRACTION
        verdict.pairs[key] = stats
    in_play = set(names)
    _, independent, against = _weigh(verdict.pairs, in_play)
    for n in names:
        if against[n] > independent[n]:
            verdict.doubtful[n] = _disagreement(n, verdict.pairs, in_play)
    in_play -= set(verdict.doubtful)
    # The photos linked by supporting pairs form groups placed consistently among themselves; two
    # groups with no supporting pair between them may be placed wrongly relative to each other, so
    # only one is kept: the one with the most photos, then the most agreeing matches (as attempts
    # are chosen).
    groups = _supported_groups(verdict.pairs, in_play)
    if groups:
        verdict.supported = sorted(max(groups, key=lambda g: (len(g), _agreeing(verdict.pairs, g), sorted(g))))
    for n in names:
        if n not in verdict.supported and n not in verdict.doubtful:
            verdict.doubtful[n] = (_disagreement(n, verdict.pairs, verdict.supported)
                                   or "no photo pair confirms where it was placed")
    verdict.score = float(_agreeing(verdict.pairs, set(verdict.supported)))
    return verdict


def _agreeing(pairs: dict, group) -> int:
    """Agreeing matches of the supporting pairs within ``group``."""
    return sum(s["agreeing"] for (a, b), s in pairs.items() if s["supports"] and a in group and b in group)


def _supported_groups(pairs: dict, in_play: set) -> list[set]:
    """Photos in play joined by supporting pairs (groups of two or more)."""
    group = {n: {n} for n in in_play}
    for (a, b), stats in pairs.items():
        if stats["supports"] and a in in_play and b in in_play and group[a] is not group[b]:
            merged = group[a] | group[b]
            for n in merged:
                group[n] = merged
    unique = {id(g): g for g in group.values() if len(g) > 1}
    return list(unique.values())


def _disagreement(name: str, pairs: dict, others) -> str | None:
    """The photo's contradicting pair with one of ``others`` that disagrees most, as a reason."""
    against = [((a, b), s) for (a, b), s in pairs.items()
               if s["contradicts"] and name in (a, b) and (b if name == a else a) in others]
    if not against:
        return None
    (a, b), stats = max(against, key=lambda item: (item[1]["matches"] - item[1]["agreeing"], item[0]))
    return (f"its matches with {b if name == a else a} disagree with where it was placed "
            f"({stats['agreeing']} of {stats['matches']} agree)")


def _weigh(pairs: dict, in_play: set) -> tuple[dict, dict, dict]:
    """Per photo in play (pairs with another photo in play only): the agreeing matches of its
    supporting pairs, the same less its strongest pair (its independent support), and the most
    disagreeing matches of one contradicting pair where it is the end with less independent
    support, then less support."""
    backing = {n: [] for n in in_play}
    for (a, b), stats in pairs.items():
        if stats["supports"] and a in in_play and b in in_play:
            backing[a].append(stats["agreeing"])
            backing[b].append(stats["agreeing"])
    strength = {n: sum(v) for n, v in backing.items()}
    independent = {n: sum(v) - max(v, default=0) for n, v in backing.items()}
    against = dict.fromkeys(in_play, 0)
    for (a, b), stats in pairs.items():
        if stats["contradicts"] and a in in_play and b in in_play:
            weaker = min((a, b), key=lambda n: (independent[n], strength[n], n))
            against[weaker] = max(against[weaker], stats["matches"] - stats["agreeing"])
    return strength, independent, against


def judge_reconstruction(rec, db_path, max_error_px: float) -> Verdict:
    """``judge`` for a pycolmap reconstruction and the database of matches it was made from."""
    import pycolmap

    images = {rec.images[i].name: rec.images[i] for i in rec.reg_image_ids()}
    by_id = {image.image_id: name for name, image in images.items()}
    poses = {name: image.cam_from_world().matrix() for name, image in images.items()}
    focals = {name: float(rec.cameras[image.camera_id].mean_focal_length()) for name, image in images.items()}
    db = pycolmap.Database.open(str(db_path))
    try:
        normalised = {}
        for image_id, name in by_id.items():
            camera = rec.cameras[images[name].camera_id]
            normalised[name] = np.asarray(camera.cam_from_img(db.read_keypoints(image_id)[:, :2].astype(np.float64)))
        pair_ids, geometries = db.read_two_view_geometries()
    finally:
        db.close()
    matches = {}
    for pair_id, geometry in zip(pair_ids, geometries):
        id1, id2 = (int(i) for i in pycolmap.pair_id_to_image_pair(int(pair_id)))
        inliers = np.asarray(geometry.inlier_matches)
        if id1 in by_id and id2 in by_id and len(inliers):
            a, b = by_id[id1], by_id[id2]
            matches[(a, b)] = (normalised[a][inliers[:, 0]], normalised[b][inliers[:, 1]])
    return judge(poses, matches, focals, max_error_px)
