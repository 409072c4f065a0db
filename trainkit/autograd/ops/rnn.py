"""Fused recurrent layers: one graph node per (layer, direction) of an RNN, LSTM or GRU.

Each op takes the whole time-major sequence ``x (T, B, I)``, the layer's
weights in PyTorch's layout (``w_ih (G*H, I)``, ``w_hh (G*H, H)``, optional
``b_ih``/``b_hh`` (G*H,)) and the initial state(s) ``h0 (B, H)`` (and ``c0``
for the LSTM). The forward pass computes the input projection of every time
step as one GEMM, then loops over time in numpy running only the recurrent
GEMM ``(B, H) @ (H, G*H)`` and a handful of vectorised elementwise calls per
step. The backward pass is backpropagation through time in numpy: one loop
over the steps in reverse producing the pre-activation gradients of all
steps, then the weight and input gradients as a few large GEMMs. No per-step
graph nodes exist, so the engine does not re-enter Python per small op.

Sigmoids are computed as ``0.5 * tanh(x / 2) + 0.5`` (exact identity, no
overflow) with the halving folded into a scaled copy of the gate rows of the
weights, so one ``tanh`` call covers every gate of a step. The LSTM keeps its
gates internally in the order (i, f, o, g) so that the three sigmoid gates
are one contiguous block; the gradients are returned in PyTorch's order
(i, f, g, o).

Outputs: ``RNNTanh``/``RNNReLU``/``GRU`` give the hidden states ``(T, B, H)``
(step t in row t also when running in reverse); ``LSTM`` gives ``(2, T, B, H)``,
hidden states then cell states, so that ``c_n`` is differentiable through the
same single-output node.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from ..function import Op
from ..threads import serial_blas

#: Time-step loops whose recurrent product (batch x hidden x gates*hidden) has fewer multiply-adds than
#: this run with numpy's BLAS on one thread (see :func:`~..threads.serial_blas`). Forward + backward of a
#: 2-layer LSTM at 2 threads, serial against threaded: batch 20 x hidden 200 (3.2M MACs a step) 1.06x,
#: batch 32 x 256 (8.4M, configs/shakespeare_char_lstm.yaml) 0.93x, batch 64 x 512 0.83x.
SERIAL_STEP_MACS = 1 << 22


def _step_blas(batch: int, w_hh: np.ndarray):
    """The BLAS threading for a layer's time-step loop (see SERIAL_STEP_MACS)."""
    return serial_blas() if batch * w_hh.shape[0] * w_hh.shape[1] < SERIAL_STEP_MACS else contextlib.nullcontext()


