"""Independent CPU jobs side by side, torch's threads split between them.

A ~1M-parameter UNet on 28x28 images splits poorly across threads, so two independent jobs on one
thread each finish well before the same two in a row on all threads (benchmarks/results/app.json,
in_process_pair_parallel_over_fp_only against in_process_pair_sequential_over_fp_only).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch


def side_by_side(*jobs):
    """Run zero-argument callables at once, each on ``threads // len(jobs)`` torch threads (at least 1);
    returns their results in order. torch's thread count is process-wide, so it is set for the
    duration and restored after, also on error. An error in any job is raised once all have ended."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // max(1, len(jobs))))
    try:
        with ThreadPoolExecutor(max(1, len(jobs)), thread_name_prefix="dadq") as ex:
            futures = [ex.submit(job) for job in jobs]
        return [f.result() for f in futures]
    finally:
        torch.set_num_threads(threads)
