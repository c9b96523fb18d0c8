"""Keep tf2onnx's memory near the model's size while it optimizes the ONNX graph.

tf2onnx (1.16, 1.17) runs its dozen graph optimizers until nothing changes (36 passes on a RegNet) and
after every pass rewrites the attributes of every node's NodeProto, weights included. Under protobuf's
upb runtime a cleared field stays in its message's arena until that message is freed, so each pass
leaves one more copy of all the weights behind: RegNetX-8.0GF (151 MiB of weights) peaked at 17 GiB,
and RegNetX-32GF, RegNetY-16GF and RegNetY-32GF were killed on a 24 GiB machine. Inside
`bounded_memory()` every node's proto is moved to a fresh message after each pass, which frees the old
arena, and the optimizers run without tf2onnx's deep copy of the whole graph before each pass
(`TF2ONNX_CATCH_ERRORS=FALSE`; that copy only lets tf2onnx skip an optimizer that raises).
`benchmarks/onnx_export_memory.py` measures the peak memory with and without it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

CATCH_ERRORS_ENV = "TF2ONNX_CATCH_ERRORS"


def refresh_node_protos(graph: Any) -> None:
    """Copy each node's NodeProto (and those of its body graphs) into a new message, freeing the old arena."""
    for node in graph.get_nodes():
        proto = getattr(node, "_op", None)
        if proto is not None:
            fresh = type(proto)()
            fresh.CopyFrom(proto)
            node._op = fresh
        for body in (node.get_body_graphs() or {}).values():
            refresh_node_protos(body)


@contextlib.contextmanager
def bounded_memory() -> Iterator[None]:
    """Within the block, tf2onnx's optimizer passes neither pile up weight copies nor deep-copy the graph."""
    from tf2onnx.optimizer import optimizer_base

    base = optimizer_base.GraphOptimizerBase
    original = base.optimize

    def optimize(self: Any, graph: Any, iteration: int) -> Any:
        graph = original(self, graph, iteration)
        refresh_node_protos(graph)
        return graph

    saved = os.environ.get(CATCH_ERRORS_ENV)
    base.optimize = optimize
    os.environ[CATCH_ERRORS_ENV] = "FALSE"
    try:
        yield
    finally:
        base.optimize = original
        if saved is None:
            os.environ.pop(CATCH_ERRORS_ENV, None)
        else:
            os.environ[CATCH_ERRORS_ENV] = saved
