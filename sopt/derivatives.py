"""Derivatives of the network by error backpropagation.

Pure functions of (net, w, forward pass); the Objective wraps them. Every pass
is a few matrix products over the whole batch; loops run over layers and edges
only, never over patterns or units.
"""
from __future__ import annotations

import numpy as np

from .network import ForwardPass, Network

Array = np.ndarray


def weight_gradient(net: Network, w: Array, fp: ForwardPass, delta_out: Array,
                    out: Array | None = None) -> Array:
    """sum_n dE_n/dw by backpropagation, shape (W,). Cost Theta(N W).

    dE_n/dw_ji = delta_j z_i (PRML eq. 5.53) with delta from Network.backward;
    biases get sum_n delta_j. Masked weights get exactly zero.

    Parameters
    ----------
    delta_out : (N, K)
        dE_n/da at the output layer.
    out : (W,), optional
        Written in place (every entry is overwritten).
    """
    if out is None:
        out = np.empty(net.n_weights)
    deltas = net.backward(w, fp, delta_out)
    for layer, delta in zip(net.layers, deltas):
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            G = out[s].reshape(layer.size, src.size)
            np.matmul(delta.T, fp.z[src.index], out=G)
            if m is not None:
                G *= m
        np.sum(delta, axis=0, out=out[layer.bias_slice])
    return out


def pattern_sensitivities(net: Network, w: Array, fp: ForwardPass,
                          seeds: Array) -> Array:
    """Per-pattern derivatives of P signals with respect to w, shape (N, P, W).

    ``seeds`` (N, P, K) are d(signal_p)/da_out; with the identity they give
    d a_out / dw (rows of the Gauss-Newton Jacobian), with dy/da_out they give
    dy/dw. Cost Theta(P N W), memory N P W doubles.
    """
    N, P = seeds.shape[:2]
    out = np.empty((N, P, net.n_weights))
    deltas = net.backward(w, fp, seeds)
    for layer, delta in zip(net.layers, deltas):
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            G = delta[:, :, :, None] * fp.z[src.index][:, None, None, :]
            if m is not None:
                G *= m
            out[:, :, s] = G.reshape(N, P, -1)
        out[:, :, layer.bias_slice] = delta
    return out
