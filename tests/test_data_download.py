"""Downloads against a local HTTP server on 127.0.0.1: good file, wrong checksum, cut connection, mirrors."""
from __future__ import annotations

import gzip
import hashlib
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from trainkit.data import download_file
from trainkit.data.datasets import MNIST
from trainkit.errors import DataError

PAYLOAD = bytes(range(256)) * 400
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def _mnist_blobs():
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([3, 1, 4], np.uint8)
    img = struct.pack(">IIII", 2051, 3, 28, 28) + images.tobytes()
    lab = struct.pack(">II", 2049, 3) + labels.tobytes()
    return {f"{p}-images-idx3-ubyte.gz": gzip.compress(img) for p in ("train", "t10k")} | \
           {f"{p}-labels-idx1-ubyte.gz": gzip.compress(lab) for p in ("train", "t10k")}


MNIST_FILES = _mnist_blobs()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/good/") or self.path.startswith("/mnist/"):
            body = PAYLOAD if self.path.startswith("/good/") else MNIST_FILES.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/wrong/"):
            body = PAYLOAD[::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/cut/"):
            # Announce the whole file, send a third of it, then drop the connection.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _leftovers(folder):
    return [p.name for p in folder.iterdir()] if folder.exists() else []


def test_good_download_is_checked_and_renamed_into_place(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    assert download_file(f"{server}/good/file.bin", dest, MD5, timeout=5) == dest
    assert dest.read_bytes() == PAYLOAD and _leftovers(dest.parent) == ["file.bin"]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError) as err:
        download_file(f"{server}/wrong/file.bin", dest, MD5, timeout=5)
    assert "MD5" in str(err.value) and f"place it at {dest}" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_cut_connection_leaves_nothing_and_retry_works(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="file.bin"):
        download_file(f"{server}/cut/file.bin", dest, MD5, timeout=5)
    assert _leftovers(tmp_path) == []
    # Even without a checksum, a short body is never taken as complete.
    with pytest.raises(DataError, match="closed after"):
        download_file(f"{server}/cut/file.bin", dest, None, timeout=5)
    assert _leftovers(tmp_path) == []
    download_file(f"{server}/good/file.bin", dest, MD5, timeout=5)
    assert dest.read_bytes() == PAYLOAD


def test_mirrors_fail_over_in_order(server, tmp_path):
    dest = tmp_path / "file.bin"
    urls = [f"{server}/missing/file.bin", f"{server}/cut/file.bin", f"{server}/good/file.bin"]
    download_file(urls, dest, MD5, timeout=5)
    assert dest.read_bytes() == PAYLOAD and _leftovers(tmp_path) == ["file.bin"]


def test_offline_error_says_where_to_place_the_file(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    dest = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(DataError) as err:
        download_file(f"http://127.0.0.1:{port}/x.tar.gz", dest, "abc", timeout=2)
    assert f"place it at {dest}" in str(err.value) and f"127.0.0.1:{port}" in str(err.value)


def test_mnist_download_true_uses_mirrors_and_checksums(server, tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", (f"{server}/missing/", f"{server}/mnist/"))
    monkeypatch.setattr(MNIST, "resources", {k: hashlib.md5(v).hexdigest() for k, v in MNIST_FILES.items()})
    ds = MNIST(tmp_path, train=True, download=True)
    assert list(ds.targets) == [3, 1, 4] and (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    assert sorted(_leftovers(tmp_path / "MNIST" / "raw")) == ["train-images-idx3-ubyte.gz",
                                                              "train-labels-idx1-ubyte.gz"]


def test_cifar_download_true_fetches_the_python_archive(server, tmp_path, monkeypatch):
    import io
    import pickle
    import tarfile

    from trainkit.data.datasets import CIFAR10

    def batch(n):
        return pickle.dumps({b"data": np.full((n, 3072), 7, np.uint8), b"labels": [1] * n}, protocol=2)

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(2) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(1)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"n%d" % i for i in range(10)]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    MNIST_FILES["cifar-10-python.tar.gz"] = buf.getvalue()  # served under /mnist/
    monkeypatch.setattr(CIFAR10, "url_base", f"{server}/mnist/")
    monkeypatch.setattr(CIFAR10, "py_md5", hashlib.md5(buf.getvalue()).hexdigest())
    ds = CIFAR10(tmp_path, train=True, download=True)
    assert len(ds) == 10 and (tmp_path / "cifar-10-python.tar.gz").is_file()
    monkeypatch.setattr(CIFAR10, "py_md5", "0" * 32)
    with pytest.raises(DataError, match="MD5"):
        CIFAR10(tmp_path / "other", download=True)
    assert not (tmp_path / "other" / "cifar-10-python.tar.gz").exists()
