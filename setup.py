"""keras-regnet: RegNetX/RegNetY and AnyNet for Keras 3, with training, export and design-space tools."""

from setuptools import find_packages, setup

TEST = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "pytest-xdist>=3.5",  # the suite runs test files in parallel workers (pytest.ini, tests/conftest.py)
    "scikit-learn>=1.3",
    "pillow>=9",  # the augmentation ops are checked against Pillow's (tests/training/test_augment_policies.py)
    "scipy>=1.10",  # the sampling-law and latency-statistics tests (already a scikit-learn dependency)
    "matplotlib>=3.7",
    "tf-keras==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-datasets==4.9.10",
    "importlib_resources>=6.0",
]
# ONNX export (tflite.onnx_export): tested with tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0 beside
# tensorflow 2.21 / numpy 2.4 / protobuf 7 (tf2onnx 1.17 is the first release that accepts them).
ONNX = ["tf2onnx==1.17.0", "onnx>=1.17", "onnxruntime>=1.20"]
TEST += ONNX
# Keras 3's JAX backend (tests/keras_regnet/test_backends.py): jax 0.10.2 (CPU jaxlib from PyPI) works beside
# tensorflow 2.21 / keras 3.15 / numpy 2.4 / ml_dtypes 0.6 (jax needs numpy>=2.0, ml_dtypes>=0.5).
JAX = ["jax==0.10.2"]
TEST += JAX
# keras-hub presets (keras_regnet.hub): keras-hub 0.32.0 installs beside tensorflow 2.21 / keras 3.15.1 /
# protobuf 7 / numpy 2.4 without changing them (it adds tensorflow-text 2.21.1, huggingface-hub, kagglehub).
HUB = ["keras-hub==0.32.0"]
TEST += HUB
# keras-hub's own test harness (keras_hub/src/tests/test_case.py, tests/keras_regnet/test_hub_harness.py) imports
# grain; 0.2.18 installs beside the pins above.
TEST += ["grain>=0.2.18"]
# TF Serving warm-up requests (tflite.serving_warmup): the PredictionLog protos; 2.21.0 matches tensorflow.
SERVING = ["tensorflow-serving-api==2.21.0"]
TEST += SERVING
# Not an extra: MediaPipe (the Android check in tests/tflite/test_metadata.py) needs absl-py~=2.3, which
# tensorflow-model-optimization 0.8.1 (absl-py~=1.2) refuses; the test runs where mediapipe is installed.
# LiteRT is in the base install: every export verifies its .tflite files on it and tflite.predict runs
# on it. ai-edge-litert 2.x has wheels for each platform TensorFlow 2.21 has (manylinux_2_27 x86_64
# and aarch64, macOS arm64, Windows amd64; CPython 3.10-3.13). The `tflite` extra stays for old commands.
LITERT = "ai-edge-litert>=2.0"

setup(
    name="keras-regnet",
    version="0.1.0",
    description="RegNet (Designing Network Design Spaces) for Keras 3: zoo, training, TFLite, design spaces",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=find_packages(include=["keras_regnet*", "training*", "tflite*", "design_lab*"]),
    package_data={"keras_regnet": ["data/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "keras>=3.10",
        "numpy>=1.26",
        "absl-py>=1.4",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "safetensors>=0.4",
        LITERT,
    ],
    extras_require={
        "test": TEST,
        "qat": ["tf-keras==2.21.0", "tensorflow-model-optimization==0.8.1"],
        "tflite": [LITERT] + SERVING,
        "hub": HUB,
        "onnx": ONNX,
        "jax": JAX,
        "data": ["tensorflow-datasets==4.9.10", "importlib_resources>=6.0"],
    },
)
