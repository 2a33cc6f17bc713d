"""Speed and memory of the re-id evaluation on Market-1501-sized features.

    python -m benchmarks.eval_speed [--repeats 3] [--out benchmarks/results/eval_speed.json]

Random features in Market-1501's shape and label structure: 3,368 queries and
19,732 gallery images (750 test identities over 6 cameras, one query per
identity and camera it appears in, 2,798 pid-0 distractors, 3,819 pid -1
junk), 1,024 dimensions, L2-normalised; a feature is its identity's centroid
plus a camera shift plus noise, sized so that Rank@1 / mAP look like a real
model's. Timed, on the same features and in the same run:

(a) the query x gallery matrix product alone (the floor of any evaluation),
    over the whole gallery and over the gallery without junk;
(b) ``dgnet.eval.evaluate_features``: distances, ranking, CMC, mAP and mINP;
(c) per-query implementations written here, independent of dgnet:
    ``per_query_field``, the reference evaluation's steps (per query a gallery
    x query product, ``np.argsort``, good/junk index sets, membership masks, a
    Python loop for AP), and ``per_query_precomputed``, a tighter variant (one
    full distance matrix, then per query a stable argsort of its row and
    vectorised masks and AP).

Steps are interleaved over ``--repeats`` rounds after a warm-up (the per-query
ones run once); the best and the median wall times are reported, the process
CPU times, and the CPU times of (a) and (b) on one thread (the work itself,
free of the thread-barrier stalls that a busy shared machine causes). It checks that
(b) and (c) give the same CMC, mAP, mINP and per-query AP, and writes the figures to
JSON. Memory: the peak resident-set growth during each step (psutil sampling
every 2 ms, when installed) and the analytic size of the largest temporaries.
"""

from __future__ import annotations

import argparse
import json
import os
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

from dgnet.eval.ranking import auto_chunk, evaluate_features_detailed
from dgnet.io import write_json

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


