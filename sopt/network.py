"""Feed-forward networks of arbitrary topology: the DAG, the weight layout,
the forward pass and its adjoint (the backward sweep of error signals).

A :class:`Network` holds architecture only; weights live in one flat float64
vector ``w`` (the currency of the library, as in scipy). Layers are added in
order; each is fed by the input and/or any earlier layers through one dense
weight matrix per incoming edge (:class:`Edge`), optionally masked entry by
entry.

Weight layout (fixed): layers in the order they were added; inside a layer its
incoming edges in the order given, each matrix of shape (fan_out, fan_in)
flattened row-major, then the bias. For an MLP this is the order of
``torch.nn.utils.parameters_to_vector(model.parameters())`` for the equivalent
``nn.Sequential`` of ``nn.Linear`` layers (weight (out, in), then bias).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from ._deprecation import renamed_method, warn_renamed
from ._validation import (as_float_array, check_finite, check_inputs,
                          check_nonnegative, check_positive_int, check_weights)
from .activations import IDENTITY, Activation, get_activation

Array = np.ndarray


@dataclass(frozen=True, eq=False)
class Node:
    """Handle of the input (index 0) or of a layer (index 1, 2, ...)."""

    index: int
    size: int

    def __repr__(self) -> str:
        kind = "input" if self.index == 0 else f"layer {self.index}"
        return f"<Node {kind}, {self.size} units>"


@dataclass(eq=False, slots=True)
class Edge:
    """One incoming edge src -> l of a layer: a_l += W_e z_src.

    ``weights`` is where the (fan_out, fan_in) matrix W_e sits in w
    (row-major); ``mask`` its read-only 0/1 mask, or None. The network's own
    edges hold no weights; a pass binds them (:meth:`at`, :meth:`along`) to
    the effective (masked) matrix ``W`` at one w and the effective block ``V``
    (fan_out, fan_in, P) of P weight directions. The edge rule is written
    once: its forward and backward shares here, its weight gradient and
    R-passes in :mod:`sopt.derivatives`. Arrays x, delta have N patterns on
    axis 0, optionally P signals or directions on axis 1.

    Read-only by convention: not frozen, because every pass binds a fresh
    copy of each edge and a frozen dataclass takes five times as long to make.
    """

    source: Node
    fan_out: int
    weights: slice
    mask: Array | None = None
    W: Array | None = None
    V: Array | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.fan_out, self.source.size)

    def view(self, w: Array) -> Array:
        """W_e as stored in w, a (fan_out, fan_in) view (masked entries as stored)."""
        return w[self.weights].reshape(self.shape)

    def at(self, w: Array) -> "Edge":
        """This edge bound to its effective matrix at w: the view of w if
        unmasked, else the masked copy."""
        W = w[self.weights].reshape(self.fan_out, self.source.size)
        return Edge(self.source, self.fan_out, self.weights, self.mask,
                    W if self.mask is None else W * self.mask)

    def along(self, V: Array) -> "Edge":
        """This bound edge with its block of the (W, P) directions V, masked."""
        Ve = V[self.weights].reshape(self.shape + V.shape[1:])
        if self.mask is not None:
            Ve = Ve * self.mask[:, :, None]
        return Edge(self.source, self.fan_out, self.weights, self.mask, self.W, Ve)

    def indices(self) -> Array:
        """Position in w of every entry of W_e, (fan_out, fan_in) integers."""
        size = self.fan_out * self.source.size
        return self.weights.start + np.arange(size).reshape(self.shape)

    def dense_mask(self) -> Array:
        """The mask, or ones where there is none, (fan_out, fan_in)."""
        return np.ones(self.shape) if self.mask is None else self.mask

    def forward(self, x: Array, out: Array | None = None) -> Array:
        """x W_e^T, the edge's share of a_l, (N, fan_out) for x (N, fan_in)."""
        return np.matmul(x, self.W.T, out=out)

    def backward(self, delta: Array, adjoints: list, out: Array | None = None) -> None:
        """adjoints[src] += delta W_e, the edge's share of dE/dz_src, for delta
        (N, [P,] fan_out); ``out`` receives the first share where it can."""
        i = self.source.index
        add_to(adjoints, i, matmul_rows(delta, self.W,
                                        out if adjoints[i] is None else None))


