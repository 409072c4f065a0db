"""The intra-op thread pool: every piece runs once, errors come back, results do not depend on threads."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import trainkit as tk
import trainkit.nn as nn
import trainkit.optim as optim
import trainkit.nn.functional as F
from trainkit import blasenv
from trainkit.autograd import threads
from trainkit.autograd.ops import conv as conv_ops
from trainkit.autograd.ops import jit


def test_split_covers_the_range_in_order():
    assert threads.split(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert threads.split(2, 5) == [(0, 2)]
    assert threads.split(3, 0) == [(0, 1), (1, 2), (2, 3)]  # a size below 1 means one item per piece
    assert threads.split(0, 4) == []


def test_every_piece_runs_exactly_once(two_threads):
    hits = np.zeros(101, int)

    def piece(a, e):
        hits[a:e] += 1

    threads.parallel_for(piece, threads.split(101, 3))
    assert (hits == 1).all()


def test_the_worker_thread_takes_pieces(two_threads):
    # piece 0 waits until another piece has started on another thread: only a working pool gets past it
    started = threading.Event()
    names = set()

    def piece(i):
        names.add(threading.current_thread().name)
        if i == 0:
            assert started.wait(10), "no piece ran on a second thread"
        else:
            started.set()

    threads.parallel_for(piece, [(i,) for i in range(2)])
    assert len(names) == 2


def test_an_error_in_a_piece_is_raised_and_the_pool_keeps_working(two_threads):
    def piece(a, e):
        if a == 4:
            raise KeyError("piece 4")

    with pytest.raises(KeyError, match="piece 4"):
        threads.parallel_for(piece, threads.split(8, 1))
    out = np.zeros(8)

    def fill(a, e):
        out[a:e] = a

    threads.parallel_for(fill, threads.split(8, 1))
    assert out.tolist() == list(range(8))


def test_nested_calls_run_serially_inside_a_piece(two_threads):
    inner_threads = []

    def inner(a, e):
        inner_threads.append(threading.current_thread().name)

    def outer(a, e):
        before = len(inner_threads)
        threads.parallel_for(inner, threads.split(4, 1))
        assert len(set(inner_threads[before:])) == 1  # all four inner pieces on this piece's thread

    threads.parallel_for(outer, threads.split(2, 1))
    assert len(inner_threads) == 8


def test_set_num_threads_checks_its_argument_and_sets_blas():
    prev = tk.get_num_threads()
    try:
        with pytest.raises(ValueError):
            tk.set_num_threads(0)
        tk.set_num_threads(3)
        assert tk.get_num_threads() == 3
        info = threads.blas_info()
        if info is not None:  # numpy's OpenBLAS follows, as torch.set_num_threads sets torch's
            assert info.endswith("3 threads")
            threads.parallel_for(lambda a, e: None, threads.split(4, 1))
            assert threads.blas_info().endswith("3 threads")  # restored after the one-thread section
    finally:
        tk.set_num_threads(prev)


def _train_steps(model, xs, ys):
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    crit = nn.CrossEntropyLoss()
    for x, y in zip(xs, ys):
        opt.zero_grad()
        loss = crit(model(tk.tensor(x)), tk.tensor(y))
        loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()], loss.item()


def _small_resnet():
    tk.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


@pytest.mark.parametrize("use_jit", [False, True])
def test_training_gives_bitwise_the_same_weights_with_one_and_two_threads(monkeypatch, use_jit):
    if use_jit and not _numba_available():
        pytest.skip("numba not installed")
    prev_jit = jit.set_enabled(use_jit)
    monkeypatch.setattr(conv_ops, "COLUMN_CHUNK_BYTES", 20000)  # several pieces per op at this size
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((13, 3, 16, 16)).astype(np.float32) for _ in range(3)]  # odd batch
    ys = [rng.integers(0, 10, 13) for _ in range(3)]
    prev = tk.get_num_threads()
    try:
        tk.set_num_threads(1)
        one = _train_steps(_small_resnet(), xs, ys)
        tk.set_num_threads(2)
        two = _train_steps(_small_resnet(), xs, ys)
    finally:
        tk.set_num_threads(prev)
        jit.set_enabled(prev_jit)
    assert one[1] == two[1]
    for a, b in zip(one[0], two[0]):
        np.testing.assert_array_equal(a, b)


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def test_conv_pieces_on_two_threads_match_one_piece(two_threads, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 4, 10, 10))
    w = rng.standard_normal((6, 4, 3, 3))
    results = []
    for chunk in (1, 1 << 30):  # one image per piece, then the whole batch in one piece
        monkeypatch.setattr(conv_ops, "COLUMN_CHUNK_BYTES", chunk)
        xt, wt = tk.tensor(x, requires_grad=True), tk.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, padding=1)
        (y * y).sum().backward()
        results.append((y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(200, 300, 150), (33, 3072, 512), (512, 128, 3072), (7, 5, 3), (1, 800, 400)])
def test_split_matmul_matches_numpy(shape):
    m, k, n = shape
    rng = np.random.default_rng(6)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    prev = tk.get_num_threads()
    try:
        tk.set_num_threads(1)
        one = threads.matmul(a, b)
        tk.set_num_threads(2)
        two = threads.matmul(a, b)
        fortran = threads.matmul(a, np.asfortranarray(b))  # a transposed operand (Linear's w.T)
    finally:
        tk.set_num_threads(prev)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for got in (one, two, fortran):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
        assert got.dtype == np.float32 and got.shape == (m, n)


def test_split_elementwise_matches_the_plain_ufunc(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "ELEMENTWISE_MIN_BYTES", 0)
    monkeypatch.setattr(threads, "ELEMENTWISE_PIECE_BYTES", 40)  # 10 float32 per piece, a ragged last one
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    y = rng.standard_normal((3, 5, 7)).astype(np.float32)
    cases = [(np.maximum, x, 0), (np.greater, x, 0), (np.add, x, y), (np.negative, x, None),
             (np.multiply, x, y > 0), (np.add, x, y[:, :, ::-1])]  # the last: strided, the plain path
    for f, a, b in cases:
        got = threads.elementwise(f, a, b)
        want = f(a) if b is None else f(a, b)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    # ReLU and the residual Add take this path for large tensors; their gradients are unchanged
    xt = tk.tensor(x, requires_grad=True)
    (F.relu(xt) + tk.tensor(y)).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), (x > 0).astype(np.float32))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_workers(two_threads):
    import os
    threads.parallel_for(lambda a, e: None, threads.split(4, 1))  # the parent's worker exists
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a parallel_for must finish, with a fresh worker thread
        try:
            out = np.zeros(8)

            def fill(a, e):
                out[a:e] = 1

            threads.parallel_for(fill, threads.split(8, 1))
            os.write(w, b"ok" if out.sum() == 8 and len(threads._workers) == 1 else b"bad")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 8) == b"ok"


# ----------------------------------------------------------------------------- OpenBLAS's idle spin (blasenv)
SPIN_PROBE = """
import os, sys, time
{first}
import trainkit
import numpy as np
from trainkit.autograd import threads
trainkit.set_num_threads(2)
a = np.ones((512, 2048), np.float32)
b = np.ones((2048, 512), np.float32)
for _ in range(3):
    a @ b
