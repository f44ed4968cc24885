"""How well a latency table's sums predict measured end-to-end latency, on random architectures.

Builds a space's path-sampling network (as a latency-budgeted search measures it: a never-trained copy, one
input image, evaluation mode, this process's threads), measures its per-candidate table, then times each of
``--architectures`` uniformly drawn architectures end to end and writes one CSV row per architecture
(predicted and measured milliseconds) and a summary line (Pearson r, Kendall's tau, mean absolute error):

    OMP_NUM_THREADS=1 python examples/latency_table_check.py --space nb201 --width 16 --cells 5 \\
        --architectures 60 --out docs/results/latency/nb201-c16n5-cpu.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from scipy import stats

from nas_estimators import ArchitectureDistribution
from nas_estimators.latency import cached_table, device_name, measure_latency
from nas_estimators.objective import ScoringNetwork
from nas_estimators.pooling import native_pooling
from nas_estimators.spaces import SPACES, build_space
from nas_estimators.strategy import path_sampling_supernet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=SPACES, default="nb201")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--architectures", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=15, help="timed forward passes each checked architecture's "
                        "measured latency is the median of (default: 15; the table is built as a search builds it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV of predicted and measured milliseconds")
    args = parser.parse_args()
    if args.architectures < 3 or args.repeats < 1 or args.threads < 1:
        parser.error("--architectures must be >= 3, --repeats and --threads >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    supernet = path_sampling_supernet(build_space(args.space, args.width, args.cells))
    distribution = ArchitectureDistribution.from_model_space(supernet)
    network = ScoringNetwork(supernet, torch.randn(1, 3, 32, 32), seed=args.seed)
    with tempfile.TemporaryDirectory() as cache:  # a fresh table: this measures the measuring
        table, _ = cached_table(network.network, network.inputs, distribution, network.apply, Path(cache))
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    network.network.eval()
    for index in range(args.architectures):
        architecture = distribution.to_architecture(distribution.sample_indices(generator))
        network.apply(architecture)
        with torch.no_grad(), native_pooling():  # as the table measures: NNI's own pooling
            measured = measure_latency(lambda: network.network(network.inputs), torch.device("cpu"), args.repeats)
        rows.append({"architecture": json.dumps(architecture), "predicted_ms": table.predict(architecture),
                     "measured_ms": measured})
        print(f"[{index + 1}/{args.architectures}] predicted {rows[-1]['predicted_ms']:.3f} ms, "
              f"measured {measured:.3f} ms", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    error = (frame["predicted_ms"] - frame["measured_ms"]).abs()
    print(f"{args.space} width {args.width} cells {args.cells}, {device_name(torch.device('cpu'))}, "
          f"{args.threads} thread(s), {args.architectures} architectures: "
          f"Pearson r {stats.pearsonr(frame['predicted_ms'], frame['measured_ms'])[0]:.3f}, "
          f"Kendall tau {stats.kendalltau(frame['predicted_ms'], frame['measured_ms'])[0]:.3f}, "
          f"mean absolute error {error.mean():.3f} ms ({(error / frame['measured_ms']).mean():.1%}), "
          f"measured {frame['measured_ms'].min():.2f}-{frame['measured_ms'].max():.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