def per_query_field(q, g, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """The field's per-query code, step for step as in the reference evaluation
    (Person_reID_baseline / DG-Net ``evaluate_gpu.py``): per query one gallery x
    query product, an argsort of the scores, good and junk index sets, membership
    masks, and a Python loop over the hits for the (trapezoid) AP."""
    cmc = np.zeros(max_rank)
    aps = np.full(len(q_pids), np.nan)
    inps = np.full(len(q_pids), np.nan)
    for i in range(len(q_pids)):
        score = (g @ q[i]).numpy()  # (G,)
        index = np.argsort(score)[::-1]  # unstable: ties in any order (see the agreement check)
        query_index = np.argwhere(g_pids == q_pids[i]).flatten()
        camera_index = np.argwhere(g_cams == q_cams[i]).flatten()
        good_index = np.setdiff1d(query_index, camera_index, assume_unique=True)
        junk_index = np.append(np.intersect1d(query_index, camera_index),
                               np.argwhere(g_pids == -1).flatten())
        if good_index.size == 0:
            continue
        index = index[np.isin(index, junk_index, invert=True)]
        rows_good = np.argwhere(np.isin(index, good_index)).flatten()
        cmc[rows_good[0]:] += 1
        ap = 0.0
        for n in range(len(good_index)):
            precision = (n + 1) / (rows_good[n] + 1)
            old_precision = n / rows_good[n] if rows_good[n] != 0 else 1.0
            ap += (old_precision + precision) / 2 / len(good_index)
        aps[i] = ap
        inps[i] = len(good_index) / (rows_good[-1] + 1)  # INP: matches / rank of the last one
    valid = ~np.isnan(aps)
    return cmc / valid.sum(), float(aps[valid].mean()), aps, float(inps[valid].mean())


def per_query_precomputed(q, g, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """A tighter per-query version: the full distance matrix in one product, then
    per query an argsort of its row and vectorised masks and AP."""
    dist = (-(q @ g.T)).numpy()  # (Q, G); -q.g ranks like 1 - q.g, without its rounding
    cmc = np.zeros(max_rank)
    aps = np.full(len(q_pids), np.nan)
    inps = np.full(len(q_pids), np.nan)
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
        inps[i] = len(hits) / (hits[-1] + 1)
    valid = ~np.isnan(aps)
    return cmc / valid.sum(), float(aps[valid].mean()), aps, float(inps[valid].mean())


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


def timed(steps: dict, repeats: int) -> dict:
    """Run the steps in turn, ``repeats`` rounds (after a warm-up round): times, peak memory."""
    out = {name: {"result": None, "seconds": [], "cpu_seconds": [], "peak_mib": None} for name in steps}
    for name, fn in steps.items():
        fn()  # warm-up
    for _ in range(repeats):  # interleaved, so that a burst of load hits every step alike
        for name, fn in steps.items():
            with PeakRSS() as mem:
                start, cpu = time.perf_counter(), time.process_time()
                out[name]["result"] = fn()
                out[name]["seconds"].append(time.perf_counter() - start)
                out[name]["cpu_seconds"].append(time.process_time() - cpu)
            if mem.peak_mib is not None:
                out[name]["peak_mib"] = round(max(out[name]["peak_mib"] or 0.0, mem.peak_mib), 1)
    return out


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

    runs = timed({
        "product_whole_gallery": lambda: q @ g.T,
        "product_without_junk": lambda: q @ g_kept.T,
        "ours_total": lambda: evaluate_features_detailed(
            q, g, q_pids, g_pids, q_cams, g_cams, 50, "trapezoid"),
    }, args.repeats)
    runs.update(timed({
        "per_query_field": lambda: per_query_field(q, g, q_pids, g_pids, q_cams, g_cams),
        "per_query_precomputed": lambda: per_query_precomputed(q, g, q_pids, g_pids, q_cams, g_cams),
    }, 1))
    ours = runs["ours_total"]["result"]
    # the same work on one thread: CPU seconds, insensitive to thread barriers on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = timed({
        "product_whole_gallery": lambda: q @ g.T,
        "ours_total": lambda: evaluate_features_detailed(
            q, g, q_pids, g_pids, q_cams, g_cams, 50, "trapezoid"),
    }, args.repeats)
    torch.set_num_threads(threads)
    single_cpu = {k: min(run["cpu_seconds"]) for k, run in single.items()}

    def agreement(ref) -> dict:
        """Same numbers up to np.allclose's default tolerance; per-query AP differences
        can only come from near-ties where the product's rounding differs (the field
        code multiplies one query at a time)."""
        cmc, mAP, aps, mINP = ref
        diff = np.abs(np.nan_to_num(ours.ap_per_query) - np.nan_to_num(aps))
        return {
            "allclose": bool(np.allclose(ours.cmc, cmc) and np.allclose(ours.mAP, mAP)
                             and np.allclose(ours.mINP, mINP)),
            "abs_mINP_difference": abs(ours.mINP - mINP),
            "max_abs_cmc_difference": float(np.abs(ours.cmc - cmc).max()),
            "abs_mAP_difference": abs(ours.mAP - mAP),
            "queries_with_different_ap": int((diff > 1e-9).sum()),
            "max_abs_ap_difference": float(diff.max()),
        }

    same = {name: agreement(runs[name]["result"])
            for name in ("per_query_field", "per_query_precomputed")}
    best = {name: min(run["seconds"]) for name, run in runs.items()}
    median = {name: statistics.median(run["seconds"]) for name, run in runs.items()}
    chunk = auto_chunk(n_q, n_g)

    def ratios(t: dict) -> dict:
        return {
            "ours_over_product_whole_gallery": round(t["ours_total"] / t["product_whole_gallery"], 3),
            "ours_over_product_without_junk": round(t["ours_total"] / t["product_without_junk"], 3),
            "per_query_field_over_ours": round(t["per_query_field"] / t["ours_total"], 1),
            "per_query_precomputed_over_ours": round(t["per_query_precomputed"] / t["ours_total"], 1),
        }

    result = {
        "data": {"queries": n_q, "gallery": n_g, "gallery_without_junk": n_kept, "dims": q.shape[1],
                 "rank1": round(float(ours.cmc[0]), 4), "mAP": round(ours.mAP, 4),
                 "mINP": round(ours.mINP, 4)},
        "seconds_best": {k: round(v, 4) for k, v in best.items()},
        "seconds_median": {k: round(v, 4) for k, v in median.items()},
        "seconds_all_runs": {k: [round(x, 4) for x in run["seconds"]] for k, run in runs.items()},
        # CPU time of the process (all threads; includes the 2 ms memory sampler): less
        # sensitive than wall time to other processes on a shared machine
        "cpu_seconds_best": {k: round(min(run["cpu_seconds"]), 4) for k, run in runs.items()},
        "ratios_best": ratios(best),
        "ratios_median": ratios(median),
        "ratios_cpu_best": ratios({k: min(run["cpu_seconds"]) for k, run in runs.items()}),
        "single_thread_cpu_seconds_best": {k: round(v, 4) for k, v in single_cpu.items()},
        "single_thread_ours_over_product": round(
            single_cpu["ours_total"] / single_cpu["product_whole_gallery"], 3),
        "memory_mib": {
            "peak_rss_growth": {k: run["peak_mib"] for k, run in runs.items()},
            "full_distance_matrix": round(n_q * n_g * 4 / MIB, 1),
            "ours_chunk_queries": chunk,
            "ours_score_block": round(chunk * n_g * 4 / MIB, 1),
            "ru_maxrss_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "agreement_with_ours": same,
        "targets_best": {
            "ours_over_product_whole_gallery_le_1.3": best["ours_total"] / best["product_whole_gallery"] <= 1.3,
            "ours_over_product_without_junk_le_1.6": best["ours_total"] / best["product_without_junk"] <= 1.6,
            "per_query_field_over_ours_ge_10": best["per_query_field"] / best["ours_total"] >= 10,
        },
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "machine": platform.machine(),
                        "cpu_count": os.cpu_count(), "load_average": os.getloadavg()},
        "repeats": args.repeats,
    }
    write_json(args.out, result)
    keys = ("data", "seconds_best", "seconds_median", "cpu_seconds_best", "ratios_best", "ratios_median",
            "ratios_cpu_best", "single_thread_cpu_seconds_best", "single_thread_ours_over_product",
            "memory_mib",
            "agreement_with_ours", "targets_best")
    print(json.dumps({k: result[k] for k in keys}, indent=1))
    print(f"wrote {args.out}")
    return 0 if all(v["allclose"] for v in same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
