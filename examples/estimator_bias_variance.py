"""Bias and variance of SF, RELAX and RAM on an enumerable space (three labels of sizes 3, 4, 2 and a
fixed random loss table), against the exact gradient.

    python examples/estimator_bias_variance.py --estimates 20000
"""

import argparse
import itertools
import math

import pandas as pd
import torch

from nas_estimators import ArchitectureDistribution, Ram, Relax, ScoreFunction

SIZES = {"a": 3, "b": 4, "c": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimates", type=int, default=20000)
    parser.add_argument("--adapt", type=int, default=1000, help="estimates before measuring (baseline/surrogate adapt)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(args.seed)
    distribution = ArchitectureDistribution({k: list(range(n)) for k, n in SIZES.items()})
    with torch.no_grad():
        for label, n in SIZES.items():
            distribution.logits[label].copy_(torch.randn(n, generator=generator))
    table = torch.rand(tuple(SIZES.values()), generator=generator, dtype=torch.float64) * 2 + 1
    loss_fn = lambda arch: float(table[arch["a"], arch["b"], arch["c"]])  # noqa: E731
    expectation = sum(distribution.log_prob(dict(zip(SIZES, v))).exp() * float(table[v])
                      for v in itertools.product(*(range(n) for n in SIZES.values())))
    exact = torch.cat(torch.autograd.grad(expectation, [distribution.logits[k] for k in SIZES])).double()

    rows = []
    estimators = {"sf (no baseline)": ScoreFunction(baseline_decay=0.0), "sf (decay 0.9)": ScoreFunction(0.9),
                  "relax": Relax(surrogate_width=32, surrogate_lr=3e-3),
                  "relax (random start)": Relax(surrogate_width=32, surrogate_lr=3e-3, surrogate_init="random"),
                  "ram": Ram(),
                  "ram (1 label/step)": Ram(labels_per_step=1)}
    for name, estimator in estimators.items():
        torch.manual_seed(args.seed)
        for _ in range(args.adapt):
            estimator.estimate(distribution, loss_fn)
        samples = torch.stack([torch.cat([g for g in estimator.estimate(distribution, loss_fn).values()]).double()
                               for _ in range(args.estimates)])
        mean, std = samples.mean(0), samples.std(0)
        z = ((mean - exact).abs() / (std / math.sqrt(args.estimates)).clamp_min(1e-12))
        rows.append({"estimator": name, "max_abs_bias": float((mean - exact).abs().max()),
                     "max_bias_in_standard_errors": float(z.max()), "total_variance": float(samples.var(0).sum()),
                     "forward_evaluations": estimator.diagnostics["forward_evaluations"]})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
