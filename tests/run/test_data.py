import hashlib

import pytest
import torch

from nanobench.errors import InputError
from nanobench.run import data


def test_tinyshakespeare_from_data_dir(tmp_path):
    import lzma

    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_bytes(
        lzma.decompress(data.SHIPPED_TINYSHAKESPEARE.read_bytes())
    )
    ds = data.load_dataset("tinyshakespeare", data_dir=str(tmp_path))
    assert ds.source == str(tmp_path / "tinyshakespeare" / "input.txt")
    assert ds.n_chars == 1_115_394 and ds.vocab_size == 65
    assert ds.sha256 == data.TINYSHAKESPEARE_SHA256
    assert (ds.train.numel(), ds.val.numel()) == (1_003_854, 111_540)
    assert ds.decode(ds.train[:13].tolist()) == "First Citizen"


def test_shipped_copy_serves_without_data_dir_cache_or_network(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ds = data.load_dataset(
        "tinyshakespeare", data_dir=str(tmp_path / "empty"), url="http://127.0.0.1:9/x", timeout_s=1
    )
    assert ds.sha256 == data.TINYSHAKESPEARE_SHA256 and ds.n_chars == 1_115_394
    assert (
        "shipped" in ds.source and not (tmp_path / "cache").exists()
    )  # nothing downloaded or cached


def test_a_damaged_shipped_copy_is_not_used(tmp_path, monkeypatch):
    import lzma

    bad = tmp_path / "tinyshakespeare.txt.xz"
    bad.write_bytes(lzma.compress(b"To be or not to be " * 100))  # decompresses, wrong sha256
    monkeypatch.setattr(data, "SHIPPED_TINYSHAKESPEARE", bad)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(InputError, match="missing or damaged"):
        data.load_dataset(
            "tinyshakespeare",
            data_dir=str(tmp_path / "empty"),
            url="http://127.0.0.1:9/x",
            timeout_s=1,
        )


def test_missing_dataset_without_network_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "SHIPPED_TINYSHAKESPEARE", tmp_path / "not-installed.xz")
    with pytest.raises(InputError) as err:
        # An address nothing listens on stands for "no network": the real download code runs.
        data.load_dataset(
            "tinyshakespeare",
            data_dir=str(tmp_path / "empty"),
            url="http://127.0.0.1:9/input.txt",
            timeout_s=2,
        )
    msg = str(err.value)
    assert "\n" not in msg
    assert "dataset 'tinyshakespeare' not found" in msg and "NANOBENCH_DATA_DIR" in msg


def test_wrong_checksum_in_data_dir_is_refused(tmp_path):
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("not shakespeare " * 20)
    with pytest.raises(InputError, match="sha256 does not match"):
        data.load_dataset("tinyshakespeare", data_dir=str(tmp_path))


def test_download_is_verified_and_cached(tmp_path, monkeypatch):
    """A real HTTP download from a local server: good bytes are cached, bad ones refused."""
    import http.server
    import threading

    src = tmp_path / "srv"
    src.mkdir()
    payload = b"tampered text " * 100
    (src / "input.txt").write_bytes(payload)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(src), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NANOBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(
        data, "SHIPPED_TINYSHAKESPEARE", tmp_path / "not-installed.xz"
    )  # the download path
    url = f"http://127.0.0.1:{server.server_address[1]}/input.txt"
    try:
        with pytest.raises(InputError, match="sha256"):
            data.load_dataset("tinyshakespeare", data_dir=None, url=url)
        monkeypatch.setattr(data, "TINYSHAKESPEARE_SHA256", hashlib.sha256(payload).hexdigest())
        ds = data.load_dataset("tinyshakespeare", data_dir=None, url=url)
        assert ds.n_chars == len(payload)
        assert (
            tmp_path / "cache" / "nanobench" / "tinyshakespeare" / "input.txt"
        ).read_bytes() == payload
    finally:
        server.shutdown()


def test_text_file_dataset_and_bad_files(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("hello world, " * 50, encoding="utf-8")
    ds = data.load_dataset(str(p))
    assert ds.name == "corpus" and ds.vocab_size == len(set("hello world, "))
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\xff\xfe" * 100)
    with pytest.raises(InputError, match="not UTF-8"):
        data.load_dataset(str(bad))
    with pytest.raises(InputError, match="neither"):
        data.load_dataset(str(tmp_path / "missing.txt"))


def test_synthetic_corpus_is_fixed():
    a, b = data.load_dataset("synthetic"), data.load_dataset("synthetic")
    assert a.sha256 == b.sha256 and a.n_chars == 60_000
    assert torch.equal(a.train, b.train)


def test_training_batches_are_contiguous():
    """Strided views would be staged through pageable memory by a pinned non-blocking copy,
    making the host wait for the GPU every step (see Device.to_device)."""
    x, y = data.Batches(data.load_dataset("synthetic"), 4, 8, 2, seed=1).train(0)
    assert x.is_contiguous() and y.is_contiguous()


def test_batches_depend_on_seed_and_iteration_only():
    ds = data.load_dataset("synthetic")
    b1 = data.Batches(ds, batch_size=4, block_size=8, grad_accum=2, seed=1)
    b2 = data.Batches(ds, batch_size=4, block_size=8, grad_accum=2, seed=1)
    x, y = b1.train(5)
    assert x.shape == (2, 4, 8) and y.shape == (2, 4, 8)
    assert torch.equal(y[..., :-1], x[..., 1:])  # targets are inputs shifted by one
    b2.train(0), b2.train(1)  # drawing other iterations first changes nothing
    assert torch.equal(b2.train(5)[0], x)
    assert not torch.equal(b1.train(6)[0], x)
    assert not torch.equal(data.Batches(ds, 4, 8, 2, seed=2).train(5)[0], x)


def test_eval_batches_are_fixed_and_independent_of_the_training_stream():
    ds = data.load_dataset("synthetic")
    a = data.Batches(ds, 4, 8, 1, seed=1).fixed("val", 3)
    b = data.Batches(ds, 4, 8, 1, seed=2).fixed("val", 3)
    assert a.shape == (3, 4, 9)
    assert torch.equal(a, b)  # every run of a scenario is scored on the same text


def test_block_size_larger_than_split_is_refused():
    ds = data.load_dataset("synthetic")
    with pytest.raises(InputError, match="block_size = 10000 does not fit the val split"):
        data.Batches(ds, 4, 10_000, 1, seed=1)


def test_derived_seeds_are_distinct_and_stable():
    assert data.derive_seed(1337, "train", 1) != data.derive_seed(1338, "train", 0)
    assert data.derive_seed(1337, "train", 1) == data.derive_seed(1337, "train", 1)
    assert 0 <= data.derive_seed(2**40, "x", 10**9) < 2**63
