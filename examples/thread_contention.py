"""Seconds of the first command alone and beside one or two copies of itself, with PyTorch's default threads,
with one thread (every command's default on the CPU), and governed (``--threads auto``).

Each row starts K searches at once (``nas-estimators search --space nb201 --epochs E``, digits, each in its
own output folder) with ``--threads T`` (``default``: the thread count PyTorch picks, the behaviour before
threads were chosen; ``auto``: the governor) and reports the mean wall-clock seconds of the K searches'
epochs (``history.csv``'s ``seconds``), so 1.0x is one search alone, and the mean thread count they ran
with. Run it on an idle machine:

    python examples/thread_contention.py --epochs 100 --out docs/results/threads.csv
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch


def run(copies: int, threads: str, epochs: int, folder: Path) -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # the commands choose, as on a user's machine
    count = {"default": str(torch.get_num_threads())}.get(threads, threads)
    processes, outputs = [], []
    started = time.perf_counter()
    for copy in range(copies):
        output = folder / f"{threads}-{copies}-{copy}"
        outputs.append(output)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "nas_estimators", "search", "--space", "nb201", "--epochs", str(epochs),
             "--no-progress", "--uniform-draws", "0", "--threads", count, "--seed", str(copy), "--output",
             str(output)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(process.stderr.read()[-2000:])
    wall = time.perf_counter() - started
    histories = [pd.read_csv(output / "history.csv") for output in outputs]
    seconds = [history["seconds"].sum() for history in histories]
    # Time-weighted: an epoch's mean thread count weighs by its seconds.
    counts = [(history["threads"] * history["seconds"]).sum() / history["seconds"].sum() for history in histories]
    return {"threads": threads, "thread_count": sum(counts) / len(counts), "copies": copies,
            "search_seconds": sum(seconds) / len(seconds), "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--copies", default="1,2,3")
    parser.add_argument("--variants", default="default,1,auto", help="thread settings to measure, in order")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for threads in args.variants.split(","):
            for copies in map(int, args.copies.split(",")):
                rows.append(run(copies, threads, args.epochs, Path(folder)))
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    alone = frame[frame["copies"] == 1].set_index("threads")["search_seconds"]
    frame["x_alone_same_threads"] = frame["search_seconds"] / frame["threads"].map(alone)
    if "1" in alone:
        frame["x_one_thread_alone"] = frame["search_seconds"] / alone["1"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
