"""Architecture export: NNI sample dicts, DARTS genotypes, NAS-Bench-201 strings, cell drawings, the CLI."""

from __future__ import annotations

import collections
import html
import json
import re
import shutil

import pytest
import torch

from helpers import needs_graphviz, one_line_error, tiny_search
from nas_estimators.cli import main
from nas_estimators.integrations import diagrams
from nas_estimators.architectures import (
    DARTS_V2_GENOTYPE, ArchitectureError, Genotype, check_architecture, format_genotype, from_genotype, load_search,
    parse_genotype, space_choices, to_genotype,
)
from nas_estimators.integrations.export import cell_graphs, export
from nas_estimators.nasbench201 import from_arch_string

# NNI's own sample of the DARTS paper's cell: nni/nas/hub/pytorch/nasnet.py, DARTS.load_searched_model('darts-v2').
NNI_DARTS_V2 = {
    "normal/op_2_0": "sep_conv_3x3", "normal/op_2_1": "sep_conv_3x3", "normal/input_2_0": [0], "normal/input_2_1": [1],
    "normal/op_3_0": "sep_conv_3x3", "normal/op_3_1": "sep_conv_3x3", "normal/input_3_0": [0], "normal/input_3_1": [1],
    "normal/op_4_0": "sep_conv_3x3", "normal/op_4_1": "skip_connect", "normal/input_4_0": [1], "normal/input_4_1": [0],
    "normal/op_5_0": "skip_connect", "normal/op_5_1": "dil_conv_3x3", "normal/input_5_0": [0], "normal/input_5_1": [2],
    "reduce/op_2_0": "max_pool_3x3", "reduce/op_2_1": "max_pool_3x3", "reduce/input_2_0": [0], "reduce/input_2_1": [1],
    "reduce/op_3_0": "skip_connect", "reduce/op_3_1": "max_pool_3x3", "reduce/input_3_0": [2], "reduce/input_3_1": [1],
    "reduce/op_4_0": "max_pool_3x3", "reduce/op_4_1": "skip_connect", "reduce/input_4_0": [0], "reduce/input_4_1": [2],
    "reduce/op_5_0": "skip_connect", "reduce/op_5_1": "max_pool_3x3", "reduce/input_5_0": [2], "reduce/input_5_1": [1],
}
NB201_SAMPLE = {"cell/0_1": "conv_3x3", "cell/0_2": "none", "cell/1_2": "avg_pool_3x3",
                "cell/0_3": "skip_connect", "cell/1_3": "conv_1x1", "cell/2_3": "conv_3x3"}



@pytest.fixture(scope="module")
def darts_run(tmp_path_factory):
    return tiny_search(tmp_path_factory.mktemp("darts") / "run", "--width", "4", "--cells", "3", "--top-k", "3")


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory):
    return tiny_search(tmp_path_factory.mktemp("nb201") / "run", "--space", "nb201", "--width", "4", "--cells", "1",
                       "--top-k", "2", "--estimator", "relax")


# ------------------------------------------------------------------------------------------ spaces, genotypes


def test_candidate_tables_are_nni_spaces_own():
    from nas_estimators._nni import categorical_choices
    from nas_estimators.spaces import build_space

    for name, size in (("darts", (4, 3)), ("nb201", (4, 1))):
        choices, wrapped = categorical_choices(build_space(name, *size))
        nni_table = {label: [[v] for v in values] if label in wrapped else values for label, values in choices.items()}
        assert space_choices(name) == nni_table


def test_darts_v2_genotype_is_nni_darts_v2_sample():
    genotype = parse_genotype(DARTS_V2_GENOTYPE)
    assert from_genotype(genotype) == NNI_DARTS_V2
    assert to_genotype(NNI_DARTS_V2) == genotype
    # DARTS' genotypes.py writes concat as range(2, 6); both forms read the same.
    assert parse_genotype(DARTS_V2_GENOTYPE.replace("[2, 3, 4, 5]", "range(2, 6)")) == genotype
    assert parse_genotype(format_genotype(genotype)) == genotype


def test_genotype_concat_and_edges_are_checked():
    genotype = parse_genotype(DARTS_V2_GENOTYPE)
    with pytest.raises(ArchitectureError, match="concatenates nodes"):
        from_genotype(genotype._replace(normal_concat=[4, 5]))
    with pytest.raises(ArchitectureError, match="has 7 edges"):
        from_genotype(genotype._replace(reduce=genotype.reduce[:7]))
    with pytest.raises(ArchitectureError, match="input_2_0"):
        from_genotype(genotype._replace(normal=[("sep_conv_3x3", 2)] + genotype.normal[1:]))  # node 2 sees 0, 1
    with pytest.raises(ArchitectureError, match="not a literal"):
        parse_genotype("Genotype(normal=__import__('os'), normal_concat=[], reduce=[], reduce_concat=[])")


