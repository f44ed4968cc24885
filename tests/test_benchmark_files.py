"""benchmark-table: a tiny file in the official NATS-Bench layout, written here, read through nats_bench."""

import bz2
import pickle

import pandas as pd
import pytest
import torch

from nas_estimators.cli import main
from nas_estimators.nasbench201 import BenchmarkTable

nats_bench = pytest.importorskip("nats_bench")
from nats_bench.api_utils import ArchResults, ResultsCount  # noqa: E402

ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
         "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"]
EPOCHS = 3
# (cell, seed) -> CIFAR-10 test accuracy after the last epoch; two seeds a cell, as the benchmark has
FINAL = {(0, 777): 93.5, (0, 888): 94.0, (1, 777): 60.0, (1, 888): 62.5, (2, 777): 94.2, (2, 888): 94.5}


def cell_results(index: int, last_epoch_only: bool = False) -> dict:
    results = ArchResults(index, ARCHS[index])
    for seed in (777, 888):
        count = ResultsCount("cifar10", None, None, None, 1.0, 10.0, {}, seed, EPOCHS, None)
        # earlier epochs score lower: only the last one is the table's number
        accs = {f"ori-test@{e}": FINAL[index, seed] - (EPOCHS - 1 - e) * 5.0 for e in range(EPOCHS)}
        count.update_eval(accs, {key: 0.1 for key in accs}, {key: 1.0 for key in accs})
        results.update("cifar10", seed, count)
    return {"200": results.state_dict()}


def official(index_range=range(len(ARCHS))) -> dict:
    return {"meta_archs": ARCHS, "arch2infos": {i: cell_results(i) for i in index_range},
            "evaluated_indexes": list(index_range)}


def write_pbz2(path, data):
    with bz2.BZ2File(path, "wb") as handle:
        pickle.dump(data, handle)
    return path


def expected() -> dict:
    return {arch: (FINAL[i, 777] + FINAL[i, 888]) / 2 for i, arch in enumerate(ARCHS)}


def read(path) -> dict:
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["arch", "cifar10_test_accuracy"]
    return dict(zip(frame["arch"], frame["cifar10_test_accuracy"]))


def test_the_full_file_becomes_the_table_of_mean_final_test_accuracies(tmp_path, capsys):
    source = write_pbz2(tmp_path / "NATS-tss-v1_0-3ffb9-full.pickle.pbz2", official())
    output = tmp_path / "table.csv"
    assert main(["benchmark-table", str(source), "--output", str(output)]) == 0
    assert read(output) == pytest.approx(expected())
    table = BenchmarkTable.from_csv(output)  # what --benchmark-table reads
    assert table.accuracy(ARCHS[2]) == pytest.approx(94.35)
    assert f"3 cells; best 94.35 ({ARCHS[2]})" in capsys.readouterr().out


def test_the_simple_directory_and_the_pth_file_give_the_same_table(tmp_path):
    archive = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    archive.mkdir()
    write_pbz2(archive / "meta.pickle.pbz2", {"meta_archs": ARCHS})
    for index in range(len(ARCHS)):
        write_pbz2(archive / f"{index:06d}.pickle.pbz2", cell_results(index))
    torch.save(official(), tmp_path / "NAS-Bench-201-v1_1-096897.pth")
    for source in (archive, tmp_path / "NAS-Bench-201-v1_1-096897.pth"):
        output = tmp_path / f"{source.name}.csv"
        assert main(["benchmark-table", str(source), "--output", str(output)]) == 0
        assert read(output) == pytest.approx(expected())


def _fails(capsys, *argv):
    with pytest.raises(SystemExit) as excinfo:
        main(["benchmark-table", *argv])
    error = capsys.readouterr().err
    assert excinfo.value.code == 2 and "Traceback" not in error and error.count("\n") == 1, error
    return error


def test_bad_input_is_one_line_and_an_existing_table_is_kept(tmp_path, capsys):
    source = write_pbz2(tmp_path / "full.pickle.pbz2", official())
    existing = tmp_path / "existing.csv"
    existing.write_text("kept\n")
    assert "output: " in _fails(capsys, str(source), "--output", str(existing))
    assert existing.read_text() == "kept\n"
    out = str(tmp_path / "new.csv")
    assert "no such file or directory" in _fails(capsys, str(tmp_path / "missing.pbz2"), "--output", out)
    assert "epochs: " in _fails(capsys, str(source), "--output", out, "--epochs", "12")
    assert "dataset: " in _fails(capsys, str(source), "--output", out, "--dataset", "cifar100")
    other = write_pbz2(tmp_path / "other.pickle.pbz2", {"something": 1})
    assert "not a NAS-Bench-201/NATS-Bench topology file" in _fails(capsys, str(other), "--output", out)
    assert not (tmp_path / "new.csv").exists()
