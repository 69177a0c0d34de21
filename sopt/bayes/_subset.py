"""Subset structures: a dense posterior on some weights (the output layer's,
or any chosen ones), the others fixed at w_MAP (as laplace-torch's
LLLaplace for the last layer). The prior and the evidence then count the
covered weights only.

Memory 8 C^2 bytes for C covered weights. Cost Theta(K N W + K N C^2) to
build the block (the output sensitivities of every pattern, restricted),
C^3 / 3 per factorisation.
"""
from __future__ import annotations

import numpy as np

from .._validation import as_float_array
from ..derivatives import (SENSITIVITY_DOUBLES, gauss_newton_block, items_in_budget,
                           output_curvature_block)
from ._dense import DenseCurvature
from ._structure import StructureSpec

Array = np.ndarray


class Subset(StructureSpec):
    """A dense posterior on the weights ``indices`` (into the full weight
    vector; masked-out ones are dropped), the rest fixed at w_MAP. Its
    exact-Hessian block comes from the dense Hessian (small W only)."""

    name = "subset"

    def __init__(self, indices=None):
        self.indices = None if indices is None else _check_indices(indices)

    def columns(self, net) -> Array:
        if self.indices is None:
            raise ValueError("structure: Subset needs the indices of its weights, "
                             "e.g. sopt.bayes.Subset(np.arange(10))")
        if self.indices.size and self.indices.max() >= net.n_weights:
            raise ValueError(f"Subset: index {self.indices.max()} out of range for "
                             f"a network of {net.n_weights} weights")
        return self.indices

    def build(self, data, w_map, used, kind, clip_negative, max_bytes):
        cols = np.intersect1d(self.columns(data.net), used)
        curvature = DenseCurvature(cols, kind, self._block(data, w_map, cols, kind,
                                                           max_bytes), clip_negative)
        curvature.name = self.name
        return curvature

    def _block(self, data, w_map, cols: Array, kind: str, max_bytes) -> Array:
        """H's (C, C) block on the weights ``cols``."""
        if kind == "exact" and not self._in_output_layer(data.net, cols):
            H = data.hessian(w_map, "exact", max_bytes=max_bytes)
            return H[np.ix_(cols, cols)]
        statistic = gauss_newton_block if kind == "gauss_newton" else output_curvature_block
        net = data.net
        size = items_in_budget(net.n_outputs * net.n_weights, SENSITIVITY_DOUBLES)
        return data.sum_over_batches(w_map, statistic, cols, size=size)

    @staticmethod
    def _in_output_layer(net, cols: Array) -> bool:
        return bool(np.all(np.isin(cols, output_layer_weights(net))))

    def __repr__(self) -> str:
        n = "None" if self.indices is None else f"{len(self.indices)} weights"
        return f"{type(self).__name__}({n})"


class LastLayer(Subset):
    """A dense posterior on the output layer's weights and biases (every
    incoming edge, skip-layer ones included), the rest fixed at w_MAP."""

    name = "last_layer"

    def __init__(self):
        super().__init__(None)

    def columns(self, net) -> Array:
        return output_layer_weights(net)

    def __repr__(self) -> str:
        return "LastLayer()"


def output_layer_weights(net) -> Array:
    """Indices of the output layer's weights (every incoming edge) and biases."""
    layer = net.layers[-1]
    parts = [np.arange(s.start, s.stop) for s in (*layer.weight_slices, layer.bias_slice)]
    return np.sort(np.concatenate(parts))


def _check_indices(indices) -> Array:
    idx = as_float_array(indices, "indices") if not isinstance(indices, np.ndarray) \
        else indices
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer)
                             or np.all(np.mod(idx, 1) == 0)):
        raise ValueError("indices: expected a 1-D array of weight indices")
    idx = np.unique(idx.astype(np.intp))
    if idx.size and idx[0] < 0:
        raise ValueError("indices: expected indices >= 0")
    return idx
