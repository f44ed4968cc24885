"""Variance of SF, RELAX (and its variants) and RAM at fixed logits: on an enumerable table and on a frozen supernet.

Each estimator adapts for --adapt estimates (SF's baseline, RELAX's surrogate), then its surrogate is
frozen (learning rate 0) and --estimates estimates are drawn at the same logits; the table reports
the summed per-coordinate variance and its ratio to SF's (baseline decay 0.9). On the table the
losses are a fixed random table over 3 x 4 x 4 = 48 architectures; on a supernet (--supernet DIR, a
finished search) each estimate scores on the next batch of the held-out architecture half.

    OMP_NUM_THREADS=1 python examples/relax_variance.py --seeds 0,1 [--supernet runs/screen/supernet-s0] [--out CSV]
"""

from __future__ import annotations

import argparse
import itertools

import pandas as pd
import torch
from torch import nn

from nas_estimators import ArchitectureDistribution, Ram, Relax, ScoreFunction

SIZES = {"a": 3, "b": 4, "c": 4}
ARMS = {
    "sf": lambda: ScoreFunction(0.9),
    "relax (no baseline)": lambda: Relax(baseline_decay=None),
    "relax (baseline 0.9)": lambda: Relax(baseline_decay=0.9),
    "relax (baseline, regression)": lambda: Relax(baseline_decay=0.9, surrogate_objective="regression"),
    "relax (baseline, temperature 2)": lambda: Relax(baseline_decay=0.9, temperature=2.0),
    "relax (baseline, 4 surrogate steps)": lambda: Relax(baseline_decay=0.9, surrogate_steps=4),
    "relax (baseline, surrogate lr 1e-2)": lambda: Relax(baseline_decay=0.9, surrogate_lr=1e-2),
    "relax (baseline, width 256, lr 3e-3)": lambda: Relax(baseline_decay=0.9, surrogate_width=256, surrogate_lr=3e-3),
    "relax (baseline, learnt temperature)": lambda: Relax(baseline_decay=0.9, learn_temperature=True),
    "relax (baseline, learnt temperature at lr 1e-2)":
        lambda: Relax(baseline_decay=0.9, learn_temperature=True, temperature_lr=1e-2),
    "relax (baseline, 8 conditional samples)": lambda: Relax(baseline_decay=0.9, conditional_samples=8),
    "relax (baseline, learnt temperature, 8 conditional samples)":
        lambda: Relax(baseline_decay=0.9, learn_temperature=True, conditional_samples=8),
    "relax (baseline, logits input)": lambda: Relax(baseline_decay=0.9, logits_input=True),
    "relax (baseline, surrogate pre-trained on uniform logits)": lambda: Relax(baseline_decay=0.9),
    "relax (baseline, oracle control variate)": lambda: Relax(baseline_decay=0.9),
    "relax (baseline, oracle control variate, temperature 0.1)": lambda: Relax(baseline_decay=0.9, temperature=0.1),
    "relax (baseline, oracle control variate, temperature 2)": lambda: Relax(baseline_decay=0.9, temperature=2.0),
    "relax (baseline, oracle control variate, learnt temperature)":
        lambda: Relax(baseline_decay=0.9, learn_temperature=True, temperature_lr=1e-2),
    "ram (1 label)": lambda: Ram(labels_per_step=1),
}
#: Arms whose surrogate first adapts this many estimates at uniform logits (as in the weights-only epochs).
PRETRAIN = {"relax (baseline, surrogate pre-trained on uniform logits)": 1000}
#: Table-only arms whose surrogate is the table's multilinear extension at the relaxed sample (REBAR's
#: control variate, here exact: a bound on what a learnt surrogate of this form can do) times a learnt scale,
#: plus the usual MLP for the residual.
ORACLE = {name for name in ARMS if "oracle" in name}


class MultilinearSurrogate(nn.Module):
    """``scale * sum_arch prod_k relaxed_k[arch_k] * table[arch] + mlp(relaxed)``."""

    def __init__(self, table: torch.Tensor, mlp: nn.Module) -> None:
        super().__init__()
        self.table, self.mlp = table.float(), mlp
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, relaxed: torch.Tensor) -> torch.Tensor:
        a, b, c = torch.split(relaxed, list(SIZES.values()), dim=-1)
        extension = torch.einsum("...i,...j,...k,ijk->...", a, b, c, self.table)
        return self.scale * extension.unsqueeze(-1) + self.mlp(relaxed)


