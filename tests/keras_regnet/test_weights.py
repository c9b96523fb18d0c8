"""weights="imagenet": sources, download through a local HTTP server, cache reuse, integrity and
offline errors. No network: the test serves a checkpoint it writes itself via $HF_ENDPOINT."""

import contextlib
import dataclasses
import functools
import http.server
import os
import re
import socket
import threading

import numpy as np
import pytest

from tests.golden import equivalence as eq


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve `directory` on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A fake Hub tree holding RegNetX-200MF's golden weights as timm would publish them."""
    from safetensors.numpy import save_file

    from keras_regnet.pretrained.download import sha256_of
    from keras_regnet.pretrained.tags import default_preset

    meta, arrays = eq.load_case("regnetx_200mf")
    source = default_preset("regnetx_200mf")
    root = tmp_path_factory.mktemp("hub")
    folder = root / source.hf_repo / "resolve" / "main"
    folder.mkdir(parents=True)
    path = folder / source.filename
    save_file({k: np.ascontiguousarray(v) for k, v in eq.to_timm(eq.reference_state(meta, arrays)).items()},
              str(path))
    return root, sha256_of(str(path)), meta, arrays


def test_sources_cover_the_zoo_with_timm_repositories():
    from keras_regnet import list_models
    from keras_regnet.pretrained.tags import default_preset

    sources = {name: default_preset(name) for name in list_models(beyond_paper=False)}
    assert len(sources) == 24
    assert default_preset("regnety_600mf").hf_repo == "timm/regnety_006.pycls_in1k"
    assert default_preset("regnetx_8.0gf").hf_repo == "timm/regnetx_080.pycls_in1k"
    assert default_preset("regnety_32gf").url("https://huggingface.co") == (
        "https://huggingface.co/timm/regnety_320.pycls_in1k/resolve/main/model.safetensors")
    for name, source in sources.items():
        assert re.fullmatch(r"timm/regnet[xy]_\d{3}\.pycls_in1k", source.hf_repo)
        assert re.fullmatch(r"https://dl\.fbaipublicfiles\.com/pycls/dds_baselines/\d+/RegNet[XY]-[\d.]+[MG]F_dds_8gpu\.pyth",
                            source.origin_url)
        assert source.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", source.sha256)
    assert len({s.hf_repo for s in sources.values()}) == 24


def test_cache_dir_respects_keras_home(keras_home):
    from keras_regnet.pretrained.download import keras_cache_dir

    assert keras_cache_dir() == os.path.join(str(keras_home), "models")


def test_imagenet_downloads_converts_once_and_reuses(hub, keras_home, monkeypatch):
    from keras_regnet import RegNetX200MF
    from keras_regnet.presets import PRESETS

    root, digest, meta, arrays = hub
    source = PRESETS["regnetx_002.pycls_in1k"]
    monkeypatch.setitem(PRESETS, "regnetx_002.pycls_in1k", dataclasses.replace(source, sha256=digest))
    with serve(root) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        model = RegNetX200MF(weights="imagenet", classifier_activation=None, include_preprocessing=False)
    out = meta["outputs"][0]
    x = eq.case_inputs(meta, out)
    assert np.abs(np.asarray(model(x)) - arrays[out["key"]]).max() <= eq.TOLERANCE
    cache = keras_home / "models"
    assert sorted(os.listdir(cache)) == ["keras_regnet_regnetx_200mf_pycls_in1k.layers.npz"]  # arrays by layer name
    # Server gone: the converted file is reused, here for a headless variant with RGB 0-255 input.
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    features = RegNetX200MF(weights="imagenet", include_top=False, pooling="avg", name="custom")
    head = model.get_layer("predictions").get_weights()
    from keras_regnet import preprocess_input

    raw = np.clip(x * 50 + 127.5, 0, 255)
    np.testing.assert_allclose(np.asarray(features(raw)) @ head[0] + head[1],
                               np.asarray(model(preprocess_input(raw))), atol=1e-4)


def test_hash_mismatch_is_an_error_and_leaves_no_file(hub, keras_home, monkeypatch):
    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.download import WeightsDownloadError
    from keras_regnet.presets import PRESETS

    root, _, _, _ = hub
    source = PRESETS["regnetx_002.pycls_in1k"]
    monkeypatch.setitem(PRESETS, "regnetx_002.pycls_in1k", dataclasses.replace(source, sha256="0" * 64))
    with serve(root) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        with pytest.raises(WeightsDownloadError, match="SHA-256 mismatch"):
            RegNetX200MF(weights="imagenet")
    assert os.listdir(keras_home / "models") == []


def test_offline_error_says_what_to_download_and_where(keras_home, monkeypatch):
    from keras_regnet import RegNetY600MF
    from keras_regnet.pretrained.download import WeightsDownloadError

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ValueError) as info:
        RegNetY600MF(weights="imagenet")
    message = str(info.value)
    assert isinstance(info.value, WeightsDownloadError)
    assert "/timm/regnety_006.pycls_in1k/resolve/main/model.safetensors" in message
    assert str(keras_home / "models" / "keras_regnet_regnety_600mf_pycls_in1k.safetensors") in message
    assert "weights=" in message and "Traceback" not in message
    assert os.listdir(keras_home / "models") == []


def test_a_file_placed_by_hand_in_the_cache_is_used(hub, keras_home, monkeypatch):
    import shutil

    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import cached_paths

    root, _, meta, arrays = hub
    raw, converted = cached_paths(default_preset("regnetx_200mf"))
    os.makedirs(os.path.dirname(raw))
    shutil.copy(root / default_preset("regnetx_200mf").hf_repo / "resolve" / "main" / "model.safetensors", raw)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    RegNetX200MF(weights="imagenet")
    assert os.path.isfile(converted) and os.path.isfile(raw)  # the user's file is left in place


def test_a_corrupt_cached_file_is_reported(keras_home, monkeypatch):
    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import cached_paths

    raw, _ = cached_paths(default_preset("regnetx_200mf"))
    os.makedirs(os.path.dirname(raw))
    with open(raw, "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="delete it to download it again"):
        RegNetX200MF(weights="imagenet")


def test_imagenet_for_a_non_zoo_network_is_an_error():
    from keras_regnet import RegNet

    with pytest.raises(ValueError, match="only for the 24 zoo models"):
        RegNet(depth=5, w0=16, wa=12.0, wm=2.0, group_width=8, weights="imagenet")


def test_zoo_architecture_under_another_name_is_recognised():
    from keras_regnet import get_entry
    from keras_regnet.pretrained.tags import zoo_entry_for

    assert zoo_entry_for(get_entry("RegNetY-600MF").spec().replace(name="my_net")).name == "regnety_600mf"


def test_truncated_download_is_an_error(tmp_path):
    from keras_regnet.pretrained.download import WeightsDownloadError, download

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "f.bin"
        with pytest.raises(WeightsDownloadError, match="10 of 100 bytes|download failed"):
            download(f"http://127.0.0.1:{server.server_address[1]}/f", str(dest), timeout=10)
        assert os.listdir(tmp_path) == []
    finally:
        server.shutdown()
        server.server_close()