@dataclass(frozen=True, eq=False)
class Layer:
    """A layer: its units, activation, incoming edges (in layout order) and
    where its bias sits in w."""

    node: Node
    activation: Activation
    edges: tuple[Edge, ...]
    bias_slice: slice

    @property
    def size(self) -> int:
        return self.node.size

    # one field of every edge, for callers that want only that
    @property
    def sources(self) -> tuple[Node, ...]:
        return tuple(e.source for e in self.edges)

    @property
    def masks(self) -> tuple[Array | None, ...]:
        return tuple(e.mask for e in self.edges)

    @property
    def weight_slices(self) -> tuple[slice, ...]:
        return tuple(e.weights for e in self.edges)


class LayerParams(NamedTuple):
    """Views into w for one layer: one (fan_out, fan_in) matrix per edge, bias."""

    weights: tuple[Array, ...]
    bias: Array


class Backward(NamedTuple):
    """The backward sweep of one forward pass: per layer l (index l - 1)
    delta_l = dE/da_l, shape (N, [P,] M_l), and dE/dz_l for the hidden
    layers (None for the output layer), which second derivatives need."""

    deltas: list
    z_adjoints: list


class ForwardPass:
    """Pre-activations a[l] and outputs z[l] of every node (z[0] is X, a[0]
    None), with h'(a_l) and h''(a_l) computed on first use and kept: the
    backward, R- and Hessian passes all need them, and each costs a pass over
    N x M_l values. ``edges`` holds, per layer (index l - 1), its edges bound
    to the masked matrices the pass used (:meth:`Edge.at`), so the passes
    after it need not rebuild them.
    ``recycled_dh`` maps l to an array of a recycled pass that h'(a_l) may
    be written into."""

    __slots__ = ("a", "z", "edges", "_acts", "_dh", "_d2h", "_recycled_dh")

    def __init__(self, a: list, z: list, activations: list, edges: list,
                 recycled_dh: dict | None = None):
        self.a, self.z, self._acts, self.edges = a, z, activations, edges
        self._dh: dict = {}
        self._d2h: dict = {}
        self._recycled_dh = recycled_dh or {}

    @property
    def y(self) -> Array:
        return self.z[-1]

    @property
    def weights(self) -> list:
        """Per layer, the masked edge matrices the pass used (from ``edges``)."""
        return [tuple(e.W for e in edges) for edges in self.edges]

    def dh(self, l: int) -> Array:
        """h'(a_l), shape (N, M_l) (elementwise activations only)."""
        if l not in self._dh:
            self._dh[l] = self._acts[l].derivative(self.a[l], self.z[l],
                                                   out=self._recycled_dh.pop(l, None))
        return self._dh[l]

    def d2h(self, l: int) -> Array:
        """h''(a_l), shape (N, M_l) (elementwise activations only)."""
        if l not in self._d2h:
            # every pass that needs h'' needs h' too: reuse the cached one
            self._d2h[l] = self._acts[l].second_derivative(self.a[l], self.z[l],
                                                           self.dh(l))
        return self._d2h[l]

    def times_dh(self, l: int, g: Array, out: Array | None = None) -> Array:
        """(dz_l/da_l) g for g of shape (N, M_l) or (N, P, M_l); the Jacobian
        is symmetric, so this serves forward and backward passes alike.
        ``out`` (shape of g) receives the product where it can."""
        act = self._acts[l]
        if act is IDENTITY:
            return g
        if not act.elementwise:
            a, z = (self.a[l], self.z[l]) if g.ndim == 2 else (
                self.a[l][:, None, :], self.z[l][:, None, :])
            return act.vjp(a, z, g)
        d = self.dh(l)
        if g.ndim == 2:
            return np.multiply(g, d, out=out)
        return g * d[:, None, :]

    def recyclable(self) -> dict:
        """The arrays of this pass by role, for a next pass over as many
        patterns to overwrite (this pass must not be used afterwards)."""
        return {"a": self.a, "z": self.z, "dh": self._dh}


def matmul_rows(A: Array, B: Array, out: Array | None = None) -> Array:
    """A (..., k) @ B (k, m) as one 2-D matrix product over all leading axes
    (numpy would otherwise loop over them with tiny products); a 2-D A may
    write into ``out``."""
    if A.ndim == 2:
        return np.matmul(A, B, out=out)
    return (A.reshape(-1, A.shape[-1]) @ B).reshape(A.shape[:-1] + (B.shape[1],))


def add_to(terms: list, i: int, term: Array) -> None:
    """terms[i] += term, or terms[i] = term where nothing is there yet (the
    sums over consumers of the adjoint passes; the first term is owned)."""
    if terms[i] is None:
        terms[i] = term
    else:
        terms[i] += term