def with_oracle(estimator: Relax, table: torch.Tensor) -> Relax:
    build = estimator._build

    def build_with_oracle(input_size: int) -> None:
        build(input_size)
        estimator.surrogate = MultilinearSurrogate(table, estimator.surrogate)
        groups = [{"params": list(estimator.surrogate.parameters())}]
        if estimator.learn_temperature:
            groups.append({"params": [estimator.log_temperature], "lr": estimator.temperature_lr})
        estimator.optimizer = torch.optim.Adam(groups, lr=estimator.surrogate_lr)

    estimator._build = build_with_oracle
    return estimator


def table_problem(seed: int):
    generator = torch.Generator().manual_seed(seed)
    distribution = ArchitectureDistribution({k: list(range(n)) for k, n in SIZES.items()})
    with torch.no_grad():
        for label, n in SIZES.items():
            distribution.logits[label].copy_(torch.randn(n, generator=generator))
    table = torch.rand(tuple(SIZES.values()), generator=generator, dtype=torch.float64) * 2 + 1
    loss = lambda arch: float(table[arch["a"], arch["b"], arch["c"]])  # noqa: E731
    loss.table = table
    return distribution, loss


def supernet_problem(directory: str):
    from nas_estimators.frozen import load_supernet

    supernet = load_supernet(directory, device="cpu")
    batches = itertools.cycle(list(supernet.batches))
    state = {"batch": next(batches)}

    def loss(architecture):
        return supernet.loss(state["batch"], architecture)

    def advance():
        state["batch"] = next(batches)

    return supernet.distribution(), loss, advance


def measure(make, distribution, loss_fn, adapt: int, estimates: int, seed: int, advance=lambda: None,
            pretrain: int = 0, moving: bool = False) -> float:
    """The summed variance at ``distribution``'s logits after ``adapt`` estimates (``moving``: while the
    logits go from uniform to those linearly, as in a search) and ``pretrain`` more at uniform logits first."""
    torch.manual_seed(seed)
    estimator = make()
    target = {label: logits.detach().clone() for label, logits in distribution.parameters_by_label().items()}
    uniform = ArchitectureDistribution(distribution.values)
    for _ in range(pretrain):
        estimator.estimate(uniform, loss_fn)
        advance()
    for step in range(adapt):
        if moving:
            with torch.no_grad():
                for label, logits in distribution.parameters_by_label().items():
                    logits.copy_(target[label] * (step + 1) / adapt)
        estimator.estimate(distribution, loss_fn)
        advance()
    if getattr(estimator, "optimizer", None) is not None:
        for group in estimator.optimizer.param_groups:
            group["lr"] = 0.0  # the estimator at fixed (surrogate, logits)
    draws = []
    for _ in range(estimates):
        draws.append(torch.cat(list(estimator.estimate(distribution, loss_fn).values())).double())
        advance()
    return float(torch.stack(draws).var(0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--adapt", type=int, default=1000)
    parser.add_argument("--estimates", type=int, default=3000)
    parser.add_argument("--supernet", help="a finished search's directory: measure on its frozen weights too")
    parser.add_argument("--out", help="write the rows to this CSV")
    parser.add_argument("--arms", help="semicolon-separated estimators to measure (sf always; default: all)")
    parser.add_argument("--moving", action="store_true",
                        help="adapt while the logits move from uniform to the measured ones (as in a search)")
    args = parser.parse_args()
    arms = {name: make for name, make in ARMS.items()
            if args.arms is None or name == "sf" or name in args.arms.split(";")}
    rows = []
    for seed in map(int, args.seeds.split(",")):
        problems = [("table", *table_problem(seed), lambda: None)]
        if args.supernet:
            problems.append(("supernet", *supernet_problem(args.supernet)))
        for problem, distribution, loss_fn, advance in problems:
            results = {}
            for name, make in arms.items():
                if name in ORACLE and problem != "table":
                    continue
                build = (lambda make=make: with_oracle(make(), loss_fn.table)) if name in ORACLE else make
                results[name] = measure(build, distribution, loss_fn, args.adapt, args.estimates, seed, advance,
                                        PRETRAIN.get(name, 0), args.moving)
            for name, variance in results.items():
                rows.append({"problem": problem, "protocol": "moving" if args.moving else "fixed", "seed": seed,
                             "estimator": name, "total_variance": variance,
                             "ratio_to_sf": variance / results["sf"]})
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    print(frame.pivot_table(index="estimator", columns="problem", values="ratio_to_sf").to_string())


if __name__ == "__main__":
    main()
