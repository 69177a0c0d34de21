"""The training objective summed over Dask shards: data beyond one machine.

Every quantity sopt computes from data is a sum over patterns, E(w) =
sum_n E_n(w), and so is every derivative of it (gradient, Hessian-vector and
Gauss-Newton-vector products, exact / Gauss-Newton / diagonal Hessians).
:class:`ShardedObjective` keeps the patterns where they are, one in-memory
:class:`sopt.Objective` (``alpha=0``) per row chunk of a ``dask.array``,
built on a worker from that chunk and kept there. Each call sends w (and
v) once, runs one task per chunk with the in-memory code, and adds the
partial results on the cluster in a tree of fan-in 8 (depth log_8(chunks)), so
only W-vectors and W x W matrices reach the client; the weight-decay term is
added once, on the client.

Each task runs in :func:`sopt.allocator.kept_heap`: Dask's nanny starts its
workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes glibc's
thresholds low, so that every numpy temporary of the in-memory code would
otherwise be a fresh mmap paying its page faults anew (measured in the
README's "Data beyond one machine"). The workers' own settings are restored
at the end of each task and the freed memory handed back to the system, so
between calls the cluster behaves as its owner configured it.

This module is the only one in sopt that imports dask (``pip install
".[distributed]"`` from a clone); ``import sopt`` does not.
"""
from __future__ import annotations

import contextlib
import copy
import math

import numpy as np

import dask
import dask.array as da
from distributed import Client, Future, get_client

from .allocator import kept_heap
from .hessian import hessian_request
from ._validation import (as_float_array, check_finite, check_positive_int,
                          check_weights)
from .losses import get_loss
from .network import Network
from .objective import Objective, ObjectiveCallables

__all__ = ["ShardedObjective"]

Array = np.ndarray


# ----- what runs on the workers (module-level functions: picklable) -----
def _make_part(net, X, T, loss, chunk_size, rows):
    """The in-memory Objective of one chunk; bad data name their rows."""
    try:
        return Objective(net, X, T, loss=loss, alpha=0.0, chunk_size=chunk_size)
    except (ValueError, TypeError) as err:
        raise type(err)(f"chunk of rows {rows[0]}:{rows[1]}: {err}") from None


def _n_patterns(part) -> int:
    return part.n_patterns


def _target_sum_of_squares(part) -> float:
    return float(np.sum(np.square(part.T)))


def _call(part, keep_heap: bool, name: str, /, *args, **kwargs):
    with kept_heap() if keep_heap else contextlib.nullcontext():
        return getattr(part, name)(*args, **kwargs)


def _value(a):
    return a


def _add(*terms):
    total = terms[0].copy() if isinstance(terms[0], np.ndarray) else terms[0]
    for t in terms[1:]:
        total += t
    return total


def _check_dask_array(A, name: str, ndims: tuple) -> None:
    if not isinstance(A, da.Array):
        raise TypeError(f"{name}: expected a dask.array.Array chunked along "
                        f"patterns (rows), got {type(A).__name__}; wrap an "
                        f"in-memory array with dask.array.from_array({name}, "
                        f"chunks=(rows, -1))")
    if A.ndim not in ndims:
        raise ValueError(f"{name}: expected {' or '.join(map(str, ndims))} "
                         f"dimensions, got shape {A.shape}")
    if any(math.isnan(c) for c in A.chunks[0]):
        raise ValueError(f"{name}: unknown row chunk sizes; call "
                         f"{name}.compute_chunk_sizes() first")
    if A.ndim == 2 and A.numblocks[1] != 1:
        raise ValueError(f"{name}: must be chunked along patterns (rows) only, "
                         f"got {A.numblocks[1]} column chunks {A.chunks[1]}; use "
                         f"{name}.rechunk({{1: -1}})")