def _recycled_arrays(recycle: "Backward | None", delta_out: Array) -> dict:
    """The 2-D arrays of a finished backward sweep of the same shapes, by
    role: ("delta", l) and ("z", l) for the hidden layers."""
    if (recycle is None or delta_out.ndim != 2
            or recycle.deltas[-1].shape != delta_out.shape):
        return {}
    arrays = {}
    for l, (d, g) in enumerate(zip(recycle.deltas[:-1], recycle.z_adjoints[:-1]),
                               start=1):
        if d is not g:
            arrays["delta", l] = d
        arrays["z", l] = g
    return arrays


class Network:
    """A feed-forward network: a DAG of layers over one input node.

    Parameters
    ----------
    n_inputs : int
        D, the number of inputs.

    Examples
    --------
    >>> net = Network(n_inputs=2)
    >>> h = net.add_layer(3, "tanh", inputs=[net.input])
    >>> y = net.add_layer(1, "identity", inputs=[h, net.input], output=True)
    >>> net.n_weights     # 3*2 + 3  +  1*3 + 1*2 + 1
    15
    """

    def __init__(self, n_inputs: int):
        n_inputs = check_positive_int(n_inputs, "n_inputs")
        self._nodes: list[Node] = [Node(0, n_inputs)]
        self._layers: list[Layer] = []
        self._consumers: list[list[tuple[int, int]]] = [[]]
        self._n_weights = 0
        self._output: Node | None = None

    # ----- architecture -----
    @property
    def input(self) -> Node:
        return self._nodes[0]

    @property
    def n_inputs(self) -> int:
        return self._nodes[0].size

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self._layers)

    @property
    def output(self) -> Node:
        if self._output is None:
            raise ValueError("network has no output layer yet: add one with "
                             "add_layer(..., output=True)")
        return self._output

    @property
    def n_outputs(self) -> int:
        return self.output.size

    @property
    def n_weights(self) -> int:
        """W, the total number of weights and biases."""
        return self._n_weights

    def add_layer(self, size: int, activation, inputs: Sequence,
                  masks: dict | None = None, output: bool = False) -> Node:
        """Add a layer of ``size`` units fed by ``inputs``; return its handle.

        Parameters
        ----------
        size : int
            Number of units.
        activation : str, Activation or (h, dh, d2h)
            One of ``"identity", "tanh", "logistic", "softplus", "relu"``,
            ``"softmax"`` (output layer only), or user-supplied callables.
        inputs : sequence of Node (or int: 0 = input, i = i-th layer)
            The input and/or earlier layers feeding this one, in layout order.
        masks : dict {source: 0/1 array of shape (size, source.size)}, optional
            Removes individual connections; masked weights stay in the layout
            with zero gradient.
        output : bool
            Marks the output layer; it must be the last layer added.
        """
        if self._output is not None:
            raise ValueError("add_layer: the output layer is already added; "
                             "it must be the last layer")
        size = check_positive_int(size, "size")
        act = get_activation(activation)
        if not act.elementwise and not output:
            raise ValueError(f"activation: {act.name!r} is allowed on the "
                             "output layer only (output=True)")
        if not act.elementwise and size < 2:
            # one softmax unit is the constant 1: zero gradient for every w
            raise ValueError(f"size: a {act.name!r} layer needs at least 2 "
                             f"units, got {size} (for one binary target use "
                             "'logistic' with loss 'binary_ce')")
        index = len(self._nodes)
        sources = self._resolve_inputs(inputs, index)
        mask_list = self._resolve_masks(masks or {}, sources, size)

        edges, start = [], self._n_weights
        for src, mask in zip(sources, mask_list):
            edges.append(Edge(src, size, slice(start, start + size * src.size), mask))
            start += size * src.size
        bias = slice(start, start + size)

        node = Node(index, size)
        self._nodes.append(node)
        self._consumers.append([])
        for e, src in enumerate(sources):
            self._consumers[src.index].append((index, e))
        self._layers.append(Layer(node, act, tuple(edges), bias))
        self._n_weights = bias.stop
        if output:
            self._output = node
        return node

    def _resolve_inputs(self, inputs, index: int) -> tuple[Node, ...]:
        if isinstance(inputs, (Node, int)) or inputs is None:
            raise TypeError("inputs: expected a list of nodes, e.g. [net.input]")
        sources = [self._resolve_node(src, index, "inputs") for src in inputs]
        if not sources:
            raise ValueError("inputs: a layer needs at least one input")
        if len({s.index for s in sources}) != len(sources):
            raise ValueError("inputs: the same node is listed twice")
        return tuple(sources)

    def _resolve_node(self, src, index: int, name: str) -> Node:
        if isinstance(src, (int, np.integer)) and not isinstance(src, bool):
            i = int(src)
        elif isinstance(src, Node):
            i = src.index
            if i < len(self._nodes) and self._nodes[i] is not src:
                raise ValueError(f"{name}: {src!r} belongs to another network")
        else:
            raise TypeError(f"{name}: expected Node handles (or ints), "
                            f"got {type(src).__name__}")
        if i >= index:
            raise ValueError(f"{name}: layer {index} cannot be fed by itself "
                             f"or by a later layer (node {i}); the network "
                             "must be feed-forward")
        if i < 0:
            raise ValueError(f"{name}: node index must be >= 0, got {i}")
        return self._nodes[i]

    def _resolve_masks(self, masks: dict, sources, size: int) -> list:
        if not isinstance(masks, dict):
            raise TypeError("masks: expected a dict {input node: 0/1 array}")
        by_index = {}
        for key, mask in masks.items():
            src = self._resolve_node(key, len(self._nodes), "masks")
            if src not in sources:
                raise ValueError(f"masks: {src!r} is not among this layer's inputs")
            m = as_float_array(mask, "masks")
            if m.shape != (size, src.size):
                raise ValueError(f"masks: mask for {src!r} must have shape "
                                 f"(fan_out, fan_in) = ({size}, {src.size}), "
                                 f"got {m.shape}")
            if not np.isin(m, (0.0, 1.0)).all():
                raise ValueError("masks: entries must be 0 or 1")
            m = m.copy()
            m.flags.writeable = False
            by_index[src.index] = m
        return [by_index.get(src.index) for src in sources]

    # ----- weights -----
    def unpack(self, w) -> list[LayerParams]:
        """Views of w, one LayerParams per layer (no copies).

        Each edge matrix has shape (fan_out, fan_in); masked entries are shown
        as stored (the forward pass multiplies them by 0).
        """
        w = check_weights(w, self._n_weights)
        return self._views(w)

    def _views(self, w: Array) -> list[LayerParams]:
        return [LayerParams(tuple(e.view(w) for e in layer.edges), w[layer.bias_slice])
                for layer in self._layers]

    def parameters(self, w) -> list[Array]:
        """Flat list of views in layout order: [W_1e..., b_1, W_2e..., b_2, ...]."""
        return [p for lp in self.unpack(w) for p in (*lp.weights, lp.bias)]

    def pack(self, params) -> Array:
        """Inverse of unpack: a list of LayerParams, or a flat list of arrays in
        layout order (as returned by :meth:`parameters`), to a new vector w."""
        flat = [p for item in params
                for p in ((*item.weights, item.bias)
                          if isinstance(item, LayerParams) else (item,))]
        shapes = []
        for layer in self._layers:
            shapes += [e.shape for e in layer.edges]
            shapes.append((layer.size,))
        if len(flat) != len(shapes):
            raise ValueError(f"params: expected {len(shapes)} arrays in layout "
                             f"order, got {len(flat)}")
        w = np.empty(self._n_weights)
        start = 0
        for k, (p, shape) in enumerate(zip(flat, shapes)):
            p = as_float_array(p, "params")
            if p.shape != shape:
                raise ValueError(f"params: array {k} must have shape {shape}, "
                                 f"got {p.shape}")
            size = int(np.prod(shape))
            w[start:start + size] = p.ravel()
            start += size
        check_finite(w, "params")
        return w

    def init_weights(self, seed=None, scale: float = 1.0) -> Array:
        """Random weights with fan-in scaling: w_ji ~ N(0, scale^2 / fan_in(j)).

        fan_in(j) counts the unmasked connections into unit j over all its
        edges (LeCun et al., "Efficient BackProp", 1998); biases start at 0,
        masked weights at 0.
        """
        scale = check_nonnegative(scale, "scale")
        rng = np.random.default_rng(seed)
        w = np.zeros(self._n_weights)
        for layer in self._layers:
            fan_in = sum(e.dense_mask().sum(axis=1) for e in layer.edges)
            std = scale / np.sqrt(np.maximum(fan_in, 1))[:, None]
            for e in layer.edges:
                W = e.view(w)
                W[...] = rng.standard_normal(W.shape) * std
                if e.mask is not None:
                    W *= e.mask
        return w

    def used_weight_mask(self) -> Array:
        """The mask of the weights in use, (W,) floats: 1.0 for every weight
        and bias in use, 0.0 for masked-out entries (so that alpha times it
        is the weight decay of each weight)."""
        used = np.ones(self._n_weights)
        for layer in self._layers:
            for e in layer.edges:
                if e.mask is not None:
                    used[e.weights] = e.mask.ravel()
        return used

    active_weights = renamed_method("active_weights", "used_weight_mask")

    def effective_weights(self, w: Array) -> list[tuple[Array, ...]]:
        """Per layer, the edge matrices with masks applied (views if unmasked)."""
        return [tuple(e.W for e in edges) for edges in self.edges_at(w)]

    def edges_at(self, w: Array) -> list[tuple[Edge, ...]]:
        """Per layer, its edges bound to their effective matrices at w."""
        return [tuple(e.at(w) for e in layer.edges) for layer in self._layers]

    # ----- forward pass and its adjoint -----
    def forward(self, w, X) -> Array:
        """Outputs y, shape (N, K), for all N patterns at once. Cost Theta(N W)."""
        w = check_weights(w, self._n_weights)
        X = check_inputs(X, self.n_inputs)
        return self.propagate(w, X).y

    def propagate(self, w: Array, X: Array, recycle: ForwardPass | None = None, *,
                  reuse: ForwardPass | None = None) -> ForwardPass:
        """Forward pass keeping every a and z (unchecked w, X). Memory O(N U).

        ``recycle``: a pass over as many patterns that is no longer needed;
        its arrays are overwritten instead of taking fresh memory (the same
        numbers either way). ``reuse`` is its deprecated name."""
        self.output  # raises if no output layer
        if reuse is not None:
            warn_renamed("Network.propagate(..., reuse=)", "recycle=")
            recycle = reuse
        old = (recycle.recyclable() if recycle is not None and len(recycle.y) == len(X)
               else None)
        a, z = [None], [X]
        bound = self.edges_at(w)
        for l, (layer, edges) in enumerate(zip(self._layers, bound), start=1):
            first, *rest = edges
            act = first.forward(z[first.source.index],
                                out=None if old is None else old["a"][l])
            for e in rest:
                act += e.forward(z[e.source.index])
            act += w[layer.bias_slice]
            a.append(act)
            z_into = None if old is None or old["z"][l] is old["a"][l] else old["z"][l]
            z.append(layer.activation.value(act, out=z_into))
        return ForwardPass(a, z, [None] + [layer.activation for layer in self._layers],
                           bound, None if old is None else dict(old["dh"]))

    def backward(self, fp: ForwardPass, delta_out: Array,
                 recycle: Backward | None = None, *,
                 reuse: Backward | None = None) -> Backward:
        """Backpropagate error signals delta_l = dE/da_l from the outputs,
        through the weights of the forward pass ``fp``.

        delta_j = h'(a_j) sum_k w_kj delta_k (PRML eq. 5.56), summed over all
        consumers of layer j in the DAG. ``delta_out`` (N, K) or (N, P, K) is
        dE/da at the output layer; a middle axis carries P signals at once
        (one per output for Jacobians). Cost Theta(N W) per signal.
        ``recycle``: a sweep of the same shapes that is no longer needed,
        whose arrays are overwritten (the same numbers); ``reuse`` is its
        deprecated name.
        """
        if reuse is not None:
            warn_renamed("Network.backward(..., reuse=)", "recycle=")
            recycle = reuse
        L = len(self._layers)
        deltas: list = [None] * L
        grads_z: list = [None] * (L + 1)
        deltas[-1] = delta_out
        recycled = _recycled_arrays(recycle, delta_out)
        for l in range(L, 0, -1):
            layer = self._layers[l - 1]
            if l < L:
                g = grads_z[l]
                if g is None:      # unit feeds nothing: no error reaches it
                    g = grads_z[l] = np.zeros(delta_out.shape[:-1] + (layer.size,))
                deltas[l - 1] = fp.times_dh(l, g, out=recycled.get(("delta", l)))
            for e in fp.edges[l - 1]:
                if e.source.index:      # dE/dx is not needed here
                    e.backward(deltas[l - 1], grads_z, recycled.get(("z", e.source.index)))
        return Backward(deltas, grads_z[1:-1] + [None])

    def input_adjoint(self, w: Array, deltas: list) -> Array:
        """dE/dx = sum over edges from the input of delta_l W_e, shape (N, [P,] D)."""
        total = [None]          # indexed by node: only the input's entry is used
        for edges, delta in zip(self.edges_at(w), deltas):
            for e in edges:
                if e.source.index == 0:
                    e.backward(delta, total)
        if total[0] is None:
            return np.zeros(deltas[-1].shape[:-1] + (self.n_inputs,))
        return total[0]

    def output_seeds(self, fp: ForwardPass) -> Array:
        """dy_k/da_k' at the output layer, shape (N, K, K)."""
        K = self.n_outputs
        return fp.times_dh(len(self._layers),
                           np.broadcast_to(np.eye(K), (len(fp.y), K, K)))

    # ----- derivatives of the outputs (sopt.derivatives computes them) -----
    def jacobian(self, w, X) -> Array:
        """dy_k/dx_i by backpropagation, shape (N, K, D); cost Theta(K N W).
        See :func:`sopt.derivatives.input_jacobian`."""
        from .derivatives import input_jacobian
        return input_jacobian(self, w, X)

    def output_sensitivities(self, w, X, of: str = "a",
                             chunk_size: int | None = None) -> Array:
        """Per-pattern d a_out/dw (``of="a"``) or dy/dw (``of="y"``), (N, K, W).
        See :func:`sopt.derivatives.output_sensitivities`."""
        from .derivatives import output_sensitivities
        return output_sensitivities(self, w, X, of, chunk_size)

    def linearise(self, w, X, of: str = "a", chunk_size: int | None = None):
        """(f, S) from one forward pass: the outputs (or pre-activations) and
        their sensitivities. See :func:`sopt.derivatives.linearise`."""
        from .derivatives import linearise
        return linearise(self, w, X, of, chunk_size)

    def __repr__(self) -> str:
        parts = [f"input({self.n_inputs})"]
        for layer in self._layers:
            srcs = ",".join(str(s.index) for s in layer.sources)
            star = "*" if layer.node is self._output else ""
            parts.append(f"{layer.node.index}:{layer.activation.name}"
                         f"({layer.size})<-[{srcs}]{star}")
        return f"Network({' '.join(parts)}; W={self._n_weights})"


