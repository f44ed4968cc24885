"""Tests of nas_estimators/nasbench201.py: string <-> sample conversion checked against NNI, and BenchmarkTable."""

from __future__ import annotations

import itertools
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas_estimators import nasbench201 as nb

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # NNI 3.0's harmless "not a nn.Module" import warning
    from nni.nas.hub.pytorch import NasBench201
    from nni.nas.hub.pytorch.modules import NasBench201Cell
    from nni.nas.hub.pytorch.nasbench201 import Pooling, ReLUConvBN, Zero

# A sample and its string written out by hand from NNI's NasBench201Cell (label f"{source}_{target}").
KNOWN_SAMPLE = {
    "cell/0_1": "conv_3x3",
    "cell/0_2": "conv_3x3", "cell/1_2": "avg_pool_3x3",
    "cell/0_3": "skip_connect", "cell/1_3": "conv_3x3", "cell/2_3": "skip_connect",
}
KNOWN_STRING = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_SKIP = {label: "skip_connect" for label in nb.LABELS}
ALL_SKIP_STRING = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space() -> NasBench201:
    torch.manual_seed(0)
    return NasBench201(stem_out_channels=4, num_modules_per_stack=1)


def random_samples(space: NasBench201, n: int, seed: int) -> list[dict[str, str]]:
    """Samples drawn by NNI's own Categorical.random, so the values are exactly NNI's."""
    state = np.random.RandomState(seed)
    mutables = space.simplify()
    return [{label: m.random(random_state=state) for label, m in mutables.items()} for _ in range(n)]


def op_name(module: nn.Module) -> str:
    """Which NNI primitive a frozen edge module is (stride 1, equal channels, as inside a cell)."""
    if isinstance(module, Zero):
        return "none"
    if isinstance(module, nn.Identity):
        return "skip_connect"
    if isinstance(module, Pooling) and isinstance(module.op, nn.AvgPool2d):
        return "avg_pool_3x3"
    if isinstance(module, ReLUConvBN):
        return {(1, 1): "conv_1x1", (3, 3): "conv_3x3"}[module.op[1].kernel_size]
    raise AssertionError(f"unexpected edge module {type(module).__name__}")


# ---------------------------------------------------------------- the mapping, checked against NNI


def test_labels_and_ops_match_nni_space(space: NasBench201) -> None:
    mutables = space.simplify()
    assert tuple(mutables) == nb.LABELS
    for mutable in mutables.values():
        assert tuple(mutable.values) == nb.NNI_OPS


def test_known_pair() -> None:
    assert nb.to_arch_string(KNOWN_SAMPLE) == KNOWN_STRING
    assert nb.from_arch_string(KNOWN_STRING) == KNOWN_SAMPLE
    assert nb.to_arch_string(ALL_SKIP) == ALL_SKIP_STRING
    assert list(nb.from_arch_string(KNOWN_STRING)) == list(nb.LABELS)  # NNI's label order


def test_frozen_cell_edge_i_to_j_holds_label_i_j(space: NasBench201) -> None:
    for sample in [KNOWN_SAMPLE, *random_samples(space, 10, seed=1)]:
        model = space.freeze(nb.from_arch_string(nb.to_arch_string(sample)))
        cells = [c for c in model.cells if isinstance(c, NasBench201Cell)]
        assert len(cells) == 3
        for cell in cells:
            # NasBench201Cell.forward applies layers[target - 1][source] to tensors[source].
            for source, target in nb.EDGES:
                assert op_name(cell.layers[target - 1][source]) == sample[f"cell/{source}_{target}"]


@pytest.mark.parametrize(
    ("arch", "passes_input"),
    [
        # Only edge 0->3 is open: the cell's output is its input.
        ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", True),
        # Only 1->3 open, but nothing reaches node 1: output is zero. Would pass the input if '~i' meant the target.
        ("|none~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|", False),
        # Path 0->1->3.
        ("|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|", True),
        # Path 0->2->3 through the second group's first edge and the third group's last edge.
        ("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|", True),
        # 1->2 and 2->3 open, but node 1 is empty.
        ("|none~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|", False),
    ],
)
def test_frozen_cell_computes_the_string_graph(space: NasBench201, arch: str, passes_input: bool) -> None:
    cell = next(c for c in space.freeze(nb.from_arch_string(arch)).cells if isinstance(c, NasBench201Cell))
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    out = cell(x)
    torch.testing.assert_close(out, x if passes_input else torch.zeros_like(x))


