"""How to combine a supernet with training-free scores, judged on one panel of cells (a screen, no search).

Joins a supernet's panel losses (``examples/supernet_ranking.py``'s OUT.csv) with the same panel's
training-free scores (``examples/training_free_probe.py``'s OUT.csv, same seed: the same cells) and, for
each rule, reports Kendall's tau against the table and the table accuracy of the cell the rule puts first:

* ``supernet``: the supernet's loss alone;
* ``tf``: the rank sum of the training-free scores;
* ``sum w``: ``w`` x the supernet's standardised loss minus the standardised training-free scores (the
  search's weighted objective, standardised here over the panel's uniformly drawn cells);
* ``filter q``: the supernet's choice among the training-free scores' top ``q`` of the panel.

    python examples/panel_combinations.py runs/paths/fair-s0-rank.csv runs/tf/panel-ntk-s0.csv \\
        --terms synflow,params [--out OUT.csv]
"""

from __future__ import annotations

import argparse

import pandas as pd

from nas_estimators.ranking import kendall_tau


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ranking")
    parser.add_argument("probe")
    parser.add_argument("--terms", default="synflow,params")
    parser.add_argument("--out")
    args = parser.parse_args()
    terms = args.terms.split(",")
    ranking = pd.read_csv(args.ranking)
    panel = ranking[ranking.group == "panel"].reset_index(drop=True)
    probe = pd.read_csv(args.probe)
    if len(probe) != len(panel) or (probe.benchmark_acc.round(4) != panel.benchmark_acc.round(4)).any():
        raise SystemExit("ranking and probe: not the same panel (use the same seed, --uniform and --best)")
    frame = pd.concat([panel[["benchmark_acc", "loss", "cell"]], probe[terms]], axis=1)
    uniform = frame.iloc[50:]  # the panel's uniformly drawn cells: the reference the search standardises on

    def standard(column):
        q1, median, q3 = uniform[column].quantile([0.25, 0.5, 0.75])
        return (frame[column] - median) / max((q3 - q1) / 1.349, 1e-12)

    tf_score = sum(standard(term).clip(-10, 10) for term in terms)  # higher is better
    scores = {"supernet": -frame["loss"], "tf": frame[terms].rank(pct=True).sum(axis=1)}
    for weight in (1.0, 2.0, 2.5, 3.0, 4.0):
        scores[f"sum {weight:g}"] = -(weight * standard("loss") - tf_score)
    for share in (0.05, 0.1, 0.2):
        keep = tf_score >= tf_score.quantile(1 - share)
        scores[f"filter {share:g}"] = (-frame["loss"]).where(keep, float("-inf"))
    rows = []
    for rule, score in scores.items():
        finite = score > float("-inf")
        rows.append({"rule": rule, "tau": kendall_tau(score[finite].tolist(), frame.benchmark_acc[finite].tolist()),
                     "first_benchmark_acc": frame.benchmark_acc[score.idxmax()], "first_cell": frame.cell[score.idxmax()]})
    result = pd.DataFrame(rows)
    print(result.to_string(index=False))
    if args.out:
        result.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
