"""Property: on any DAG, every reachable step runs exactly once, never before its inputs."""

from __future__ import annotations

import asyncio

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.documents import flow, manual, step
from tests.probe_nodes import JOURNAL, probe_engine

ENGINE = probe_engine()


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """Node 0 is the trigger; an edge only goes from a lower to a higher number (no cycles)."""
    size = draw(st.integers(min_value=1, max_value=14))
    pairs = [(a, b) for b in range(1, size + 1) for a in range(b)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=40)) if pairs else []
    return size, edges


def document(size: int, edges: list[tuple[int, int]]) -> dict:  # type: ignore[type-arg]
    nodes = [manual()] + [
        step(f"n{i}", "probe.record", {"seconds": 0.001 * (i % 3)}) for i in range(1, size + 1)
    ]
    ids = ["start"] + [f"n{i}" for i in range(1, size + 1)]
    return flow(nodes, [(ids[a], ids[b]) for a, b in edges])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dags_run_every_reachable_node_once_and_never_before_its_inputs(
    dag: tuple[int, list[tuple[int, int]]],
) -> None:
    size, edges = dag
    JOURNAL.entries.clear()
    result = asyncio.run(ENGINE.run(document(size, edges)))

    graph = nx.DiGraph()
    graph.add_nodes_from(range(size + 1))
    graph.add_edges_from(edges)
    reachable = {f"n{i}" for i in nx.descendants(graph, 0)}
    order = JOURNAL.order(result.run_id)
    started = [node for kind, node in order if kind == "start"]

    assert result.status == "succeeded"
    assert sorted(started) == sorted(reachable)  # each reachable node once, nothing else
    position = {(kind, node): i for i, (kind, node) in enumerate(order)}
    for a, b in edges:
        if f"n{a}" in reachable:  # the trigger and unreachable steps are not probes
            assert position[("end", f"n{a}")] < position[("start", f"n{b}")]
    ran = {r.node_id for r in result.steps if r.status == "succeeded"}
    assert ran == reachable | {"start"}
