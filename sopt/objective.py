"""The training objective E(w) = sum_n E_n(w) + alpha/2 |w|^2 over a data set.

The weight-decay sum runs over the weights in use: masked-out entries of w
have zero gradient and zero Hessian rows whatever alpha is.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ._validation import (as_float_array, check_finite,
                          check_inputs, check_positive_int, check_weights)
from ._validation import check_alpha as _check_alpha
from . import finite_diff
from ._deprecation import renamed_property, warn_renamed
from . import hessian as _hessian
from .evaluation import Evaluation

if TYPE_CHECKING:       # scipy.sparse costs 0.2-0.3 s of import: on first use
    from scipy.sparse.linalg import LinearOperator
from .losses import Loss, OutputLoss, get_loss
from .network import Network

Array = np.ndarray


def check_targets(T, n_patterns: int, n_outputs: int, loss: Loss) -> Array:
    """T as a float (N, K) array valid for the loss (its ``targets`` field).

    A 1-D T is accepted for K = 1, and for a loss on probability rows
    (``targets="simplex"``, softmax_ce) as integer class labels 0..K-1
    (turned into one-hot rows).
    """
    T = as_float_array(T, "T")
    check_finite(T, "T")
    if T.ndim == 1 and loss.targets == "simplex" and n_outputs > 1:
        labels = T
        if not (np.all(labels == np.round(labels))
                and labels.min() >= 0 and labels.max() < n_outputs):
            raise ValueError(f"T: class labels must be integers in "
                             f"[0, {n_outputs - 1}]")
        T = np.eye(n_outputs)[labels.astype(int)]
    elif T.ndim == 1 and n_outputs == 1:
        T = T[:, None]
    if T.shape != (n_patterns, n_outputs):
        raise ValueError(f"T: expected shape (N, K) = ({n_patterns}, "
                         f"{n_outputs}), got {T.shape}")
    if loss.targets in ("unit", "simplex") and (T.min() < 0 or T.max() > 1):
        raise ValueError(f"T: {loss.name} targets must lie in [0, 1]")
    if loss.targets == "simplex":
        sums = T.sum(axis=1)
        if not np.allclose(sums, 1.0, rtol=0, atol=1e-8):
            n = int(np.sum(~np.isclose(sums, 1.0, rtol=0, atol=1e-8)))
            raise ValueError(f"T: {loss.name} targets must be probability rows "
                             f"(sum to 1); {n} row(s) do not")
    return T


def _read_only_copy(a: Array) -> Array:
    """A private, read-only copy of a (one copy, even if a is already ours)."""
    a = np.array(a, dtype=float, order="K", copy=True)
    a.setflags(write=False)
    return a


HESSIAN_KINDS = _hessian.HESSIAN_KINDS
HESSIAN_ALGORITHMS = _hessian.HESSIAN_ALGORITHMS


@runtime_checkable
class ObjectiveProtocol(Protocol):
    """What an objective provides: everything the solvers
    (:func:`sopt.optimize.minimize`) and the Bayesian layer
    (:func:`sopt.bayes.laplace`, :func:`sopt.bayes.evidence_fit`) ask of one.

    :class:`Objective` (data in memory) and
    :class:`sopt.distributed.ShardedObjective` (data on a Dask cluster)
    provide it; so can any class of the user's. Deriving from
    :class:`ObjectiveCallables` gives ``alpha`` and the scipy callables from
    the rest. ``isinstance(obj, ObjectiveProtocol)`` checks that every
    member is there (not their signatures); :func:`missing_members` names
    those that are not.

    Attributes
    ----------
    net : Network
    loss : Loss
        Its ``likelihood`` fields are what the Bayesian layer reads.
    n_patterns : int
        N, the number of patterns summed over.
    alpha : float or (W,) array
        The weight-decay coefficient; assignable.

    Methods
    -------
    value(w), gradient(w)
        E(w) and dE/dw, (W,).
    hvp(w, V), gnvp(w, V)
        Hessian- and Gauss-Newton-vector products, V of shape (W,) or (W, P).
    hessian(w, kind="exact", algorithm="structured", eps=None, max_bytes=None)
        A dense (W, W) curvature matrix: ``kind`` (which matrix) one of
        :data:`HESSIAN_KINDS`, ``algorithm`` (how it is computed) one of
        :data:`HESSIAN_ALGORITHMS`.
    hessian_diagonal(w)
        Becker and Le Cun's diagonal approximation, (W,).
    with_alpha(alpha)
        The same objective with another weight decay (sharing the data).
    fun(w), jac(w), hess(w), hessp(w, p)
        scipy.optimize's callables.
    """

    net: Network
    loss: Loss
    n_patterns: int
    alpha: object

    def value(self, w) -> float: ...

    def gradient(self, w) -> Array: ...

    def hvp(self, w, v) -> Array: ...

    def gnvp(self, w, v) -> Array: ...

    def hessian(self, w, kind: str = "exact", algorithm: str = "structured",
                **kwargs) -> Array: ...

    def hessian_diagonal(self, w) -> Array: ...

    def with_alpha(self, alpha) -> "ObjectiveProtocol": ...

    def fun(self, w) -> float: ...

    def jac(self, w) -> Array: ...

    def hess(self, w) -> Array: ...

    def hessp(self, w, p) -> Array: ...


#: The members of :class:`ObjectiveProtocol`, in the order documented.
OBJECTIVE_MEMBERS: tuple[str, ...] = (
    *ObjectiveProtocol.__annotations__,
    *(name for name, f in vars(ObjectiveProtocol).items()
      if callable(f) and not name.startswith("_")))


def missing_members(obj) -> list[str]:
    """The members of :class:`ObjectiveProtocol` that ``obj`` lacks."""
    return [name for name in OBJECTIVE_MEMBERS if not hasattr(obj, name)]


class ObjectiveCallables:
    """What every objective derives from its value, gradient, hvp, gnvp and
    hessian: scipy.optimize's callables and the LinearOperators (shared by
    :class:`Objective` and :class:`sopt.distributed.ShardedObjective`).
    With ``net``, ``loss``, ``n_patterns`` and those five, a subclass has
    all of :class:`ObjectiveProtocol`."""

    @property
    def alpha(self):
        """The weight-decay coefficient: a float, or a read-only (W,) array.
        Assigning a new value takes effect at the next call."""
        return self._alpha

    @alpha.setter
    def alpha(self, value) -> None:
        alpha = _check_alpha(value, self.net.n_weights)
        if isinstance(alpha, np.ndarray):
            alpha = _read_only_copy(alpha)
        self._alpha = alpha
        self._decay = alpha * self.net.used_weight_mask()   # alpha on used weights
        self._has_decay = bool(np.any(self._decay))

    def _hessian_without_data_pass(self, w: Array, kind: str, algorithm: str,
                                   eps, max_bytes):
        """The size check every ``hessian`` makes, and the matrices built
        from the objective's other derivatives (algorithms "fd" and "mixed",
        kind "diagonal"); None for those that need the objective's own pass
        over the data. ``kind`` and ``algorithm`` checked by
        :func:`sopt.hessian.hessian_request`."""
        _hessian.check_dense_size(self.net.n_weights, max_bytes)
        if algorithm == "fd":
            return finite_diff.hessian(self.value, w, eps, max_bytes=max_bytes)
        if algorithm == "mixed":
            return finite_diff.hessian_from_gradient(self.gradient, w, eps,
                                                     max_bytes=max_bytes)
        if kind == "diagonal":
            return np.diag(self.hessian_diagonal(w))
        return None

    def hessian_operator(self, w) -> LinearOperator:
        """H at w as a scipy LinearOperator (matvec = hvp), for eigsh, cg and
        trust-region solvers. O(W) memory."""
        w = check_weights(w, self.net.n_weights).copy()
        return self._operator(lambda V: self.hvp(w, V))

    def gauss_newton_operator(self, w) -> LinearOperator:
        """The Gauss-Newton matrix at w as a LinearOperator (matvec = gnvp)."""
        w = check_weights(w, self.net.n_weights).copy()
        return self._operator(lambda V: self.gnvp(w, V))

    def _operator(self, product) -> LinearOperator:
        from scipy.sparse.linalg import LinearOperator
        W = self.net.n_weights
        matvec = lambda v: product(np.ravel(v))   # noqa: E731
        return LinearOperator((W, W), matvec=matvec, rmatvec=matvec,
                              matmat=product, dtype=float)

    # scipy.optimize-ready callables
    def fun(self, w) -> float:
        return self.value(w)

    def jac(self, w) -> Array:
        return self.gradient(w)

    def hess(self, w) -> Array:
        return self.hessian(w, kind="exact")

    def hessp(self, w, p) -> Array:
        return self.hvp(w, p)


class _KeptEvaluation:
    """The last evaluation of an objective, shared with its with_alpha copies."""

    __slots__ = ("evaluation",)

    def __init__(self):
        self.evaluation: Evaluation | None = None

    def __reduce__(self):
        return (_KeptEvaluation, ())   # an unpickled copy starts afresh


class Objective(ObjectiveCallables):
    """E(w) = sum_n E_n(w) + alpha/2 w^T w for a network on a data set.

    Parameters
    ----------
    net : Network
    X : (N, D) inputs
    T : (N, K) targets (1-D allowed for K = 1, or class labels for softmax_ce)
    loss : "sse", "binary_ce", "softmax_ce", a Loss or (value, grad, hess)
    alpha : float >= 0, or (W,) array of them
        Weight-decay coefficient; an array gives each weight its own (e.g.
        one per weight group, as in MacKay's evidence framework).
    chunk_size : int, optional
        Patterns per chunk for the batched passes (bounds memory at
        O(chunk * units)); None means all at once.

    Attributes: ``net``, ``loss``, ``X``, ``T`` (below), ``alpha``,
    ``chunk_size`` and ``output_loss``, the :class:`sopt.losses.OutputLoss`
    of the loss on the network's output activation.

    The scipy-ready callables are ``fun``, ``jac``, ``hess`` and ``hessp``.
    ``at(w)`` gives the evaluation at w (forward pass held, backward pass on first use); the
    methods keep the last one, so ``fun(w)`` then ``jac(w)`` at the same w
    runs the forward pass once.

    X and T are copied once into read-only float64 arrays (``self.X``,
    ``self.T``; memory N (D + K) doubles): changing the caller's arrays
    afterwards cannot make the objective answer from two data sets (a cached
    E and gradient from the old data, a Hessian from the new). Build a new
    Objective for new data.

    Not thread-safe: at a new w the methods overwrite the arrays of the last
    evaluation. Threads sharing one Objective should each work on their own
    ``at(w)`` evaluation, which nothing overwrites.
    """

    def __init__(self, net: Network, X, T, loss="sse", alpha: float = 0.0,
                 chunk_size: int | None = None):
        if not isinstance(net, Network):
            raise TypeError(f"net: expected a Network, got {type(net).__name__}")
        self.net = net
        self.X = _read_only_copy(check_inputs(X, net.n_inputs))
        loss_obj = get_loss(loss)
        self.output_loss = OutputLoss(loss_obj, net.layers[-1].activation
                                      if net.layers else net.output)
        self.loss = loss_obj
        self.T = _read_only_copy(
            check_targets(T, len(self.X), net.n_outputs, loss_obj))
        self._kept = _KeptEvaluation()
        self.alpha = alpha
        self.chunk_size = (None if chunk_size is None
                           else check_positive_int(chunk_size, "chunk_size"))

    def with_alpha(self, alpha) -> "Objective":
        """The same objective with weight decay ``alpha`` (a number or (W,)).

        The new Objective shares this one's read-only X and T (no copy, no
        second check of the data) and its kept evaluation of the data term:
        at a w either has evaluated, the other reuses the forward and
        backward passes and any Hessian already built (the evidence
        framework retrains under new hyperparameters, and takes the data
        term alone with ``alpha=0``, at the same w).
        """
        new = copy.copy(self)     # shares self._kept
        new.alpha = alpha
        return new

    @property
    def n_patterns(self) -> int:
        return len(self.X)

    rule = renamed_property("rule", "output_loss")

    def at(self, w) -> Evaluation:
        """A new :class:`~sopt.evaluation.Evaluation` of the objective at w:
        the forward pass over all patterns (none for a chunked objective),
        with every derivative at w as a method. The methods below keep the
        last one and reuse it while w stays the same."""
        return Evaluation(self, check_weights(w, self.net.n_weights))

    def _at(self, w) -> Evaluation:
        w = check_weights(w, self.net.n_weights)
        kept = self._kept
        last = kept.evaluation
        if last is None or not np.array_equal(w, last.w):
            # The kept evaluation never left this objective and its
            # with_alpha copies, so its arrays are free to overwrite; forget
            # it first, so that a pass interrupted partway (an exception,
            # Ctrl-C) cannot leave half-overwritten arrays recorded as the
            # evaluation at the old w.
            kept.evaluation = None
            last = kept.evaluation = Evaluation(self, w, recycle=last)
        if last.prior is not self._decay:          # kept by a with_alpha copy
            last = last.with_prior(self._decay)
        return last

    def pattern_errors(self, w) -> Array:
        """E_n(w) for every pattern, shape (N,); no weight decay."""
        return self._at(w).pattern_errors()

    def sum_over_batches(self, w, statistic, *args, size: int | None = None):
        """sum over batches of ``statistic(batch, *args)`` (an array), each
        batch a :class:`~sopt.evaluation.BatchPass` of at most ``size``
        patterns at w: how a posterior structure gathers its own curvature
        statistics (no weight decay). ``statistic`` must be picklable (a
        module-level function) for :class:`sopt.distributed.ShardedObjective`."""
        w = check_weights(w, self.net.n_weights)
        total = None
        for batch in self._at(w).batches(size):
            term = np.asarray(statistic(batch, *args), dtype=float)
            total = term.copy() if total is None else total + term
        return total

    def value(self, w) -> float:
        """E(w). Cost Theta(N W)."""
        return self._at(w).value()

    def gradient(self, w) -> Array:
        """dE/dw by error backpropagation, shape (W,). Cost Theta(N W),
        memory O(chunk * units)."""
        return self._at(w).gradient()

    def value_and_gradient(self, w) -> tuple[float, Array]:
        """(E(w), dE/dw) from one forward and one backward pass, checking w
        once: what a sampler's leapfrog step or a first-order method needs
        at each new w. The evaluation is kept as by ``value``, so a
        Hessian at the same w reuses its passes. Cost Theta(N W)."""
        return self.unchecked_value_and_gradient(
            check_weights(w, self.net.n_weights))

    def unchecked_value_and_gradient(self, w: Array) -> tuple[float, Array]:
        """:meth:`value_and_gradient` for a w the caller built itself, a
        finite float64 (W,) vector: not checked, the last evaluation's
        arrays recycled without comparing w to it (a sampler never returns
        to the same w). The gradient is a fresh array."""
        kept = self._kept
        last, kept.evaluation = kept.evaluation, None
        ev = kept.evaluation = Evaluation(self, w, recycle=last)
        return ev.value(), ev.gradient()

    def hvp(self, w, v) -> Array:
        """Hessian-vector product H v by R-propagation (Pearlmutter 1994).

        v of shape (W,) or a (W, P) block of directions. Exact, including
        weight decay. Cost Theta(P N W), memory O(chunk P units).
        """
        return self._at(w).hvp(v)

    def gnvp(self, w, v) -> Array:
        """Gauss-Newton-vector product (sum_n J_n^T M_n J_n + alpha I) v.
        Shapes and cost as :meth:`hvp`."""
        return self._at(w).gnvp(v)

    def hessian(self, w, kind: str = "exact", algorithm: str = "structured",
                eps: float | None = None, max_bytes: float | None = None, *,
                method: str | None = None) -> Array:
        """The W x W Hessian of E or an approximation of it (weight decay
        included), shape (W, W).

        kind : str
            Which matrix: ``"exact"`` the Hessian; ``"gauss_newton"``
            sum_n J_n^T M_n J_n (PSD for the built-in losses);
            ``"diagonal"`` Becker and Le Cun's approximation, as a diagonal
            matrix (cost Theta(N W)).
        algorithm : str
            How it is computed: ``"structured"`` O(N W^2) (see
            :mod:`sopt.hessian`); ``"rop"`` R-propagation along the W unit
            directions, O(N W^2) with a larger constant (the independent
            check); for the exact Hessian also ``"fd"`` four-point
            differences of E, O(W^3), error O(eps^2), and ``"mixed"``
            central differences of the backprop gradient, O(W^2). Any other
            pair is a ValueError.
        eps : float or (W,) array, optional
            The step of "fd" and "mixed" (default: see
            :mod:`sopt.finite_diff`).
        max_bytes : float, optional
            Refuse (MemoryError) if the dense result would exceed this
            (default :data:`sopt.hessian.DEFAULT_MAX_BYTES`, 4 GiB).
        method : str, deprecated
            The old single argument: "exact", "gauss_newton" and
            "diagonal" are kinds, "fd" and "mixed" algorithms of the exact
            Hessian; warns (DeprecationWarning).
        """
        kind, algorithm = _hessian.hessian_request(kind, algorithm, method)
        w = check_weights(w, self.net.n_weights)
        H = self._hessian_without_data_pass(w, kind, algorithm, eps, max_bytes)
        if H is not None:
            return H
        return self._at(w).curvature(kind, algorithm)

    def hessian_diagonal(self, w) -> Array:
        """Becker and Le Cun's diagonal approximation (PRML sec. 5.4.1) plus
        alpha, shape (W,). An approximation; cost Theta(N W)."""
        return self._at(w).hessian_diagonal()

    def inverse_outer_product(self, w, block_size: int = 1,
                              max_bytes: float | None = None) -> Array:
        """(alpha I + sum_n J_n^T M_n J_n)^{-1} by sequential rank-one updates,
        one pattern and output at a time (PRML eq. 5.89), without a W^3
        factorisation. Needs alpha > 0 and a factorable M (built-in losses).
        With masks the inverse is taken on the weights in use (masked rows
        and columns of A are zero; theirs are zero in the result too).
        Cost O(N K W^2), memory W^2 + N K W."""
        w = check_weights(w, self.net.n_weights)
        block_size = check_positive_int(block_size, "block_size")
        _hessian.check_dense_size(self.net.n_weights, max_bytes, "inverse")
        return self._at(w).inverse_outer_product(block_size)

    def __repr__(self) -> str:
        return (f"Objective({self.net!r}, N={self.n_patterns}, {self.output_loss!r}, "
                f"alpha={self.alpha})")


def __getattr__(name: str):
    if name == "HESSIAN_METHODS":       # the old single argument of hessian
        warn_renamed("sopt.objective.HESSIAN_METHODS",
                     "HESSIAN_KINDS and HESSIAN_ALGORITHMS")
        return tuple(_hessian.METHOD_AS_KIND)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