@functools.lru_cache(maxsize=64)
def _gate_layout(kind: str, h: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Internal gate row order and per-row scale (0.5 on sigmoid gates) of a model with hidden size h."""
    if kind == "LSTM":
        # internal (i, f, o, g): the three sigmoid gates contiguous; their rows pre-scaled by 1/2
        order = np.concatenate([np.arange(0, 2 * h), np.arange(3 * h, 4 * h), np.arange(2 * h, 3 * h)])
        return order, np.concatenate([np.full(3 * h, 0.5), np.ones(h)])
    if kind == "GRU":
        return np.arange(3 * h), np.concatenate([np.full(2 * h, 0.5), np.ones(h)])
    return np.arange(h), None


def _rows(w: np.ndarray, order: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """``w`` with its gate rows reordered (and scaled), as a new contiguous array."""
    out = w[order]
    if scale is not None:
        out *= scale.reshape((-1,) + (1,) * (w.ndim - 1))
    return out


class _Recurrent(Op):
    """Shared forward/backward frame; subclasses define the gates and the per-step recurrences.

    Inputs ``(x, w_ih, w_hh[, b_ih, b_hh], h0[, c0])``: ``bias`` says whether the
    biases are present. ``reverse`` runs the steps from T-1 down to 0.
    """

    gates = 1
    states = 1  # 2 for the LSTM (h0, c0)

    def __init__(self, reverse: bool = False, bias: bool = True):
        self.reverse, self.bias = reverse, bias

    # --- per-model hooks -----------------------------------------------------------------
    def _order(self, h: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Internal gate row order and the scale of each row (0.5 for sigmoid gates), or None."""
        return _gate_layout(type(self).__name__ if self.gates > 1 else "RNN", h)

    # --- frame ---------------------------------------------------------------------------
    def _split(self, rest):
        if self.bias:
            b_ih, b_hh, *state = rest
        else:
            b_ih = b_hh = None
            state = list(rest)
        return b_ih, b_hh, state

    def forward(self, x, w_ih, w_hh, *rest):
        b_ih, b_hh, state = self._split(rest)
        t_len, batch, n_in = x.shape
        h = w_hh.shape[1]
        order, scale = self._order(h)
        wi = _rows(w_ih, order, scale)
        wh = _rows(w_hh, order, scale)
        bi = bh = None
        if b_ih is not None:
            bi, bh = _rows(b_ih, order, scale), _rows(b_hh, order, scale)
        # the input projection of the whole sequence: one GEMM
        gx = np.matmul(x.reshape(t_len * batch, n_in), wi.T).reshape(t_len, batch, -1)
        steps = range(t_len - 1, -1, -1) if self.reverse else range(t_len)
        keep = self.needs is not None
        with _step_blas(batch, wh):
            out = self._run(gx, wh, bi, bh, state, steps, keep)
        if keep:
            self.x, self.w_ih, self.w_hh, self.state = x, w_ih, w_hh, state
            self.steps, self.out = steps, out
        return out

    def _prev(self, hs: np.ndarray, h0: np.ndarray) -> np.ndarray:
        """The state each step started from, in time order: (T, B, H)."""
        prev = np.empty_like(hs)
        if self.reverse:
            prev[-1] = h0
            prev[:-1] = hs[1:]
        else:
            prev[0] = h0
            prev[1:] = hs[:-1]
        return prev

    def backward(self, gy):
        needs = self.needs
        x, w_ih, w_hh = self.x, self.w_ih, self.w_hh
        t_len, batch, n_in = x.shape
        h = w_hh.shape[1]
        # dx_pre: gradients of the pre-activations fed by the input projection (T, B, *), one column per
        # row of w_ih listed by _x_cols; dh_pre: those fed by the recurrent GEMM (rows of w_hh, _h_cols);
        # hprev: the state each step started from; d_state: gradients of the initial state(s)
        with _step_blas(batch, w_hh):
            dx_pre, dh_pre, hprev, d_state = self._bptt(gy)
        xcols, hcols = self._x_cols(h), self._h_cols(h)
        gx = gw_ih = gw_hh = gb_ih = gb_hh = None
        flat_x = dx_pre.reshape(t_len * batch, -1)
        flat_h = dh_pre.reshape(t_len * batch, -1)
        if needs[0]:
            gx = np.matmul(flat_x, w_ih if xcols is None else w_ih[xcols]).reshape(x.shape)
        if needs[1]:
            gw_ih = _unpermute(np.matmul(flat_x.T, x.reshape(t_len * batch, n_in)), xcols)
        if needs[2]:
            gw_hh = _unpermute(np.matmul(flat_h.T, hprev.reshape(t_len * batch, h)), hcols)
        grads = [gx, gw_ih, gw_hh]
        if self.bias:
            if needs[3]:
                gb_ih = _unpermute(flat_x.sum(axis=0), xcols)
            if needs[4]:
                gb_hh = _unpermute(flat_h.sum(axis=0), hcols)
            grads += [gb_ih, gb_hh]
        k = len(grads)
        for i, d in enumerate(d_state):
            grads.append(d if needs[k + i] else None)
        return tuple(grads)

    def _x_cols(self, h: int):
        """Row of w_ih (PyTorch's order) of each column of the input-side gradients; None: the identity."""
        return None

    def _h_cols(self, h: int):
        """Row of w_hh of each column of the recurrent-side gradients; None: the identity."""
        return None


def _unpermute(g: np.ndarray, cols) -> np.ndarray:
    """Rows of ``g`` computed in the order ``cols`` (rows of the weight), back in the weight's order."""
    if cols is None:
        return g
    out = np.empty_like(g)
    out[cols] = g
    return out


class RNNTanh(_Recurrent):
    """Elman RNN layer ``h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`` over a whole sequence."""

    def _act(self, a):
        np.tanh(a, out=a)

    def _dact(self, hs, dh):
        return dh * (1.0 - hs * hs)

    def _run(self, gx, wh, bi, bh, state, steps, keep):
        if bi is not None:
            gx += bi + bh
        out = np.empty(gx.shape, gx.dtype)
        wht = np.ascontiguousarray(wh.T)  # a transposed view measured 1.7x slower per step GEMM
        h = state[0]
        for t in steps:
            a = out[t]
            np.matmul(h, wht, out=a)
            a += gx[t]
            self._act(a)
            h = a
        return out

    def _bptt(self, gy):
        out, w_hh = self.out, self.w_hh
        d = np.empty_like(out)
        dh = None
        for t in reversed(self.steps):
            g = gy[t] if dh is None else gy[t] + dh
            dt = d[t]
            dt[...] = self._dact(out[t], g)
            dh = np.matmul(dt, w_hh)
        return d, d, self._prev(out, self.state[0]), [dh]


class RNNReLU(RNNTanh):
    """Elman RNN layer with ReLU: ``h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)``."""

    def _act(self, a):
        np.maximum(a, 0, out=a)

    def _dact(self, hs, dh):
        return dh * (hs > 0)


class LSTM(_Recurrent):
    """LSTM layer (PyTorch's gates i, f, g, o): outputs ``(2, T, B, H)``, hidden then cell states."""

    gates = 4
    states = 2

    def _run(self, gx, wh, bi, bh, state, steps, keep):
        t_len, batch, g4 = gx.shape
        h = g4 // 4
        if bi is not None:
            gx += bi + bh
        out = np.empty((2, t_len, batch, h), gx.dtype)
        acts = np.empty(gx.shape, gx.dtype) if keep else np.empty((1, batch, g4), gx.dtype)
        wht = np.ascontiguousarray(wh.T)  # a transposed view measured 1.7x slower per step GEMM
        hp, cp = state
        tmp = np.empty((batch, h), gx.dtype)
        for t in steps:
            a = acts[t] if keep else acts[0]
            np.matmul(hp, wht, out=a)
            a += gx[t]
            np.tanh(a, out=a)
            s = a[:, :3 * h]
            s *= 0.5
            s += 0.5
            ct, ht = out[1, t], out[0, t]
            np.multiply(a[:, h:2 * h], cp, out=ct)
            np.multiply(a[:, :h], a[:, 3 * h:], out=tmp)
            ct += tmp
            np.tanh(ct, out=ht)
            ht *= a[:, 2 * h:3 * h]
            hp, cp = ht, ct
        if keep:
            self.acts = acts
        return out

    def _bptt(self, gy):
        out, acts, w_hh = self.out, self.acts, self.w_hh
        t_len, batch, g4 = acts.shape
        h = g4 // 4
        hs, cs = out[0], out[1]
        i, f, o, g = acts[..., :h], acts[..., h:2 * h], acts[..., 2 * h:3 * h], acts[..., 3 * h:]
        # Every factor that does not depend on the incoming gradient, for all steps at once (PyTorch's
        # gate order i, f, g, o): the step loop then makes a few calls per step.
        tc = np.tanh(cs)
        od = o * (1.0 - tc * tc)  # d h / d c
        p = np.empty(acts.shape, acts.dtype).reshape(t_len, batch, 4, h)
        np.multiply(g, i * (1.0 - i), out=p[:, :, 0])
        np.multiply(self._prev(cs, self.state[1]), f * (1.0 - f), out=p[:, :, 1])
        np.multiply(i, 1.0 - g * g, out=p[:, :, 2])
        np.multiply(tc, o * (1.0 - o), out=p[:, :, 3])
        del tc
        state_grad = gy[1].any()  # c_n (or any cell state) used downstream: rarely
        d = np.empty(acts.shape, acts.dtype)
        d4 = d.reshape(t_len, batch, 4, h)
        dh = dc = None
        for t in reversed(self.steps):
            if dh is None:
                gh = gy[0, t]
                dct = gh * od[t]
            else:
                dh += gy[0, t]
                gh = dh
                dct = gh * od[t]
                dct += dc
            if state_grad:
                dct += gy[1, t]
            np.multiply(dct[:, None, :], p[t, :, :3], out=d4[t, :, :3])
            np.multiply(gh, p[t, :, 3], out=d4[t, :, 3])
            dc = dct * f[t]
            dh = np.matmul(d[t], w_hh)
        return d, d, self._prev(hs, self.state[0]), [dh, dc]

class GRU(_Recurrent):
    """GRU layer (PyTorch's gates r, z, n; ``n = tanh(x W_inᵀ + b_in + r * (h W_hnᵀ + b_hn))``)."""

    gates = 3

    def _run(self, gx, wh, bi, bh, state, steps, keep):
        t_len, batch, g3 = gx.shape
        h = g3 // 3
        bn = None
        if bi is not None:
            gx += bi
            gx[:, :, :2 * h] += bh[:2 * h]  # r and z take both biases before the nonlinearity
            bn = bh[2 * h:]
        out = np.empty((t_len, batch, h), gx.dtype)
        n_keep = t_len if keep else 1
        ghn = np.empty((n_keep, batch, h), gx.dtype)  # h W_hnᵀ + b_hn, needed for dr
        rz = np.empty((n_keep, batch, 2 * h), gx.dtype)
        ns = np.empty((n_keep, batch, h), gx.dtype)
        wht = np.ascontiguousarray(wh.T)  # a transposed view measured 1.7x slower per step GEMM
        gh = np.empty((batch, 3 * h), gx.dtype)
        hp = state[0]
        for t in steps:
            k = t if keep else 0
            np.matmul(hp, wht, out=gh)
            r_z = rz[k]
            np.add(gx[t, :, :2 * h], gh[:, :2 * h], out=r_z)
            np.tanh(r_z, out=r_z)
            r_z *= 0.5
            r_z += 0.5
            hn = ghn[k]
            hn[...] = gh[:, 2 * h:]
            if bn is not None:
                hn += bn
            n = ns[k]
            np.multiply(r_z[:, :h], hn, out=n)
            n += gx[t, :, 2 * h:]
            np.tanh(n, out=n)
            ht = out[t]
            np.subtract(hp, n, out=ht)
            ht *= r_z[:, h:]
            ht += n
            hp = ht
        if keep:
            self.rz, self.ghn, self.ns = rz, ghn, ns
        return out

    def _bptt(self, gy):
        out, rz, ghn, ns, w_hh = self.out, self.rz, self.ghn, self.ns, self.w_hh
        t_len, batch, h = out.shape
        hprev = self._prev(out, self.state[0])
        # columns: [n_pre | r | z | hn]: the input side reads [:3H] (order n, r, z), the recurrent side [H:]
        d = np.empty((t_len, batch, 4 * h), out.dtype)
        dh = None
        for t in reversed(self.steps):
            g = gy[t] if dh is None else gy[t] + dh
            r, z, n = rz[t, :, :h], rz[t, :, h:], ns[t]
            dt = d[t]
            dn = dt[:, :h]
            np.multiply(g, 1.0 - z, out=dn)
            dn *= 1.0 - n * n
            np.multiply(dn, ghn[t], out=dt[:, h:2 * h])
            np.subtract(hprev[t], n, out=dt[:, 2 * h:3 * h])
            dt[:, 2 * h:3 * h] *= g
            dt[:, h:3 * h] *= rz[t] * (1.0 - rz[t])
            np.multiply(dn, r, out=dt[:, 3 * h:])
            dh = g * z
            dh += np.matmul(dt[:, h:], w_hh)
        return d[:, :, :3 * h], d[:, :, h:], hprev, [dh]

    def _x_cols(self, h: int):
        # the input-side columns are [n_pre | r | z]
        return np.concatenate([np.arange(2 * h, 3 * h), np.arange(0, 2 * h)])
