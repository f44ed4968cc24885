"""The drop-in pipelines in examples/, run as a user runs them, at tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_nni_pipeline_searches_exports_and_draws_leaving_nothing_outside_its_folder(tmp_path):
    output = tmp_path / "out"
    stdout = run_example("nni_pipeline.py", "--epochs", "3", "--width", "4", "--output", str(output), cwd=tmp_path)
    top = json.loads((output / "top5.json").read_text())
    assert len(top) == 5 and len({json.dumps(a, sort_keys=True) for a in top}) == 5
    assert set(top[0]) == {f"cell/{i}_{j}" for j in range(1, 4) for i in range(j)}
    assert "digraph" in (output / "cell.dot").read_text() and "plotly" in (output / "cell.html").read_text()
    assert "best architecture:" in stdout and (output / "nni-experiments").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lightning_logs/ beside it


def test_the_optuna_pipeline_runs_a_search_in_each_trial_and_continues_its_study(tmp_path):
    import optuna

    output = tmp_path / "out"
    stdout = run_example("optuna_pipeline.py", "--trials", "2", "--epochs", "2", "--output", str(output), cwd=tmp_path)
    assert "its architecture:" in stdout
    run_example("optuna_pipeline.py", "--trials", "1", "--epochs", "2", "--output", str(output), cwd=tmp_path)
    study = optuna.load_study(study_name="nas-pipeline", storage=f"sqlite:///{output / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3  # the second command continued the study
    assert all(0.0 <= t.value <= 1.0 and set(t.user_attrs["architecture"]) == {
        f"cell/{i}_{j}" for j in range(1, 4) for i in range(j)} for t in trials)
    assert (output / "trial-2" / "architecture.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_thread_measurement_runs_each_setting_and_records_the_threads_used(tmp_path):
    import pandas as pd

    out = tmp_path / "threads.csv"
    run_example("thread_contention.py", "--epochs", "2", "--copies", "1,2", "--variants", "1,auto", "--out", str(out),
                cwd=tmp_path)
    table = pd.read_csv(out)
    assert list(zip(table["threads"].astype(str), table["copies"])) == [("1", 1), ("1", 2), ("auto", 1), ("auto", 2)]
    assert (table.loc[table["threads"].astype(str) == "1", "thread_count"] == 1).all()
    assert table["thread_count"].between(1, os.cpu_count()).all() and (table["x_one_thread_alone"] > 0).all()


def test_the_latency_check_predicts_each_drawn_architecture_and_measures_it(tmp_path):
    import pandas as pd

    out = tmp_path / "latency.csv"
    stdout = run_example("latency_table_check.py", "--width", "4", "--cells", "1", "--architectures", "4",
                         "--repeats", "2", "--out", str(out), cwd=tmp_path)
    frame = pd.read_csv(out)
    assert len(frame) == 4 and (frame[["predicted_ms", "measured_ms"]] > 0).all().all()
    assert "4 architectures: Pearson r" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.csv"]  # its table went to a temporary cache


def test_the_budget_term_ranking_scores_cells_within_the_budget(tmp_path):
    import itertools

    import pandas as pd

    from nas_estimators.nasbench201 import LABELS, NNI_OPS, CellCosts, to_arch_string

    cells = [dict(zip(LABELS, ops)) for ops in itertools.product(NNI_OPS, repeat=6)]
    table = tmp_path / "table.csv"  # accuracy: the number of 3x3 convolutions, plus a spread
    pd.DataFrame({"arch": [to_arch_string(c) for c in cells],
                  "test_acc": [50 + 5 * list(c.values()).count("conv_3x3") + i % 7 for i, c in enumerate(cells)]}
                 ).to_csv(table, index=False)
    out = tmp_path / "ranking.csv"
    stdout = run_example("budget_term_ranking.py", str(table), "--width", "2", "--stages", "1", "--cells", "8",
                         "--out", str(out), cwd=tmp_path)
    frame = pd.read_csv(out)
    budget = CellCosts("flops", 2, 1, 32)({label: "conv_3x3" for label in LABELS}) / 2
    assert len(frame) == 8 and (frame["flops"] <= budget + 1e-9).all()
    assert frame[["params", "synflow"]].notna().all().all()
    assert "within equal FLOPs" in stdout and "naswot" in stdout
    # under a latency table: each 3x3 convolution "takes" 1 ms, so cells of equal latency hold as many of them
    latency = tmp_path / "latency.json"
    latency.write_text(json.dumps({"table": {"reference": {label: "none" for label in LABELS}, "reference_ms": 0.1,
                                             "values": {label: list(NNI_OPS) for label in LABELS},
                                             "entries": {label: [float(op == "conv_3x3") for op in NNI_OPS]
                                                         for label in LABELS}}}))
    stdout = run_example("budget_term_ranking.py", str(table), "--width", "2", "--stages", "1", "--cells", "8",
                         "--latency-table", str(latency), "--out", str(out), cwd=tmp_path)
    frame = pd.read_csv(out)
    convolutions = frame["arch"].str.count("nor_conv_3x3")
    assert len(frame) == 8 and (frame["latency"] == 0.1 + convolutions).all() and (convolutions <= 2).all()
    assert "within 0.05-ms buckets" in stdout and "MFLOPs" not in stdout
    for bad, named in ((["--latency-table", str(table)], "--latency-table"), (["--bucket", "0"], "--bucket")):
        done = subprocess.run([sys.executable, str(EXAMPLES / "budget_term_ranking.py"), str(table), *bad, "--out",
                               str(tmp_path / "refused.csv")], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and named in done.stderr, done.stderr
        assert not (tmp_path / "refused.csv").exists()