@pytest.mark.parametrize("change, message", [
    ({"normal/op_9_0": "sep_conv_3x3"}, "not in the darts space"),
    ({"normal/op_2_0": "conv_9x9"}, "is not a candidate"),
    ({"reduce/input_3_1": [3]}, "is not a candidate"),
    ({"reduce/input_3_1": 1}, "is not a candidate"),
])
def test_architectures_outside_the_space_are_refused(change, message):
    with pytest.raises(ArchitectureError, match=message):
        check_architecture({**NNI_DARTS_V2, **change})
    incomplete = dict(NNI_DARTS_V2)
    del incomplete["reduce/op_5_1"]
    with pytest.raises(ArchitectureError, match="needs label 'reduce/op_5_1'"):
        check_architecture(incomplete)


def test_exported_dict_and_genotype_freeze_the_darts_space_into_a_working_model(darts_run, tmp_path):
    from nas_estimators.spaces import build_space

    written = export(load_search(darts_run), "json", tmp_path, top=3)
    architectures = json.loads(written[0].read_text())
    assert architectures[0] == json.loads((darts_run / "architecture.json").read_text())
    assert len(architectures) == 3 and len({json.dumps(a) for a in architectures}) == 3
    genotype_lines = export(load_search(darts_run), "genotype", tmp_path, top=3)[0].read_text().splitlines()
    torch.manual_seed(0)
    for architecture, line in zip(architectures, genotype_lines):
        assert from_genotype(parse_genotype(line)) == architecture
        model = build_space("darts", 4, 3).freeze(architecture)
        output = model(torch.randn(2, 3, 8, 8))
        assert output.shape == (2, 10) and torch.isfinite(output).all()
    # NNI's other way to fix a space: build it inside model_context(sample); the same network comes out.
    from nni.nas.hub.pytorch import DARTS
    from nni.nas.space import model_context

    with model_context(architectures[0]):
        in_context = DARTS(width=4, num_cells=3, dataset="cifar")
    frozen = build_space("darts", 4, 3).freeze(architectures[0])
    assert [tuple(p.shape) for p in in_context.parameters()] == [tuple(p.shape) for p in frozen.parameters()]
    in_context.load_state_dict(frozen.state_dict())
    batch = torch.randn(2, 3, 8, 8)
    assert torch.allclose(in_context.eval()(batch), frozen.eval()(batch))


def test_nb201_exports_benchmark_strings_that_freeze(nb201_run, tmp_path):
    from nas_estimators.spaces import build_space

    lines = export(load_search(nb201_run), "genotype", tmp_path, top=2)[0].read_text().splitlines()
    top = [row["architecture"] for row in json.loads((nb201_run / "top_k.json").read_text())]
    exported = json.loads((nb201_run / "architecture.json").read_text())  # the best re-scored: rank 1 of an export
    assert [from_arch_string(line) for line in lines] == [exported, *[a for a in top if a != exported]][:2]
    model = build_space("nb201", 4, 1).freeze(from_arch_string(lines[0]))
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


# ------------------------------------------------------------------------------------------ drawings


def genotype_edges(genotype: Genotype, cell: str) -> collections.Counter:
    """(source, target, operation) triples in the drawing's node names, straight from the genotype."""
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    edges = collections.Counter()
    for position, (operation, source) in enumerate(getattr(genotype, cell)):
        target = position // 2  # entries 2i, 2i+1 belong to intermediate node i (NNI node i + 2)
        edges[(names.get(source, str(source - 2)), str(target), operation)] += 1
    return edges


DOT_ID = r'("(?:[^"\\]|\\.)*"|[\w.-]+)'  # a DOT identifier, quoted only where it must be


def dot_statements(dot: str) -> tuple[dict[str, dict], list[tuple[str, str, dict]]]:
    """The node statements (name -> attributes) and edge statements (source, target, attributes) of DOT text."""
    def unquote(identifier: str) -> str:
        return re.sub(r'\\(["\\])', r"\1", identifier[1:-1]) if identifier.startswith('"') else identifier

    def attributes(text: str) -> dict[str, str]:
        return {key: unquote(value) for key, value in re.findall(rf"(\w+)={DOT_ID}", text)}

    nodes = {unquote(name): attributes(text) for name, text in re.findall(rf"^\s*{DOT_ID} \[(.*)\]$", dot, re.M)}
    edges = [(unquote(source), unquote(target), attributes(text))
             for source, target, text in re.findall(rf"^\s*{DOT_ID} -> {DOT_ID} \[(.*)\]$", dot, re.M)]
    return nodes, edges


