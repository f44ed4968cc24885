"""Retraining found cells (DARTS evaluation protocol, tiny) and the results table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from nas_estimators.cli import main
from nas_estimators.data import ImageData
from nas_estimators.retrain import (RetrainConfig, RetrainError, build_network, cutout, parameters_millions,
                                    random_architecture, resolve_architecture, retrain)

TINY = dict(dataset="digits", cells=3, width=4, epochs=2, batch_size=64, auxiliary_weight=0.0, cutout=4)


def _op_name(module: nn.Module) -> str:
    """The DARTS operation name of a frozen cell's op (unwrapping the drop-path Sequential)."""
    from nni.nas.hub.pytorch.nasnet import DilConv, FactorizedReduce, SepConv

    if isinstance(module, nn.Sequential) and type(module) is nn.Sequential:
        module = module[0]
    if isinstance(module, (nn.Identity, FactorizedReduce)):
        return "skip_connect"
    if isinstance(module, nn.MaxPool2d):
        return f"max_pool_{module.kernel_size}x{module.kernel_size}"
    if isinstance(module, nn.AvgPool2d):
        return f"avg_pool_{module.kernel_size}x{module.kernel_size}"
    k = module[1].kernel_size[0]
    if isinstance(module, SepConv):
        return f"sep_conv_{k}x{k}"
    if isinstance(module, DilConv):
        return f"dil_conv_{k}x{k}"
    raise AssertionError(f"unexpected op {type(module).__name__}")


def _cells(model: nn.Module):
    for stage_index, stage in enumerate(model.stages):
        for cell_index, cell in enumerate(stage):
            yield ("reduce" if stage_index > 0 and cell_index == 0 else "normal"), cell


@pytest.mark.parametrize("spec", ["darts-v2", "random:7", "file"])
def test_fixed_network_has_the_operations_and_inputs_of_the_exported_dict(spec, tmp_path):
    if spec == "file":  # an NNI-exported dict in a JSON file, as export_top_models(formatter='dict') writes it
        architecture = random_architecture(11)
        path = tmp_path / "arch.json"
        path.write_text(json.dumps([architecture]))
        spec = str(path)
    architecture = resolve_architecture(spec)
    model = build_network(architecture, width=4, cells=3, auxiliary=False, drop_path=0.2)
    checked = 0
    for cell_type, cell in _cells(model):
        for node in range(2, 6):
            for j in range(2):
                assert _op_name(cell.ops[node - 2][j]) == architecture[f"{cell_type}/op_{node}_{j}"]
                assert cell.inputs[node - 2][j].chosen == architecture[f"{cell_type}/input_{node}_{j}"]
                checked += 1
    assert checked == 3 * 8


def test_darts_v2_and_random_cells_by_name():
    darts_v2 = resolve_architecture("darts-v2")
    assert darts_v2["normal/op_5_1"] == "dil_conv_3x3" and darts_v2["reduce/op_2_0"] == "max_pool_3x3"
    assert random_architecture(3) == resolve_architecture("random:3")
    assert random_architecture(3) != random_architecture(4)


def test_parameter_count_matches_a_hand_count_and_excludes_the_auxiliary_head():
    # Pooling everywhere: only the stem, the cell preprocessors and the classifier have parameters.
    architecture = {}
    for cell in ("normal", "reduce"):
        for node in range(2, 6):
            for j in range(2):
                architecture[f"{cell}/op_{node}_{j}"] = "max_pool_3x3"
                architecture[f"{cell}/input_{node}_{j}"] = [j]
    C = 4  # cells=3: one cell per stage, the second and third are reduction cells; channels C, 2C, 4C
    stem = 3 * (3 * C) * 9 + 2 * 3 * C                          # conv 3->3C 3x3, BN(3C)
    stage0 = 2 * (3 * C * C + 2 * C)                             # ReLUConvBN(3C, C) twice
    stage1 = (3 * C * 2 * C + 4 * C) + (4 * C * 2 * C + 4 * C)   # ReLUConvBN(3C, 2C), ReLUConvBN(4C, 2C)
    stage2 = (2 * (4 * C * 2 * C) + 8 * C) + (8 * C * 4 * C + 8 * C)  # FactorizedReduce(4C, 4C), ReLUConvBN(8C, 4C)
    classifier = 16 * C * 10 + 10
    expected = stem + stage0 + stage1 + stage2 + classifier
    plain = build_network(architecture, width=C, cells=3, auxiliary=False, drop_path=0.0)
    with_head = build_network(architecture, width=C, cells=3, auxiliary=True, drop_path=0.0)
    assert round(parameters_millions(plain) * 1e6) == expected == 2198
    assert round(parameters_millions(with_head) * 1e6) == expected
    assert sum(p.numel() for p in with_head.parameters()) > expected  # the head exists, it is just not counted


