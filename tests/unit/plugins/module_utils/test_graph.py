# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dependency graph: start order, cycles and independent groups, by example and by property."""

from __future__ import annotations

import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.ragops.recovery.plugins.module_utils.errors import (
    DependencyCycle,
    RecoveryError,
)
from ansible_collections.ragops.recovery.plugins.module_utils.stack.graph import (
    Graph,
    find_cycle,
    format_cycle,
    groups,
    start_order,
    transitive_dependents,
)

LAB = Graph.build(
    [
        ("controller", []),
        ("vectorstore", []),
        ("provider-primary", []),
        ("provider-backup", []),
        ("retriever", ["controller", "vectorstore"]),
        ("generator", ["retriever", "provider-primary"]),
        ("indexer", ["vectorstore"]),
    ]
)


def test_lab_stack_starts_controller_before_retriever_and_generator() -> None:
    order = start_order(LAB)
    assert order == [
        "controller",
        "vectorstore",
        "provider-primary",
        "provider-backup",
        "retriever",
        "generator",
        "indexer",
    ]
    assert (
        order.index("controller") < order.index("retriever") < order.index("generator")
    )


def test_cycle_is_named_from_its_first_declared_member() -> None:
    graph = Graph.build(
        [("indexer", ["controller"]), ("retriever", []), ("controller", ["indexer"])]
    )
    assert find_cycle(graph) == ["indexer", "controller", "indexer"]
    cyclic = Graph.build(
        [("controller", ["indexer"]), ("vectorstore", []), ("indexer", ["controller"])]
    )
    with pytest.raises(DependencyCycle) as raised:
        start_order(cyclic)
    assert raised.value.cycle == ["controller", "indexer", "controller"]
    assert (
        "dependency cycle controller \u2192 indexer \u2192 controller"
        in raised.value.msg
    )
    assert raised.value.to_result()["cycle"] == ["controller", "indexer", "controller"]
    assert "Break the cycle" in (raised.value.next_step or "")


def test_self_dependency_and_long_cycle() -> None:
    assert find_cycle(Graph.build([("a", ["a"])])) == ["a", "a"]
    chain = [("n%d" % index, ["n%d" % ((index + 1) % 500)]) for index in range(500)]
    cycle = find_cycle(Graph.build(chain))
    assert cycle is not None and len(cycle) == 501 and cycle[0] == cycle[-1] == "n0"


def test_disconnected_groups_and_dependents() -> None:
    graph = Graph.build(
        [("a", []), ("b", ["a"]), ("lonely", []), ("c", ["b"]), ("x", []), ("y", ["x"])]
    )
    assert groups(graph) == [["a", "b", "c"], ["lonely"], ["x", "y"]]
    assert transitive_dependents(graph, ["a"]) == ["b", "c"]
    assert transitive_dependents(graph, ["b", "x"]) == ["c", "y"]
    assert transitive_dependents(graph, iter(["c"])) == []


def test_invalid_lists_are_refused_before_anything_runs() -> None:
    with pytest.raises(RecoveryError, match="declared more than once: a"):
        Graph.build([("a", []), ("a", [])])
    with pytest.raises(
        RecoveryError, match=r"Unknown dependencies: ghost \(needed by a\)"
    ):
        Graph.build([("a", ["ghost"])])


def test_observed_edges_are_added() -> None:
    graph = Graph.build([("controller", []), ("retriever", ["controller"])]).with_edges(
        {"controller": ["retriever"]}
    )
    assert (
        format_cycle(find_cycle(graph) or [])
        == "controller \u2192 retriever \u2192 controller"
    )


# --- properties -----------------------------------------------------------------------------------

NAMES = st.lists(
    st.text(alphabet="abcdefgh", min_size=1, max_size=3),
    min_size=1,
    max_size=12,
    unique=True,
)


@st.composite
def acyclic(draw: st.DrawFn) -> Graph:
    """A random DAG: each node depends only on nodes declared before it."""
    names = draw(NAMES)
    return Graph.build(
        [
            (
                name,
                draw(st.lists(st.sampled_from(names[:index]), unique=True))
                if index
                else [],
            )
            for index, name in enumerate(names)
        ]
    )


@st.composite
def shuffled_acyclic(draw: st.DrawFn) -> Graph:
    """A random DAG declared in a random order (dependencies may come later in the list)."""
    graph = draw(acyclic())
    order = draw(st.permutations(graph.nodes))
    return Graph.build([(name, graph.depends_on[name]) for name in order])


@st.composite
def cyclic(draw: st.DrawFn) -> Graph:
    """A random DAG plus one edge that closes a cycle."""
    graph = draw(acyclic())
    reachable = [
        (a, b)
        for a in graph.nodes
        for b in graph.nodes
        if a == b or b in _ancestors(graph, a)
    ]
    closing_from, closing_to = draw(st.sampled_from(reachable))
    # closing_to is reachable from closing_from, so closing_to -> closing_from closes a cycle.
    return graph.with_edges({closing_to: [closing_from]})


def _ancestors(graph: Graph, name: str) -> t.Set[str]:
    """Every node ``name`` depends on, directly or not."""
    seen: t.Set[str] = set()
    frontier = [name]
    while frontier:
        for dependency in graph.depends_on[frontier.pop()]:
            if dependency not in seen:
                seen.add(dependency)
                frontier.append(dependency)
    return seen


@settings(max_examples=200, deadline=None)
@given(shuffled_acyclic())
def test_order_is_a_permutation_that_respects_every_dependency(graph: Graph) -> None:
    order = start_order(graph)
    assert sorted(order) == sorted(graph.nodes)
    position = {name: index for index, name in enumerate(order)}
    for name in graph.nodes:
        for dependency in graph.depends_on[name]:
            assert position[dependency] < position[name]
    assert find_cycle(graph) is None
    assert start_order(graph) == order


@settings(max_examples=200, deadline=None)
@given(cyclic())
def test_a_cycle_is_always_found_and_is_a_real_cycle(graph: Graph) -> None:
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1
    for node, dependency in zip(cycle, cycle[1:]):
        assert dependency in graph.depends_on[node]
    assert min(graph.nodes.index(name) for name in cycle) == graph.nodes.index(cycle[0])
    with pytest.raises(DependencyCycle):
        start_order(graph)


@settings(max_examples=200, deadline=None)
@given(shuffled_acyclic())
def test_groups_partition_the_nodes_and_no_dependency_crosses_them(
    graph: Graph,
) -> None:
    found = groups(graph)
    assert sorted(name for group in found for name in group) == sorted(graph.nodes)
    group_of = {name: index for index, group in enumerate(found) for name in group}
    for name in graph.nodes:
        for dependency in graph.depends_on[name]:
            assert group_of[dependency] == group_of[name]
    for group in found:
        assert group == sorted(group, key=graph.nodes.index)


@settings(max_examples=100, deadline=None)
@given(shuffled_acyclic(), st.data())
def test_dependents_are_exactly_the_nodes_that_reach_the_roots(
    graph: Graph, data: st.DataObject
) -> None:
    roots = data.draw(st.lists(st.sampled_from(graph.nodes), unique=True, max_size=3))
    expected = {
        name
        for name in graph.nodes
        if name not in roots and _ancestors(graph, name) & set(roots)
    }
    assert set(transitive_dependents(graph, roots)) == expected