def dot_edges(dot: str) -> tuple[collections.Counter, collections.Counter]:
    _, edges = dot_statements(dot)
    labelled = collections.Counter((source, target, attributes["label"]) for source, target, attributes in edges
                                   if "label" in attributes)
    concat = collections.Counter((source, target) for source, target, attributes in edges
                                 if target == "c_{k}" and attributes == {"fillcolor": "gray"})
    return labelled, concat


def test_dot_has_every_genotype_edge_and_the_concatenation():
    genotype = parse_genotype(DARTS_V2_GENOTYPE)
    cells = cell_graphs(NNI_DARTS_V2)
    assert [cell.name for cell in cells] == ["normal", "reduce"]
    for cell in cells:
        dot = diagrams.to_dot(cell)
        labelled, concat = dot_edges(dot)
        assert labelled == genotype_edges(genotype, cell.name)
        assert concat == collections.Counter((str(i), "c_{k}") for i in range(4))
        nodes, _ = dot_statements(dot)
        for node, colour in (("c_{k-2}", "darkseagreen2"), ("c_{k-1}", "darkseagreen2"), ("2", "lightblue"),
                             ("c_{k}", "palegoldenrod")):
            assert nodes[node] == {"fillcolor": colour}


def test_nb201_cell_drawing_has_its_six_edges():
    (cell,) = cell_graphs(NB201_SAMPLE)
    labelled, _ = dot_edges(diagrams.to_dot(cell))
    assert labelled == collections.Counter({
        ("c_{k-1}", "1", "conv_3x3"): 1, ("c_{k-1}", "2", "none"): 1, ("1", "2", "avg_pool_3x3"): 1,
        ("c_{k-1}", "c_{k}", "skip_connect"): 1, ("1", "c_{k}", "conv_1x1"): 1, ("2", "c_{k}", "conv_3x3"): 1})
    _, edges = dot_statements(diagrams.to_dot(cell))
    (none_edge,) = [attributes for _, _, attributes in edges if attributes.get("label") == "none"]
    assert {"label": "none", "fillcolor": "gray", "style": "dashed"}.items() <= none_edge.items()