class ShardedObjective(ObjectiveCallables):
    """E(w) = sum_n E_n(w) + alpha/2 w^T w with the patterns on a Dask cluster.

    A :class:`sopt.objective.ObjectiveProtocol`, as :class:`sopt.Objective`
    is (``value``, ``gradient``, ``hvp``, ``gnvp``, ``hessian``,
    ``fun``/``jac``/``hess``/``hessp``, the LinearOperators, ``net``,
    ``loss``, ``alpha``, ``n_patterns``), so
    :func:`sopt.optimize.minimize` runs on it unchanged. Every derivative
    equals the in-memory one on the same data up to the order of summation.

    Parameters
    ----------
    net : Network
    X : dask.array (N, D), chunked along patterns (rows) only
    T : dask.array (N, K), or (N,) for K = 1 or softmax_ce class labels;
        the same row chunks as X
    loss, alpha : as for :class:`sopt.Objective`
    chunk_size : int, optional
        Patterns per batch *inside* each shard (bounds a worker's memory at
        O(chunk_size * units)); None means a whole shard at once.
    client : distributed.Client, optional
        Default: the current client (``distributed.get_client()``).

    Construction builds one in-memory Objective per shard on the workers
    (each checks its X and T: shapes, NaN/inf, target domain) and waits for
    them, so bad data raise ValueError here, naming the rows. The data are
    never gathered to the client; they stay on the workers for the life of
    this object. Memory on the client: O(W) per call, W^2 for a Hessian.

    The partial sums are added on the workers in a tree of fan-in
    :attr:`split_every` (8, as dask.array's reductions take a
    ``split_every``): depth ceil(log_8(shards)), each level one cluster
    round trip, whose scheduler latency is a floor on a call's time however
    small the data (measured in the README's "Data beyond one machine").

    Each shard's task runs in :func:`sopt.allocator.kept_heap` (the
    worker's malloc thresholds raised for the task, restored after it, and
    the freed memory trimmed; see the module docstring); set
    :attr:`keep_heap` to False to run the tasks under the workers' own
    settings.

    Calls are synchronous and not thread-safe (each shard's Objective keeps
    its last evaluation, so ``fun(w)`` then ``jac(w)`` runs the forward pass
    once, and overwrites its arrays at the next w).
    """

    split_every = 8
    keep_heap = True

    def __init__(self, net: Network, X, T, loss="sse", alpha: float = 0.0,
                 chunk_size: int | None = None, client: Client | None = None):
        if not isinstance(net, Network):
            raise TypeError(f"net: expected a Network, got {type(net).__name__}")
        _check_dask_array(X, "X", (2,))
        _check_dask_array(T, "T", (1, 2))
        if X.shape[1] != net.n_inputs:
            raise ValueError(f"X: expected shape (N, {net.n_inputs}) for a network "
                             f"with {net.n_inputs} inputs, got {X.shape}")
        if X.shape[0] != T.shape[0]:
            raise ValueError(f"X, T: different numbers of patterns, "
                             f"{X.shape[0]} and {T.shape[0]}")
        if X.shape[0] == 0:
            raise ValueError("X: needs at least one pattern (row)")
        if X.chunks[0] != T.chunks[0]:
            raise ValueError(f"X, T: must have the same row chunks, got "
                             f"{X.chunks[0]} and {T.chunks[0]}; use "
                             f"T.rechunk({{0: X.chunks[0]}})")
        self.loss = get_loss(loss)
        K = net.n_outputs
        if T.ndim == 2 and T.shape[1] != K:
            raise ValueError(f"T: expected shape (N, {K}) for a network with "
                             f"{K} outputs, got {T.shape}")
        if T.ndim == 1 and K > 1 and self.loss.targets != "simplex":
            raise ValueError(f"T: expected shape (N, {K}); a 1-D T is for one "
                             f"output, or class labels with softmax_ce")
        self.net = net
        self.alpha = alpha
        self.chunk_size = (None if chunk_size is None
                           else check_positive_int(chunk_size, "chunk_size"))
        if client is None:
            try:
                client = get_client()
            except ValueError:
                raise ValueError("client: no dask.distributed Client is running; "
                                 "start one with Client(address) or pass "
                                 "client=") from None
        elif not isinstance(client, Client):
            raise TypeError(f"client: expected a distributed.Client, got "
                            f"{type(client).__name__}")
        self.client = client
        self._n_patterns = int(X.shape[0])
        self._parts = self._persist(X, T)

    def _persist(self, X, T) -> list:
        """One in-memory Objective per non-empty row chunk, held on the workers."""
        starts = np.cumsum((0,) + X.chunks[0])
        parts, bounds = [], []
        for i, (x, t) in enumerate(zip(X.to_delayed().ravel(), T.to_delayed().ravel())):
            if X.chunks[0][i]:
                parts.append((x, t))
                bounds.append((int(starts[i]), int(starts[i + 1])))
        # one graph for all shards: X and T are read once, on the workers
        shards = [dask.delayed(_make_part)(self.net, x, t, self.loss,
                                           self.chunk_size, rows)
                  for (x, t), rows in zip(parts, bounds)]
        futures = self.client.compute(shards)
        counts = self.client.gather([self.client.submit(_n_patterns, f, pure=False)
                                     for f in futures])   # raises a shard's error
        if sum(counts) != self._n_patterns:
            raise ValueError(f"X: the shards hold {sum(counts)} patterns, "
                             f"expected {self._n_patterns}")
        return futures

    def close(self) -> None:
        """Release the shards on the workers (the object is unusable after)."""
        for f in self._parts:
            f.release()
        self._parts = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def with_alpha(self, alpha) -> "ShardedObjective":
        """The same objective with weight decay ``alpha`` (a number or (W,)).

        The new ShardedObjective uses the shards already held on the workers
        (no data read, nothing recomputed: the decay is added on the client)
        and holds its own references to them, so closing one of the two
        leaves the other usable. See :meth:`sopt.Objective.with_alpha`.
        """
        new = copy.copy(self)
        new.alpha = alpha
        new._parts = [Future(f.key, self.client) for f in self._parts]
        return new

    def target_sum_of_squares(self) -> float:
        """sum_n |t_n|^2 over all patterns (one task per shard, on the
        workers; the evidence framework's cap on beta needs it)."""
        return float(sum(self.client.gather(
            [self.client.submit(_target_sum_of_squares, p, pure=False)
             for p in self._open_parts()])))

    def _open_parts(self) -> list:
        """The shards' futures; ValueError once closed (a sum over none
        would be a silent 0)."""
        if not self._parts:
            raise ValueError("ShardedObjective: closed; build a new one")
        return self._parts

    def __copy__(self) -> "ShardedObjective":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce_ex__(self, protocol):
        raise TypeError(
            "ShardedObjective cannot be pickled: its data live on a Dask cluster "
            "as futures of this client. Pickle what rebuilds it (the network, the "
            "weights, and where X and T come from) and make a new one there.")

    @property
    def n_patterns(self) -> int:
        return self._n_patterns

    @property
    def n_shards(self) -> int:
        return len(self._parts)

    # ----- one call: send the arguments, one task per shard, tree sum -----
    def _sum(self, name: str, /, *args, **kwargs):
        """sum over shards of ``part.name(*args, **kwargs)``, added on the
        cluster; only the total comes back."""
        client = self.client
        # w (and v) travel with a task of their own, which the shards' tasks
        # wait for on the cluster: no blocking scatter, one round trip less
        args = [client.submit(_value, a, pure=False) if isinstance(a, np.ndarray) else a
                for a in args]
        level = [client.submit(_call, p, self.keep_heap, name, *args,
                               pure=False, **kwargs)
                 for p in self._open_parts()]
        k = self.split_every
        while len(level) > 1:
            level = [client.submit(_add, *level[i:i + k], pure=False)
                     if len(level[i:i + k]) > 1 else level[i]
                     for i in range(0, len(level), k)]
        return level[0].result()

    def value(self, w) -> float:
        """E(w). Cost Theta(N W) on the workers, O(W) on the client."""
        w = check_weights(w, self.net.n_weights)
        return float(self._sum("value", w) + 0.5 * (self._decay * w) @ w)

    def gradient(self, w) -> Array:
        """dE/dw by error backpropagation on each shard, shape (W,)."""
        w = check_weights(w, self.net.n_weights)
        return self._sum("gradient", w) + self._decay * w

    def _directions(self, v) -> Array:
        v = as_float_array(v, "v")
        W = self.net.n_weights
        if v.ndim not in (1, 2) or v.shape[0] != W or v.size == 0:
            raise ValueError(f"v: expected shape ({W},) or ({W}, P) with P >= 1, "
                             f"got {v.shape}")
        check_finite(v, "v")
        return v

    def _product(self, method: str, w, v) -> Array:
        w = check_weights(w, self.net.n_weights)
        v = self._directions(v)
        decay = self._decay if v.ndim == 1 else self._decay[:, None]
        return self._sum(method, w, v) + decay * v

    def hvp(self, w, v) -> Array:
        """Hessian-vector product H v by R-propagation (Pearlmutter 1994);
        v of shape (W,) or (W, P). Cost Theta(P N W) on the workers."""
        return self._product("hvp", w, v)

    def gnvp(self, w, v) -> Array:
        """Gauss-Newton-vector product (sum_n J_n^T M_n J_n + alpha I) v."""
        return self._product("gnvp", w, v)

    def hessian(self, w, kind: str = "exact", algorithm: str = "structured",
                eps: float | None = None, max_bytes: float | None = None, *,
                method: str | None = None) -> Array:
        """The W x W Hessian of E or an approximation of it (weight decay
        included), shape (W, W); arguments as :meth:`sopt.Objective.hessian`.

        ``kind`` "exact" and "gauss_newton" by "structured" or "rop": one
        W x W matrix per shard, O(N W^2) on the workers, summed in a tree on
        the cluster (memory W^2 per worker task and on the client);
        "diagonal": Becker and Le Cun's approximation, W-vectors only;
        ``algorithm`` "fd"/"mixed": finite differences of
        :meth:`value`/:meth:`gradient` on the client, one cluster round trip
        per evaluation (checks only).
        """
        kind, algorithm = hessian_request(kind, algorithm, method)
        w = check_weights(w, self.net.n_weights)
        H = self._hessian_without_data_pass(w, kind, algorithm, eps, max_bytes)
        if H is not None:
            return H
        H = self._sum("hessian", w, kind=kind, algorithm=algorithm, max_bytes=max_bytes)
        H[np.diag_indices(self.net.n_weights)] += self._decay
        return H

    def sum_over_batches(self, w, statistic, *args, size: int | None = None):
        """sum of ``statistic(batch, *args)`` over every shard's batches
        (see :meth:`sopt.Objective.sum_over_batches`), added on the cluster."""
        w = check_weights(w, self.net.n_weights)
        return self._sum("sum_over_batches", w, statistic, *args, size=size)

    def hessian_diagonal(self, w) -> Array:
        """Becker and Le Cun's diagonal approximation plus alpha, shape (W,)."""
        w = check_weights(w, self.net.n_weights)
        return self._sum("hessian_diagonal", w) + self._decay

    def __repr__(self) -> str:
        return (f"ShardedObjective({self.net!r}, N={self.n_patterns}, "
                f"shards={self.n_shards}, loss={self.loss.name!r}, "
                f"alpha={self.alpha})")
