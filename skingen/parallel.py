"""Worker-process pools that are safe after torch, h5py or tqdm have started threads."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def _single_threaded_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core; cv2's own threads would only contend


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by a fork server.

    Plain fork copies whatever locks other threads hold at that moment (tqdm's monitor, OpenMP,
    HDF5), and a child can then wait on them forever; the fork server starts from a clean process.
    """
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_single_threaded_worker)
