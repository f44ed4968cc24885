"""``nas-estimators pareto``: accuracy against cost on the NAS-Bench-201 table, each method's front."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError, add_estimator_arguments, estimator_values


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..nasbench201 import CellCosts
    from ..pareto import COUNTS, ESTIMATORS, EVOLUTION, MOST_DRAWS, PATIENCE, SAMPLERS, SPACINGS
    from ..registry import int_or_never
    from ..run_folder import SweepFolder
    from ..pareto import FULL_SHARE, MOST_SCALE
    from ..table_search import LEARNING_RATE

    parser = subparsers.add_parser(
        "pareto", help="accuracy against cost on the NAS-Bench-201 table: the front each method finds",
        description="Our estimators sweep cost targets (one budgeted search a target, each starting from the "
                    "previous one's distribution); Optuna's NSGA-II and TPE optimise accuracy and cost together. "
                    f"Writes {', '.join(SweepFolder.FILES.values())} (the summary: hypervolume ratio "
                    "to the table's front) and pareto.html to --output.")
    parser.add_argument("--benchmark-table", required=True, metavar="CSV", help="NAS-Bench-201 accuracies")
    parser.add_argument("--cost", choices=CellCosts.KINDS, default="flops",
                        help="params (millions) or flops (MFLOPs of one 32x32 image) of NAS-Bench-201's C=16, N=5 "
                             "network (default: flops)")
    methods = (*ESTIMATORS, EVOLUTION, *SAMPLERS)
    parser.add_argument("--methods", default=",".join(methods),
                        help=f"comma-separated, from {', '.join(methods)} (default: all)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default: 0,1,2)")
    parser.add_argument("--queries", default="1000", help="comma-separated query budgets of every run (default: 1000)")
    parser.add_argument("--targets", type=int, default=16, help="cost targets our estimators sweep (default: 16)")
    parser.add_argument("--target-spacing", choices=SPACINGS, default=SPACINGS[0],
                        help="how the targets of our estimators and NNI's evolution are spaced between the cheapest "
                             "and the dearest network: equal steps, or equal ratios (denser where networks are "
                             f"cheap) (default: {SPACINGS[0]})")
    parser.add_argument("--count", choices=COUNTS, default=COUNTS[0],
                        help="what --queries counts, for every method: every look-up of the table (a repeat too), or "
                             "each distinct cell once per run (a repeat is answered from memory, as a trained network "
                             f"is not trained again; a run draws at most {MOST_DRAWS}x its budget) (default: {COUNTS[0]})")
    parser.add_argument("--table-learning-rate", type=float, default=None,
                        help=f"our estimators: Adam learning rate of the logits (default: {LEARNING_RATE} with "
                             f"{FULL_SHARE}+ queries a target, up to {MOST_SCALE:g}x with fewer; RELAX {LEARNING_RATE})")
    parser.add_argument("--target-patience", type=int_or_never, default=PATIENCE, metavar="N|never",
                        help="our estimators: a target's search ends after N repeated cells in a row, and the "
                             "queries it leaves go to new targets between neighbours whose exported cells differ "
                             f"('never': every target gets its share) (default: {PATIENCE})")
    add_estimator_arguments(parser)
    parser.add_argument("--output", required=True, help="output directory (an existing summary is not replaced)")
    parser.set_defaults(handler=_pareto)
    return parser


def _integers(name: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated integers, got {text!r}") from None


def _pareto(args: argparse.Namespace) -> int:
    from ..budget import COSTS
    from ..integrations.pareto_report import pareto_html
    from ..nasbench201 import read_full_table
    from ..pareto import run_pareto
    from ..run_folder import SweepFolder

    output = Path(args.output)
    folder = SweepFolder(output)
    if folder.finished():
        raise UsageError(f"output: {output} holds a finished sweep; choose another --output")
    seeds, budgets = _integers("seeds", args.seeds), _integers("queries", args.queries)
    try:
        table = read_full_table(args.benchmark_table)  # the true front needs every cell
    except ValueError as error:
        raise UsageError(str(error)) from None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        result = run_pareto(table, args.cost, methods, seeds, budgets, args.targets,
                            progress=lambda line: print(line, file=sys.stderr, flush=True),
                            learning_rate=args.table_learning_rate, options=estimator_values(args),
                            spacing=args.target_spacing, count=args.count, patience=args.target_patience)
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    folder.write(result, pareto_html(result["fronts"], f"{args.cost}: {COSTS[args.cost]}"))
    print(result["summary"].to_string(index=False))
    print(f"written: {', '.join(str(path) for path in folder.files())}, {folder.page}")
    return 0
