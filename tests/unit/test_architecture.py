"""Imports point one way: no cycles among the package's modules (counting imports inside functions),
``data_recipes`` never imports ``posttrain``, tracking never imports stages, and one module owns the
reasoning format's literals."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx

import posttrain
from data_recipes import codehash

ROOT = Path(posttrain.__file__).resolve().parents[1]
PACKAGES = ("posttrain", "data_recipes")


def import_graph() -> dict[str, set[str]]:
    return codehash.import_graph(PACKAGES)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (networkx, which torch depends on)."""
    g = nx.DiGraph([(m, d) for m, deps in graph.items() for d in deps])
    g.add_nodes_from(graph)
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_layers_point_one_way():
    graph = import_graph()
    up = [(m, d) for m, deps in graph.items() if m.startswith("data_recipes") for d in deps]
    assert not [e for e in up if e[1].startswith("posttrain")], "data_recipes imports posttrain"
    assert not [
        (m, d)
        for m, deps in graph.items()
        if m.startswith("posttrain.tracking")
        for d in deps
        if d.startswith("posttrain.stages")
    ]
    into_experiments = [
        (m, d)
        for m, deps in graph.items()
        for d in deps
        if d.startswith("posttrain.experiments")
        and not m.startswith(("posttrain.experiments", "posttrain.cli"))
    ]
    assert into_experiments == [], "only the CLI may reach the experiment drivers"


def test_think_tags_are_defined_once():
    """Only the data contract spells the tag literals; everything else imports them (via
    ``posttrain.reasoning``). Docstrings and comments may mention them."""
    literal = re.compile(r"""^(?![ ]*#).*=[^=\n]*["']</?think>["']""", re.M)
    files = codehash.module_files(PACKAGES).values()
    owners = [str(p.relative_to(ROOT)) for p in files if literal.search(p.read_text())]
    assert owners == ["data_recipes/schema.py"], owners
