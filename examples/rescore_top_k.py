"""Re-score a finished search's most probable cells by its whole objective, on many held-out images at once.

During a search the supernet term of each step sees one batch (64 images), so a close call between cells
is decided by noise and the distribution can settle on the wrong one. This scores the search's top-k
(``top_k.json``) by the same objective (the checkpoint's term weights, calibration and cached
training-free scores) with the supernet term averaged over ``--images`` fixed held-out images, the
same images for every cell, and says which cell it would export and what the table thinks of it.

    OMP_NUM_THREADS=1 python examples/rescore_top_k.py RUN_DIR [RUN_DIR ...] --images 2048 [--table CSV] [--out CSV]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from nas_estimators.checkpoints import read_checkpoint
from nas_estimators.frozen import load_supernet
from nas_estimators.lightning import CHECKPOINT_KEY
from nas_estimators.objective import Objective
from nas_estimators.run_folder import RunFolder


def rescore(run: Path, images: int, table_path: str | None) -> list[dict]:
    supernet = load_supernet(run, device="cpu", benchmark_table=table_path)
    state = read_checkpoint(RunFolder(run).checkpoint)[CHECKPOINT_KEY]
    objective = Objective.from_weights(supernet.config.objective)
    objective.load_state_dict(state["objective"])  # the search's calibration and cached scores
    objective.bind(supernet.model, supernet.scoring_inputs, supernet.distribution(), supernet.config.seed)
    inputs, targets = supernet.batches.fixed(images)

    def supernet_loss(architecture) -> float:
        losses = [supernet.loss((inputs[i:i + 256], targets[i:i + 256]), architecture) * len(targets[i:i + 256])
                  for i in range(0, len(targets), 256)]
        return float(sum(losses) / len(targets))

    top = json.loads((run / "top_k.json").read_text())
    rows = []
    for row in top:
        started = time.perf_counter()
        value = objective.loss_fn(supernet_loss)(row["architecture"])
        rows.append({"run": run.name, "rank": row["rank"], "probability": row["probability"], "objective": float(value),
                     "benchmark_acc": supernet.table.accuracy(row["architecture"]) if supernet.table else None,
                     "seconds": time.perf_counter() - started, "architecture": json.dumps(row["architecture"])})
    best = min(rows, key=lambda r: r["objective"])
    for r in rows:
        r["rescored_pick"] = r is best
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--table")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        found = rescore(Path(run), args.images, args.table)
        rows += found
        mode = next(r for r in found if r["rank"] == 1)
        pick = next(r for r in found if r["rescored_pick"])
        print(f"{run}: mode {mode['benchmark_acc']} -> rescored pick {pick['benchmark_acc']} "
              f"(rank {pick['rank']}, {sum(r['seconds'] for r in found):.0f} s)", flush=True)
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