t0 = time.process_time()
time.sleep(0.3)
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), threads._SHORT_SPIN, f"{{time.process_time() - t0:.3f}}")
"""


def _spin_probe(first: str = "", **env) -> tuple[str, str, float]:
    environ = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")}
    r = subprocess.run([sys.executable, "-c", SPIN_PROBE.format(first=first)], capture_output=True, text=True,
                       env={**environ, **env}, timeout=120)
    assert r.returncode == 0, r.stderr
    value, short, cpu = r.stdout.split()
    return value, short, float(cpu)


@pytest.mark.skipif(threads._blas.set is None or len(os.sched_getaffinity(0)) < 2,
                    reason="needs numpy's OpenBLAS and two cores")
def test_openblas_idle_threads_sleep_instead_of_spinning_after_a_product():
    """Imported before numpy, trainkit sets OPENBLAS_THREAD_TIMEOUT: after a threaded product, OpenBLAS's
    worker uses no CPU while the process sleeps (with OpenBLAS's default it spins ~0.1 s). A user's value
    stands, and numpy imported first leaves everything as it was (products then go to the pool)."""
    value, short, cpu = _spin_probe()
    assert (value, short) == (str(blasenv.SPIN_EXPONENT), "True") and cpu < 0.02
    value, short, cpu = _spin_probe(OPENBLAS_THREAD_TIMEOUT="28")  # the user's choice: OpenBLAS's default
    assert (value, short) == ("28", "False") and cpu > 0.03
    value, short, cpu = _spin_probe(first="import numpy")  # too late to change OpenBLAS
    assert (value, short) == ("None", "False")


def test_matmul_is_the_same_through_openblas_threads_or_the_pool(monkeypatch, two_threads):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((128, 3072)).astype(np.float32)
    w = rng.standard_normal((512, 3072)).astype(np.float32)
    outs = []
    for short in (True, False):
        monkeypatch.setattr(threads, "_SHORT_SPIN", short)
        outs.append(threads.matmul(a, w.T))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(threads._blas.set is None, reason="needs numpy's OpenBLAS")
def test_serial_blas_sets_one_thread_for_the_block_and_restores_it(two_threads):
    assert threads._blas.get() == 2
    with pytest.raises(ValueError):
        with threads.serial_blas():
            assert threads._blas.get() == 1
            raise ValueError
    assert threads._blas.get() == 2


def test_small_recurrent_layers_step_with_serial_blas_and_large_ones_do_not(monkeypatch, two_threads):
    from trainkit.autograd.ops import rnn
    seen = []
    real = rnn.serial_blas

    def spy():
        seen.append(True)
        return real()

    monkeypatch.setattr(rnn, "serial_blas", spy)
    for hidden, batch, serial in ((16, 4, True), (256, 32, False)):
        seen.clear()
        lstm = nn.LSTM(8, hidden)
        out, _ = lstm(tk.randn(3, batch, 8))
        out.sum().backward()
        assert bool(seen) == serial, (hidden, batch)
