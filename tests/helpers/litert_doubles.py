"""A LiteRT interpreter stand-in for tests: XNNPACK refuses to prepare unless delegates are off."""

from __future__ import annotations


def refuse_xnnpack(monkeypatch, node: int = 4) -> None:
    """Make LiteRT fail to prepare XNNPACK (as it does for a node it rejects), unless delegates are off."""
    import ai_edge_litert.interpreter as litert

    real = litert.Interpreter

    class XnnpackRefuses(real):
        def __init__(self, *args, **kwargs):
            self.plain = kwargs.get("experimental_op_resolver_type") is not None
            super().__init__(*args, **kwargs)

        def allocate_tensors(self):
            if not self.plain:
                raise RuntimeError(f"failed to create XNNPACK runtimeNode number {node} (TfLiteXNNPackDelegate) "
                                   f"failed to prepare.")
            return super().allocate_tensors()

    monkeypatch.setattr(litert, "Interpreter", XnnpackRefuses)
