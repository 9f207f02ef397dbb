# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The components' dependency graph: start order, cycles and independent groups.

Pure functions over names, so that the rules of runbook Scenario C (start a
component only after what it depends on; refuse a cycle and name it) are
tested without a cluster.  An edge ``a -> b`` means "a depends on b": b starts
first.  Ties are broken by declaration order so that the same inventory always
gives the same order.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ..errors import DependencyCycle, RecoveryError

ARROW = " \u2192 "


@dataclass(frozen=True)
class Graph:
    """Nodes in declaration order and, for each node, the nodes it depends on."""

    nodes: t.Tuple[str, ...]
    depends_on: t.Mapping[str, t.Tuple[str, ...]]

    @classmethod
    def build(cls, declared: t.Sequence[t.Tuple[str, t.Sequence[str]]]) -> Graph:
        """A graph from ``(name, dependencies)`` pairs; duplicates and unknown names
        are refused."""
        names = [name for name, _deps in declared]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise RecoveryError(
                "Component names must be unique; declared more than once: %s"
                % ", ".join(duplicates),
                reason="duplicate component",
                next_step="Fix the component list in the inventory.",
            )
        known = set(names)
        unknown = sorted(
            {
                "%s (needed by %s)" % (dep, name)
                for name, deps in declared
                for dep in deps
                if dep not in known
            }
        )
        if unknown:
            raise RecoveryError(
                "Unknown dependencies: %s" % ", ".join(unknown),
                reason="unknown component",
                next_step="List every component that another one depends on, or drop "
                "the dependency.",
            )
        return cls(
            tuple(names), {name: tuple(dict.fromkeys(deps)) for name, deps in declared}
        )

    def with_edges(self, extra: t.Mapping[str, t.Sequence[str]]) -> Graph:
        """This graph plus more dependencies (for example those observed in the
        running pods)."""
        merged = {
            name: tuple(dict.fromkeys([*self.depends_on[name], *extra.get(name, ())]))
            for name in self.nodes
        }
        return Graph(self.nodes, merged)

    def dependents(self) -> t.Dict[str, t.List[str]]:
        """For each node, the nodes that depend on it directly, in declaration order."""
        found: t.Dict[str, t.List[str]] = {name: [] for name in self.nodes}
        for name in self.nodes:
            for dependency in self.depends_on[name]:
                found[dependency].append(name)
        return found


def find_cycle(graph: Graph) -> t.List[str] | None:
    """One dependency cycle, closed (``[a, b, a]``) and starting at its first-declared
    node; ``None`` if acyclic.

    An iterative depth-first search, so that long chains do not hit Python's recursion
    limit.
    """
    done: t.Set[str] = set()
    for root in graph.nodes:
        if root in done:
            continue
        path: t.List[str] = [root]
        on_path = {root}
        pending: t.List[t.Iterator[str]] = [iter(graph.depends_on[root])]
        while pending:
            dependency = next(pending[-1], None)
            if dependency is None:
                pending.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if dependency in on_path:
                return _rotated(path[path.index(dependency) :], graph.nodes)
            if dependency not in done:
                path.append(dependency)
                on_path.add(dependency)
                pending.append(iter(graph.depends_on[dependency]))
    return None


def _rotated(cycle: t.List[str], order: t.Sequence[str]) -> t.List[str]:
    """The cycle starting at its first-declared member, closed by repeating that
    member."""
    start = min(range(len(cycle)), key=lambda index: order.index(cycle[index]))
    rotated = cycle[start:] + cycle[:start]
    return [*rotated, rotated[0]]


def format_cycle(cycle: t.Sequence[str]) -> str:
    """``controller → indexer → controller``."""
    return ARROW.join(cycle)


def start_order(graph: Graph) -> t.List[str]:
    """Every node after all of its dependencies; raises :class:`DependencyCycle`
    naming a cycle."""
    cycle = find_cycle(graph)
    if cycle is not None:
        raise cycle_error(cycle)
    waiting = {name: len(graph.depends_on[name]) for name in graph.nodes}
    dependents = graph.dependents()
    order: t.List[str] = []
    # Kahn's algorithm; among the startable nodes the first declared goes first.
    startable = [name for name in graph.nodes if waiting[name] == 0]
    while startable:
        name = min(startable, key=graph.nodes.index)
        startable.remove(name)
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                startable.append(dependent)
    return order


def cycle_error(cycle: t.Sequence[str], detail: str = "") -> DependencyCycle:
    text = format_cycle(cycle)
    return DependencyCycle(
        "Refusing to start the components: dependency cycle %s%s"
        % (text, "; %s" % detail if detail else ""),
        cycle=list(cycle),
        resource=text,
        reason="dependency cycle",
        next_step="Break the cycle: remove one of these dependencies from the "
        "components' configuration "
        "(or the inventory's depends_on), then re-run. No component can become Ready "
        "while it waits "
        "for itself.",
    )


def transitive_dependents(graph: Graph, roots: t.Iterable[str]) -> t.List[str]:
    """Nodes that depend, directly or not, on any of ``roots`` (roots excluded), in
    declaration order."""
    dependents = graph.dependents()
    start = set(roots)
    seen: t.Set[str] = set()
    frontier = list(start)
    while frontier:
        for dependent in dependents[frontier.pop()]:
            if dependent not in seen:
                seen.add(dependent)
                frontier.append(dependent)
    return [name for name in graph.nodes if name in seen - start]


def groups(graph: Graph) -> t.List[t.List[str]]:
    """The independent parts of the graph (weakly connected components), each in
    declaration order.

    Parts are ordered by their first-declared member; a failure in one part cannot block
    another.
    """
    neighbours: t.Dict[str, t.Set[str]] = {
        name: set(graph.depends_on[name]) for name in graph.nodes
    }
    for name in graph.nodes:
        for dependency in graph.depends_on[name]:
            neighbours[dependency].add(name)
    found: t.List[t.List[str]] = []
    placed: t.Set[str] = set()
    for root in graph.nodes:
        if root in placed:
            continue
        members = {root}
        frontier = [root]
        while frontier:
            for neighbour in neighbours[frontier.pop()] - members:
                members.add(neighbour)
                frontier.append(neighbour)
        placed |= members
        found.append([name for name in graph.nodes if name in members])
    return found