def test_cutout_zeroes_one_clipped_square_per_image():
    images = torch.ones(64, 3, 8, 8)
    out = cutout(images, 4, torch.Generator().manual_seed(0))
    zeros = (out == 0).all(dim=1).sum(dim=(1, 2))  # zeroed pixels per image, same in every channel
    assert zeros.min() >= 4 and zeros.max() == 16  # clipped at the border, full 4x4 inside
    assert torch.equal(cutout(images, 0, torch.Generator()), images)


def test_resume_continues_where_it_stopped(tmp_path):
    straight = retrain(RetrainConfig("random:1", str(tmp_path / "a"), **TINY), progress=lambda line: None)
    lines: list[str] = []
    stopped = retrain(RetrainConfig("random:1", str(tmp_path / "b"), **TINY), progress=lines.append, stop_after=1)
    assert stopped["epochs"] == 1 and not stopped["complete"] and len(lines) == 1
    with pytest.raises(RetrainError, match="--width is 8 but .* used 4"):
        retrain(RetrainConfig("random:1", str(tmp_path / "b"), resume=True, **dict(TINY, width=8)))
    resumed = retrain(RetrainConfig("random:1", str(tmp_path / "b"), resume=True, **TINY), progress=lines.append)
    assert lines[1].startswith("epoch 2/2")  # the resumed run starts at the second epoch
    assert resumed["complete"] and resumed["epochs"] == 2
    a, b = pd.read_csv(tmp_path / "a" / "retrain.csv"), pd.read_csv(tmp_path / "b" / "retrain.csv")
    assert list(b["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert resumed["test_error"] == pytest.approx(straight["test_error"])
    assert resumed["test_error"] == pytest.approx(100 * (1 - b["test_acc"].iloc[-1]))


def test_non_finite_steps_are_skipped_on_the_device_and_a_wholly_bad_epoch_stops(tmp_path, monkeypatch, capsys):
    import nas_estimators.retrain as retrain_module
    from nas_estimators.checkpoints import read_checkpoint

    cross_entropy = nn.functional.cross_entropy
    calls = {"n": 0}

    def every_third_loss_is_nan(*args, **kwargs):
        calls["n"] += 1
        loss = cross_entropy(*args, **kwargs)
        return loss * float("nan") if calls["n"] % 3 == 0 else loss

    monkeypatch.setattr(retrain_module.nn.functional, "cross_entropy", every_third_loss_is_nan)
    result = retrain(RetrainConfig("random:1", str(tmp_path / "some"), **dict(TINY, epochs=1)), progress=lambda line: None)
    rows = pd.read_csv(tmp_path / "some" / "retrain.csv")
    steps = -(-int(0.8 * 1797) // 64)  # digits: 80% of 1797 images for training, the last batch partial
    assert rows["skipped_steps"].iloc[0] == steps // 3  # a skipped step changed nothing ...
    assert rows["train_loss"].notna().all() and result["test_error"] < 90  # ... so the network still learnt
    state = read_checkpoint(tmp_path / "some" / "checkpoint.ckpt", required=retrain_module.CHECKPOINT_KEYS)
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())

    monkeypatch.setattr(retrain_module.nn.functional, "cross_entropy", cross_entropy)
    output = tmp_path / "all"
    retrain(RetrainConfig("random:1", str(output), device="cpu", **TINY), progress=lambda line: None, stop_after=1)
    before = (output / "checkpoint.ckpt").read_bytes()
    monkeypatch.setattr(retrain_module.nn.functional, "cross_entropy",
                        lambda *args, **kwargs: cross_entropy(*args, **kwargs) * float("nan"))
    assert main(["retrain", "--architecture", "random:1", "--output", str(output), "--dataset", "digits",
                 "--cells", "3", "--width", "4", "--epochs", "2", "--batch-size", "64", "--auxiliary-weight", "0",
                 "--cutout", "4", "--device", "cpu", "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "diverged: epoch 2: every one of its" in err and "still holds epoch 1" in err
    assert (output / "checkpoint.ckpt").read_bytes() == before
    assert len(pd.read_csv(output / "retrain.csv")) == 1


def test_auxiliary_head_trains_on_32x32_images(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(48) % 10
    data = ImageData("tiny32", images[:32], labels[:32], images[32:], labels[32:], [str(i) for i in range(10)],
                     (0.5,) * 3, (0.25,) * 3, crop_padding=4)
    config = RetrainConfig("darts-v2", str(tmp_path / "aux"), cells=3, width=4, epochs=1, batch_size=16,
                           cutout=16, auxiliary_weight=0.4)
    result = retrain(config, data=data, progress=lambda line: None)
    assert result["epochs"] == 1 and 0 <= result["test_error"] <= 100
    row = pd.read_csv(tmp_path / "aux" / "retrain.csv").iloc[0]
    assert row["train_loss"] > 0 and set(row.index) == {"epoch", "train_loss", "train_acc", "test_acc", "skipped_steps", "seconds"}


def _cli_error(args, capsys) -> str:
    with pytest.raises(SystemExit) as excinfo:
        main(args)
    assert excinfo.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    return message


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    base = ["retrain", "--dataset", "digits", "--output", str(tmp_path / "r")]
    assert "nor a reference cell" in _cli_error(base + ["--architecture", "nonsense"], capsys)
    assert "random:SEED" in _cli_error(base + ["--architecture", "random:x"], capsys)
    nb201 = tmp_path / "nb201.json"
    nb201.write_text(json.dumps({"cell/0_1": "none"}))
    assert "not in the darts space" in _cli_error(base + ["--architecture", str(nb201)], capsys)
    assert "--drop-path" in _cli_error(base + ["--architecture", "darts-v2", "--drop-path", "1.5"], capsys)
    assert "--epochs" in _cli_error(base + ["--architecture", "darts-v2", "--epochs", "0"], capsys)
    assert "--resume" in _cli_error(base + ["--architecture", "darts-v2", "--resume"], capsys)
    assert "auxiliary" in _cli_error(base + ["--architecture", "darts-v2", "--cells", "3", "--width", "4"], capsys)
    assert "neither" in _cli_error(["table", str(tmp_path)], capsys)


def test_table_joins_retraining_with_its_search_cost(tmp_path, capsys):
    search = tmp_path / "search"
    search.mkdir()
    (search / "config.json").write_text(json.dumps({"estimator": "relax", "space": "darts", "device_name": "NVIDIA H100"}))
    pd.DataFrame({"epoch": [1, 2], "seconds": [1800.0, 1800.0]}).to_csv(search / "history.csv", index=False)
    (search / "architecture.json").write_text(json.dumps(random_architecture(5)))
    flags = ["--dataset", "digits", "--cells", "3", "--width", "4", "--epochs", "1", "--batch-size", "64",
             "--auxiliary-weight", "0", "--cutout", "0"]
    assert main(["retrain", "--architecture", str(search), "--output", str(tmp_path / "found"), *flags]) == 0
    assert main(["retrain", "--architecture", "darts-v2", "--output", str(tmp_path / "v2"), *flags]) == 0
    # The same output again without --resume is refused, and nothing there is lost.
    before = (tmp_path / "v2" / "retrain.csv").read_text()
    assert "--resume" in _cli_error(["retrain", "--architecture", "darts-v2", "--output", str(tmp_path / "v2"),
                                     *flags], capsys)
    assert (tmp_path / "v2" / "retrain.csv").read_text() == before
    out = tmp_path / "table"
    assert main(["table", str(tmp_path / "found"), str(tmp_path / "v2"), str(search), "--output", str(out)]) == 0
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 2  # the search appears once, as the retraining of its architecture
    found = table.set_index("method").loc["RELAX"]
    assert found["search_gpu_hours"] == pytest.approx(1.0) and found["search_device"] == "NVIDIA H100"
    result = json.loads((tmp_path / "found" / "result.json").read_text())
    assert found["test_error"] == pytest.approx(result["test_error"])
    assert found["parameters_m"] == pytest.approx(result["parameters_m"])
    assert table.set_index("method").loc["darts-v2", "search_gpu_hours"] == pytest.approx(96.0)
    markdown = (out / "table.md").read_text()
    assert "| RELAX | " in markdown and "1.000 | RELAX estimator (darts space) on NVIDIA H100 |" in markdown
    html = (out / "table.html").read_text()
    assert "plotly" in html and "RELAX" in html and "darts-v2" in html


def test_darts_v2_at_evaluation_size_has_the_published_parameter_count():
    model = build_network(resolve_architecture("darts-v2"), width=36, cells=20, auxiliary=True, drop_path=0.2)
    assert parameters_millions(model) == pytest.approx(3.3, abs=0.06)  # DARTS paper, Table 1: 3.3 M
