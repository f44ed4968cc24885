"""The issue's CPU check: SF at least 4x NNI's DARTS in search steps per second, in one run.

DARTS space, width 8, 5 cells, batch 32, digits, fp32, one CPU thread (steadier on a shared machine):

    python examples/cpu_speed_check.py            # exit status 0 if SF >= 4x nni-darts, else 1
"""

import argparse
import sys

from nas_estimators.bench import BenchConfig, run_bench, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--required", type=float, default=4.0, help="minimum SF / nni-darts steps/s (default: 4)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    record = run_bench(BenchConfig(strategies=("sf", "nni-darts"), space="darts", width=8, cells=5, batch_size=32,
                                   steps=args.steps, warmup_steps=5, device="cpu", threads=args.threads))
    print(table(record).to_string())
    ratio = record["speedup_vs_nni_darts"]["sf"]
    verdict = "PASS" if ratio >= args.required else "FAIL"
    print(f"{verdict}: SF is {ratio:.1f}x NNI's DARTS in steps/s on {record['device']} (required {args.required:g}x)")
    return 0 if ratio >= args.required else 1


if __name__ == "__main__":
    sys.exit(main())
