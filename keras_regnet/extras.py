"""Optional dependencies: which pip extra brings each optional module, and the one line a CLI prints
when one is missing (`pip install "keras-regnet[onnx]"`), so no CLI ends in an ImportError traceback."""

from __future__ import annotations

# Top-level module -> the setup.py extra that installs it (tests/keras_regnet/test_extras.py checks setup.py agrees).
EXTRA_OF_MODULE: dict[str, str] = {
    "ai_edge_litert": "tflite",
    "tf_keras": "qat",
    "tensorflow_model_optimization": "qat",
    "tf2onnx": "onnx",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "jax": "jax",
    "jaxlib": "jax",
    "tensorflow_datasets": "data",
    "importlib_resources": "data",
}
# Optional modules that no extra installs (PyTorch is large and platform-specific; pick its build).
PACKAGE_OF_MODULE: dict[str, str] = {"torch": "torch", "timm": "timm", "tensorboard": "tensorboard"}


def install_command(module: str) -> str | None:
    """The pip command that installs top-level module `module` (dotted names use their root), else None."""
    root = module.split(".")[0]
    if root in EXTRA_OF_MODULE:
        return f'pip install "keras-regnet[{EXTRA_OF_MODULE[root]}]"'
    if root in PACKAGE_OF_MODULE:
        return f"pip install {PACKAGE_OF_MODULE[root]}"
    return None


def missing_module(err: BaseException) -> str | None:
    """The optional module whose absence caused `err` (itself or a chained cause), else None."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        name = getattr(err, "name", None) if isinstance(err, ImportError) else None
        if name and install_command(name):
            return name
        err = err.__cause__ or err.__context__
    return None


def missing_dependency_line(err: BaseException) -> str | None:
    """`FATAL missing dependency: ...; pip install ...` for an absent optional module, else None."""
    module = missing_module(err)
    if module is None:
        return None
    return (f"FATAL missing dependency: the optional module {module!r} is not installed "
            f"({type(err).__name__}: {' '.join(str(err).split())}); install it with: {install_command(module)}")