@needs_graphviz
def test_names_and_labels_with_dot_syntax_are_drawn_as_written(tmp_path):
    # Each breaks hand-written DOT: a quote ends the string, a final backslash escapes the closing quote,
    # backslashes start escape sequences (\N is the node's name), braces and <...> are record and HTML syntax.
    odd = ['say "hi"', "back\\slash\\", "{braces}", "<angle>", "\\N & \\l", 'all "\\{<>}']
    cell = diagrams.CellGraph(odd[5], [odd[0]], [odd[1]], odd[2], [
        diagrams.Edge(odd[0], odd[1], odd[3]), diagrams.Edge(odd[1], odd[2], odd[4]),
        diagrams.Edge(odd[0], odd[2], odd[5]), diagrams.Edge(odd[1], odd[2], None)])
    dot = diagrams.to_dot(cell)
    svg = diagrams.to_svg(dot)
    texts = [html.unescape(text) for text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert sorted(texts) == sorted([cell.title, *odd])  # the title, three nodes, three operations, as written
    assert diagrams.render(dot, tmp_path / "odd.png").read_bytes()[:4] == b"\x89PNG"


def test_plotly_figure_draws_every_edge_with_its_operation():
    genotype = parse_genotype(DARTS_V2_GENOTYPE)
    cells = cell_graphs(NNI_DARTS_V2)
    figure = diagrams.plotly_figure(cells, title="darts v2")
    drawn = collections.Counter()
    for trace in figure.data:
        if trace.mode == "lines":
            drawn[(trace.meta["source"], trace.meta["target"], trace.meta["operation"])] += 1
    expected = genotype_edges(genotype, "normal") + genotype_edges(genotype, "reduce")
    expected.update({(str(i), "c_{k}", None): 2 for i in range(4)})  # concat edges of both cells
    assert drawn == expected
    texts = collections.Counter(a.text for a in figure.layout.annotations if a.text and not a.showarrow)
    for operation, count in collections.Counter(op for cell in ("normal", "reduce")
                                                for op, _ in getattr(genotype, cell)).items():
        assert texts[operation] == count
    assert {"normal cell", "reduce cell"} <= set(texts)


@needs_graphviz
def test_svg_and_png_show_every_edge(darts_run, tmp_path):
    run = load_search(darts_run)
    genotype = to_genotype(run.architectures[0])
    svgs = export(run, "svg", tmp_path)
    assert [path.name for path in svgs] == ["rank1-normal.svg", "rank1-reduce.svg"]
    for path, cell in zip(svgs, ("normal", "reduce")):
        svg = html.unescape(path.read_text())
        # Graphviz titles each edge "source->target" and writes its label as a <text>.
        titles = collections.Counter(re.findall(r"<title>([^<]+?)->([^<]+)</title>", svg))
        labels = collections.Counter(re.findall(r">([a-z_0-9x]+)</text>", svg))
        expected = genotype_edges(genotype, cell)
        for (source, target, operation), count in expected.items():
            assert titles[(source, target)] >= count
        for operation in {op for _, _, op in expected}:
            assert labels[operation] == sum(c for (_, _, op), c in expected.items() if op == operation)
        assert sum(titles.values()) == 8 + 4
    png = export(run, "png", tmp_path)[0].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 300 and height > 100


def test_html_export_is_a_plotly_page_of_the_cells(nb201_run, tmp_path):
    (page,) = export(load_search(nb201_run), "html", tmp_path)
    text = page.read_text().replace("\\u003e", ">")  # plotly's JSON escapes '>'
    architecture = json.loads((nb201_run / "architecture.json").read_text())
    assert "NAS-Bench-201 cell" in text and "plotly" in text
    for label, operation in architecture.items():
        source, target = label.split("/")[1].split("_")
        names = {"0": "c_{k-1}", "3": "c_{k}"}
        assert f"{names.get(source, source)} -> {names.get(target, target)}: {operation}" in text


# ------------------------------------------------------------------------------------------ command line


def test_export_command_writes_each_format(darts_run, tmp_path, capsys):
    formats = ["json", "genotype", "dot", "html"] + (["svg", "png"] if shutil.which("dot") else [])
    for fmt in formats:
        assert main(["export", str(darts_run), "--format", fmt, "--output", str(tmp_path / fmt), "--top", "2"]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "json" / "architectures.json") in printed
    assert len(json.loads((tmp_path / "json" / "architectures.json").read_text())) == 2
    assert sorted(p.name for p in (tmp_path / "dot").iterdir()) == [
        "rank1-normal.dot", "rank1-reduce.dot", "rank2-normal.dot", "rank2-reduce.dot"]
    assert main(["export", str(darts_run)]) == 0  # default: json into DIR/export
    assert (darts_run / "export" / "architectures.json").is_file()


def test_export_command_reads_an_exported_json_file(tmp_path, capsys):
    source = tmp_path / "mine.json"
    source.write_text(json.dumps([NNI_DARTS_V2]))
    assert main(["export", str(source), "--format", "genotype"]) == 0
    assert (tmp_path / "export" / "genotypes.txt").read_text().strip() == format_genotype(
        parse_genotype(DARTS_V2_GENOTYPE))


def test_export_bad_input_is_one_line(darts_run, tmp_path, capsys):
    assert "no such file or directory" in one_line_error(capsys, ["export", str(tmp_path / "missing")])
    error = one_line_error(capsys, ["export", str(darts_run), "--format", "pdf"])
    assert "--format: expected one of json, genotype, dot, svg, png, html, got 'pdf'" in error
    ranked = len(load_search(darts_run).architectures)  # the top 3, and the exported cell if it is not among them
    assert f"expected 1..{ranked}" in one_line_error(capsys, ["export", str(darts_run), "--top", str(ranked + 1)])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no architecture.json" in one_line_error(capsys, ["export", str(empty)])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**NNI_DARTS_V2, "normal/op_3_1": "conv_7x7"}))
    error = one_line_error(capsys, ["export", str(bad)])
    assert "normal/op_3_1" in error and "conv_7x7" in error and "candidates" in error
    bad.write_text("{not json")
    assert "not valid JSON" in one_line_error(capsys, ["export", str(bad)])
    bad.write_text(json.dumps({"cell/0_1": "conv_3x3"}))
    assert "needs label 'cell/0_2'" in one_line_error(capsys, ["export", str(bad), "--space", "nb201"])
    assert not (tmp_path / "export").exists()  # nothing written on bad input


def test_svg_without_graphviz_is_a_one_line_error(darts_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: None)
    error = one_line_error(capsys, ["export", str(darts_run), "--format", "svg", "--output", str(tmp_path)])
    assert "apt-get install graphviz" in error
    assert main(["export", str(darts_run), "--format", "dot", "--output", str(tmp_path)]) == 0  # dot needs none


# ------------------------------------------------------------------------------------------ TensorBoard


def test_search_writes_tensorboard_events_beside_the_csv_logs(darts_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((darts_run / "tensorboard").glob("version_*/events.out.tfevents.*"))
    assert len(events) == 1, "one TensorBoard event file (a resumed search adds a version)"
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert {"val_acc", "entropy", "train_loss", "estimator/baseline"} <= set(accumulator.Tags()["scalars"])
    assert len(accumulator.Scalars("entropy")) == 2  # one per epoch
    assert (darts_run / "logs" / "version_0" / "metrics.csv").is_file()  # the CSV logger is kept
