"""NAS-Bench-201 on CIFAR-10: our estimators against NNI's strategies, the README's comparison table.

Each one-shot method searches the NAS-Bench-201 space (C=16, N=5) on CIFAR-10 for ``--epochs`` epochs
with each seed; its mode architecture is scored by the benchmark table every epoch. The multi-trial
methods query ``--budget`` architectures each, scored by look-up. Writes ``OUTPUT/results.csv``,
``summary.csv``, ``report.html`` and ``summary.md`` (the Markdown table); rerunning continues an
interrupted comparison.

    python examples/nasbench201_compare.py --data-root CIFAR10_DIR \\
        --benchmark-table nas-bench-201-cifar10.csv --output runs/nb201-compare

``CIFAR10_DIR``: torchvision's ``cifar-10-batches-py`` or an ImageFolder tree with ``train/`` and
``test/`` (``tools/unpack_cifar10.py`` writes one).
"""

import argparse
from pathlib import Path

from nas_estimators.compare import DEFAULT_METHODS, CompareConfig, list_argument, run_compare
from nas_estimators.integrations.compare_report import markdown_table, report_html
from nas_estimators.methods import names as method_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="CIFAR-10 (python batches or ImageFolder train/ test/)")
    parser.add_argument("--benchmark-table", required=True, help="NAS-Bench-201 CIFAR-10 accuracies (arch, accuracy)")
    parser.add_argument("--output", default="runs/nb201-compare")
    parser.add_argument("--methods", nargs="+",
                        default=[",".join((*DEFAULT_METHODS, "nni-evolution", "nni-random-search", "nni-tpe"))])
    parser.add_argument("--seeds", nargs="+", default=["0,1,2"])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--budget", type=int, default=100, help="architectures per multi-trial method and seed")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--arc-learning-rate", type=float, default=3e-3, help="Adam on our strategies' logits")
    parser.add_argument("--warmup-epochs", type=int, default=0, help="weights-only epochs, every one-shot method")
    parser.add_argument("--report-only", action="store_true", help="run nothing; tables of the finished runs")
    args = parser.parse_args()

    config = CompareConfig(
        methods=list_argument(args.methods), seeds=list_argument(args.seeds, int), space="nb201", dataset="cifar10",
        data_root=args.data_root, epochs=args.epochs, batch_size=args.batch_size, width=args.width, cells=args.cells,
        device=args.device, precision=args.precision, channels_last=args.channels_last,
        benchmark_table=args.benchmark_table, budget=args.budget, output=args.output,
        arc_learning_rate=args.arc_learning_rate, warmup_epochs=args.warmup_epochs, report_only=args.report_only)
    result = run_compare(config, report=report_html)
    table = markdown_table(result["summary"])
    note = (f"NAS-Bench-201 (C={args.width}, N={args.cells}), CIFAR-10, {args.epochs} search epochs "
            f"({args.warmup_epochs} of them weights only, architecture learning rate {args.arc_learning_rate:g}), batch "
            f"{args.batch_size}, seeds {', '.join(map(str, config.seeds))}; benchmark accuracy: the table's CIFAR-10 "
            "test accuracy of the final mode architecture (one-shot) or of the best queried architecture "
            f"(multi-trial, {args.budget} look-ups each: {', '.join(m for m in config.methods if m in method_names('nni-multi-trial'))}).\n\n")
    (Path(args.output) / "summary.md").write_text(note + table)
    print(note + table)


if __name__ == "__main__":
    main()