def test_round_trip_random_nni_samples(space: NasBench201) -> None:
    for sample in random_samples(space, 300, seed=0):
        assert nb.from_arch_string(nb.to_arch_string(sample)) == sample


def test_round_trip_every_architecture() -> None:
    strings = set()
    for ops in itertools.product(nb.NNI_OPS, repeat=len(nb.LABELS)):
        sample = dict(zip(nb.LABELS, ops))
        arch = nb.to_arch_string(sample)
        assert nb.from_arch_string(arch) == sample
        strings.add(arch)
    assert len(strings) == 5 ** 6 == 15625


def test_extra_sample_keys_ignored_and_whitespace_stripped() -> None:
    assert nb.to_arch_string({**KNOWN_SAMPLE, "other/label": 3}) == KNOWN_STRING  # type: ignore[dict-item]
    assert nb.from_arch_string(f"  {KNOWN_STRING}\n") == KNOWN_SAMPLE


# ---------------------------------------------------------------- conversion errors


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("arch", "fragments"),
    [
        ("", ["malformed", "3 '+'-separated", "got 1"]),
        ("|none~0|+|none~0|none~1|", ["malformed", "got 2"]),
        (KNOWN_STRING + "+|none~0|", ["malformed", "got 4"]),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["node 1 group", "'|'-delimited"]),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", ["node 2 group", "2 '|'-delimited"]),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|", ["node 3 group"]),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", ["edge 'none'", "'op~0'"]),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", ["edge 'none~1' of node 2", "'op~0'", "0..1"]),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", ["edge 'none~3' of node 3", "'op~2'"]),
        ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
         ["unknown op 'conv_3x3'", "allowed: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"]),
    ],
)
def test_from_arch_string_errors(arch: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        nb.from_arch_string(arch)
    message = one_line(err)
    for fragment in fragments:
        assert fragment in message


def test_to_arch_string_errors() -> None:
    partial = {k: v for k, v in KNOWN_SAMPLE.items() if k not in ("cell/1_2", "cell/2_3")}
    with pytest.raises(ValueError) as err:
        nb.to_arch_string(partial)
    assert "lacks label(s) cell/1_2, cell/2_3" in one_line(err)
    assert "required: cell/0_1, cell/0_2" in one_line(err)

    with pytest.raises(ValueError) as err:
        nb.to_arch_string({**KNOWN_SAMPLE, "cell/1_3": "nor_conv_3x3"})  # benchmark name, not NNI's
    message = one_line(err)
    assert "unknown op 'nor_conv_3x3' for cell/1_3" in message
    assert "allowed: none, skip_connect, conv_1x1, conv_3x3, avg_pool_3x3" in message

    with pytest.raises(TypeError, match="expected a mapping"):
        nb.to_arch_string(KNOWN_STRING)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a NAS-Bench-201 string"):
        nb.from_arch_string(KNOWN_SAMPLE)  # type: ignore[arg-type]


# ---------------------------------------------------------------- BenchmarkTable

A = KNOWN_STRING
B = ALL_SKIP_STRING
C = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
D = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def table_path(tmp_path: Path) -> Path:
    return write(tmp_path, f"arch,cifar10_test_accuracy\n{A},93.66\n{B},54.30\n{C},10.0\n{D},54.30\n")


def test_table_lookup(table_path: Path) -> None:
    table = nb.BenchmarkTable.from_csv(table_path)
    assert table.accuracy_column == "cifar10_test_accuracy"
    assert len(table) == 4
    assert table.accuracy(A) == 93.66
    assert table.accuracy(KNOWN_SAMPLE) == 93.66
    assert table.accuracy(ALL_SKIP) == pytest.approx(54.30)
    assert table.best() == (A, 93.66)
    assert [table.rank(a) for a in (A, B, D, C)] == [1, 2, 2, 4]  # ties share a rank
    assert table.rank(KNOWN_SAMPLE) == 1
    assert A in table and KNOWN_SAMPLE in table and ALL_SKIP in table
    assert "garbage" not in table and {"cell/0_1": "none"} not in table and 3 not in table
    assert list(table) == [A, B, C, D]
    assert str(table_path) in repr(table)


def test_table_missing_architecture_is_key_error(table_path: Path) -> None:
    table = nb.BenchmarkTable.from_csv(table_path)
    missing = {**KNOWN_SAMPLE, "cell/0_1": "none"}
    assert missing not in table
    with pytest.raises(KeyError) as err:
        table.accuracy(missing)
    assert isinstance(err.value, nb.ArchitectureNotFoundError)
    message = one_line(err)
    assert nb.to_arch_string(missing) in message and str(table_path) in message and "4 architectures" in message
    with pytest.raises(ValueError, match="unknown op"):  # malformed is not "missing"
        table.accuracy(A.replace("nor_conv_3x3", "conv_3x3"))


@pytest.mark.parametrize(
    ("header", "row", "column", "expected"),
    [
        ("arch,score", "{a},1.5", None, "score"),  # the only numeric column
        ("arch,params,valid_acc", "{a},100,1.5", None, "valid_acc"),  # the only 'acc' column
        ("arch,Accuracy,note", "{a},1.5,x", None, "Accuracy"),  # case-insensitive, non-numeric others
        ("arch,train_acc,test_acc", "{a},9.0,1.5", "test_acc", "test_acc"),  # explicit
    ],
)
def test_table_accuracy_column(tmp_path: Path, header: str, row: str, column: str | None, expected: str) -> None:
    table = nb.BenchmarkTable.from_csv(write(tmp_path, f"{header}\n{row.format(a=A)}\n"), accuracy_column=column)
    assert table.accuracy_column == expected
    assert table.accuracy(A) == 1.5


@pytest.mark.parametrize(
    ("text", "column", "fragments"),
    [
        ("arch,train_acc,test_acc\n{a},1,2\n", None, ["cannot tell", "['arch', 'train_acc', 'test_acc']",
                                                      "accuracy_column"]),
        ("arch,params,flops\n{a},1,2\n", None, ["cannot tell", "['arch', 'params', 'flops']"]),
        ("arch,note\n{a},x\n", None, ["cannot tell"]),
        ("arch,acc\n{a},1\n", "top1", ["accuracy column 'top1' not usable", "['arch', 'acc']"]),
        ("arch,acc\n{a},1\n", "arch", ["accuracy column 'arch' not usable"]),
        ("architecture,acc\n{a},1\n", None, ["no 'arch' column", "['architecture', 'acc']"]),
        ("arch,acc\n{a},1\n{b},oops\n", None, ["column 'acc' has non-numeric value 'oops' at data row 2"]),
        ("arch,acc\n{a},1\n{b},\n", None, ["column 'acc' has an empty value at data row 2"]),
        ("arch,acc\n{a},1\n{b},2\n{a},3\n", None, ["duplicate architecture", "data rows 1 and 3"]),
        ("arch,acc\n{a},1\n|none~0|,2\n", None, ["data row 2:", "malformed NAS-Bench-201 string"]),
        ("arch,acc\n{a},1\n,2\n", None, ["data row 2: empty 'arch' value"]),
        ("arch,acc\n", None, ["no architectures"]),
        ("", None, ["not a readable CSV"]),
    ],
)
def test_table_format_errors(tmp_path: Path, text: str, column: str | None, fragments: list[str]) -> None:
    path = write(tmp_path, text.format(a=A, b=B))
    with pytest.raises(ValueError) as err:
        nb.BenchmarkTable.from_csv(path, accuracy_column=column)
    assert isinstance(err.value, nb.TableFormatError)
    message = one_line(err)
    assert message.startswith(f"{path}:")
    for fragment in fragments:
        assert fragment in message


def test_table_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(FileNotFoundError) as err:
        nb.BenchmarkTable.from_csv(path)
    assert str(path) in one_line(err)


def test_table_from_mapping_canonicalises_and_rejects_duplicates() -> None:
    table = nb.BenchmarkTable({f"  {A} ": 1.0, B: 2.0})
    assert A in table and table.best() == (B, 2.0) and table.source == "<memory>"
    with pytest.raises(nb.TableFormatError, match="duplicate architecture"):
        nb.BenchmarkTable({A: 1.0, f" {A}": 2.0})
    with pytest.raises(nb.TableFormatError, match="no architectures"):
        nb.BenchmarkTable({})


def test_random_lookup_matches_csv(tmp_path: Path, space: NasBench201) -> None:
    rng = random.Random(0)
    samples = {nb.to_arch_string(s): s for s in random_samples(space, 50, seed=2)}
    accs = {arch: round(rng.uniform(10, 95), 4) for arch in samples}
    path = write(tmp_path, "arch,acc\n" + "".join(f"{a},{v}\n" for a, v in accs.items()))
    table = nb.BenchmarkTable.from_csv(path)
    assert len(table) == len(accs)
    for arch, sample in samples.items():
        assert table.accuracy(sample) == accs[arch]
    best = max(accs, key=accs.__getitem__)
    assert table.best() == (best, accs[best]) and table.rank(samples[best]) == 1
