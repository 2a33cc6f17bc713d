"""Speed and memory of the re-id evaluation on Market-1501-sized features.

    .venv/bin/python benchmarks/eval_speed.py [--repeats 3] [--out benchmarks/results/eval_speed.json]

Random features in Market-1501's shape and label structure: 3,368 queries and
19,732 gallery images (750 test identities over 6 cameras, one query per
identity and camera it appears in, 2,798 pid-0 distractors, 3,819 pid -1
junk), 1,024 dimensions, L2-normalised; a feature is its identity's centroid
plus a camera shift plus noise, sized so that Rank@1 / mAP look like a real
model's. Timed, on the same features and in the same run:

(a) the query x gallery matrix product alone (the floor of any evaluation),
    over the whole gallery and over the gallery without junk;
(b) ``dgnet.eval.evaluate_features``: distances, ranking, CMC and mAP;
(c) the common per-query implementation: the full distance matrix, then for
    every query ``np.argsort`` of its row, junk and same-camera removal, CMC
    and AP (written here, independent of dgnet).

It checks that (b) and (c) agree, and writes the figures to JSON. Memory: the
peak resident-set growth during each step (psutil sampling when installed,
else none) and the analytic size of the largest temporaries.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dgnet.eval.ranking import auto_chunk, evaluate_features_detailed  # noqa: E402
from dgnet.io import write_json  # noqa: E402

NUM_IDS, CAMERAS, NUM_QUERY = 750, 6, 3368
NUM_ID_GALLERY, NUM_DISTRACTORS, NUM_JUNK = 13115, 2798, 3819  # 15,913 + 3,819 = 19,732
DIM = 1024
MIB = 2**20


def market_like(seed: int = 0, noise: float = 2.4, camera_shift: float = 0.5):
    """Features and labels with Market-1501's sizes and structure."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    # cameras of each identity: at least 2, at most 6, 3,368 (identity, camera) pairs in all
    per_id = np.full(NUM_IDS, 2)
    while per_id.sum() < NUM_QUERY:
        i = rng.integers(NUM_IDS)
        if per_id[i] < CAMERAS:
            per_id[i] += 1
    q_pids, q_cams = [], []
    for pid, n in enumerate(per_id, start=1):
        cams = np.sort(rng.choice(CAMERAS, size=n, replace=False)) + 1
        q_pids += [pid] * n
        q_cams += cams.tolist()
    q_pids, q_cams = np.array(q_pids), np.array(q_cams)
    # gallery: at least one image per (identity, camera) of a query, the rest spread at random
    per_pair = 1 + rng.multinomial(NUM_ID_GALLERY - NUM_QUERY, np.full(NUM_QUERY, 1 / NUM_QUERY))
    g_pids = np.concatenate([
        np.repeat(q_pids, per_pair), np.zeros(NUM_DISTRACTORS, int), np.full(NUM_JUNK, -1),
    ])
    g_cams = np.concatenate([
        np.repeat(q_cams, per_pair), rng.integers(1, CAMERAS + 1, NUM_DISTRACTORS + NUM_JUNK),
    ])
    shuffle = rng.permutation(len(g_pids))
    g_pids, g_cams = g_pids[shuffle], g_cams[shuffle]

    centroids = torch.nn.functional.normalize(torch.randn(NUM_IDS + 1, DIM, generator=gen), dim=1)
    shifts = torch.nn.functional.normalize(torch.randn(CAMERAS + 1, DIM, generator=gen), dim=1)

    def features(pids: np.ndarray, cams: np.ndarray) -> torch.Tensor:
        pid = torch.as_tensor(pids)
        centre = centroids[pid.clamp(min=0)]
        # distractors and junk: someone else's look, far off
        other = torch.as_tensor(pids <= 0)
        random_id = torch.randint(1, NUM_IDS + 1, (len(pids),), generator=gen)
        centre = torch.where(other[:, None], 0.5 * centroids[random_id], centre)
        f = centre + camera_shift * shifts[torch.as_tensor(cams)]
        f = f + noise * torch.randn(len(pids), DIM, generator=gen) / DIM**0.5
        return torch.nn.functional.normalize(f, dim=1)

    return features(q_pids, q_cams), features(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def per_query_numpy(q, g, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """The usual field code: full distance matrix, then one argsort per query."""
    dist = (-(q @ g.T)).numpy()  # (Q, G); -q.g ranks like 1 - q.g, without its rounding
    cmc = np.zeros(max_rank)
    aps = np.full(len(q_pids), np.nan)
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind="stable")
        junk = (g_pids[order] == -1) | ((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        good = g_pids[order][~junk] == q_pids[i]
        hits = np.flatnonzero(good)
        if len(hits) == 0:
            continue
        cmc[hits[0]:] += 1
        n = np.arange(1, len(hits) + 1)
        precision = n / (hits + 1)
        old = np.where(hits == 0, 1.0, (n - 1) / np.maximum(hits, 1))
        aps[i] = np.mean((old + precision) / 2)
    valid = ~np.isnan(aps)
    return cmc / valid.sum(), float(aps[valid].mean()), aps


class PeakRSS:
    """Peak resident-set growth while the block runs (psutil sampling every 2 ms)."""

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            self.process = None
        else:
            self.process = psutil.Process()
        self.peak_mib: float | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.process.memory_info().rss)
            self._stop.wait(0.002)

    def __enter__(self) -> "PeakRSS":
        if self.process is not None:
            self._base = self._peak = self.process.memory_info().rss
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self.process.memory_info().rss)
            self.peak_mib = (self._peak - self._base) / MIB


def timed(fn, repeats: int):
    fn()  # warm-up
    times, peaks, result = [], [], None
    for _ in range(repeats):
        with PeakRSS() as mem:
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        peaks.append(mem.peak_mib)
    peak = None if peaks[0] is None else max(peaks)
    return result, times, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/eval_speed.json"))
    args = parser.parse_args(argv)

    q, g, q_pids, g_pids, q_cams, g_cams = market_like()
    kept = torch.as_tensor(g_pids != -1)
    g_kept = g[kept]
    n_q, n_g, n_kept = q.shape[0], g.shape[0], g_kept.shape[0]
    print(f"{n_q} queries x {n_g} gallery ({n_kept} without junk) x {q.shape[1]} dims, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    _, t_prod_all, m_prod_all = timed(lambda: q @ g.T, args.repeats)
    _, t_prod_kept, m_prod_kept = timed(lambda: q @ g_kept.T, args.repeats)
    ours, t_ours, m_ours = timed(
        lambda: evaluate_features_detailed(q, g, q_pids, g_pids, q_cams, g_cams, 50, "trapezoid"),
        args.repeats,
    )
    ref, t_ref, m_ref = timed(lambda: per_query_numpy(q, g, q_pids, g_pids, q_cams, g_cams), 1)
    ref_cmc, ref_map, ref_aps = ref
    same = bool(
        np.allclose(ours.cmc, ref_cmc, rtol=0, atol=1e-12)
        and np.allclose(ours.mAP, ref_map, rtol=0, atol=1e-9)
        and np.allclose(ours.ap_per_query, ref_aps, rtol=0, atol=1e-9, equal_nan=True)
    )

    prod_all, prod_kept = statistics.median(t_prod_all), statistics.median(t_prod_kept)
    total, per_query = statistics.median(t_ours), t_ref[0]
    chunk = auto_chunk(n_q, n_kept)
    result = {
        "data": {"queries": n_q, "gallery": n_g, "gallery_without_junk": n_kept, "dims": q.shape[1],
                 "rank1": round(float(ours.cmc[0]), 4), "mAP": round(ours.mAP, 4)},
        "seconds": {
            "product_whole_gallery": round(prod_all, 4),
            "product_without_junk": round(prod_kept, 4),
            "ours_total": round(total, 4),
            "per_query_numpy": round(per_query, 4),
            "all_runs": {"product_whole_gallery": t_prod_all, "product_without_junk": t_prod_kept,
                         "ours_total": t_ours, "per_query_numpy": t_ref},
        },
        "ratios": {
            "ours_over_product_whole_gallery": round(total / prod_all, 3),
            "ours_over_product_without_junk": round(total / prod_kept, 3),
            "per_query_over_ours": round(per_query / total, 1),
        },
        "memory_mib": {
            "peak_rss_growth": {"product_whole_gallery": m_prod_all, "product_without_junk": m_prod_kept,
                                "ours_total": m_ours, "per_query_numpy": m_ref},
            "full_distance_matrix": round(n_q * n_g * 4 / MIB, 1),
            "ours_chunk_queries": chunk,
            "ours_score_block": round(chunk * n_kept * 4 / MIB, 1),
            "ru_maxrss_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "same_numbers": same,
        "targets": {"ours_over_product_le_1.6": total / prod_kept <= 1.6,
                    "per_query_over_ours_ge_10": per_query / total >= 10},
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "machine": platform.machine(),
                        "processor": platform.processor()},
        "repeats": args.repeats,
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("data", "ratios", "same_numbers", "targets")}, indent=1))
    print(f"product {prod_all:.3f} s (without junk {prod_kept:.3f} s), ours {total:.3f} s, "
          f"per-query {per_query:.2f} s; peak RSS growth ours {m_ours} MiB, per-query {m_ref} MiB")
    print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