def mlp(sizes: Sequence[int], hidden="tanh", output="identity") -> Network:
    """A layered perceptron with sizes [D, M_1, ..., K], each layer fed by
    the previous one only.

    ``hidden`` is ONE activation for every hidden layer: a name
    (``"tanh"``), an :class:`~sopt.activations.Activation`, or your own
    ``(h, dh, d2h)`` triple of callables (a tuple or a list of three
    callables is always one activation, however many hidden layers there
    are); or a list or tuple of one activation per hidden layer, each of
    those forms (``["tanh", "relu"]``, ``("tanh", (h, dh, d2h))``).
    ``output`` is the output layer's activation.
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
        raise TypeError(f"sizes: expected a list of layer sizes [D, M_1, ..., K], "
                        f"got {type(sizes).__name__}")
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected [D, ..., K] with at least 2 entries, "
                         f"got {list(sizes)}")
    sizes = [check_positive_int(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
    n_hidden = len(sizes) - 2
    if _one_activation(hidden):
        if isinstance(hidden, (list, tuple)):       # one Activation for all layers
            hidden = get_activation(tuple(hidden))
        hidden_acts = [hidden] * n_hidden
    else:
        hidden_acts = list(hidden)
        if len(hidden_acts) != n_hidden:
            raise ValueError(f"hidden: expected one activation, or a list of "
                             f"{n_hidden} (one per hidden layer), got a list of "
                             f"{len(hidden_acts)}")
    net = Network(sizes[0])
    prev = net.input
    for size, act in zip(sizes[1:-1], hidden_acts):
        prev = net.add_layer(size, act, inputs=[prev])
    net.add_layer(sizes[-1], output, inputs=[prev], output=True)
    return net


def _one_activation(hidden) -> bool:
    """Whether mlp's ``hidden`` is one activation (a name, an Activation,
    an (h, dh, d2h) triple of callables, anything else not a list or
    tuple) rather than a list of one per hidden layer."""
    if not isinstance(hidden, (list, tuple)):
        return True
    return len(hidden) == 3 and all(map(callable, hidden))
