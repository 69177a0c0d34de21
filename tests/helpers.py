"""Plain helpers shared by the test modules: tolerances, central
differences under the names the tests use, user-defined activations and
losses, the table of output/loss pairings, random problems, the paths of
the checkout and the test data, a Dask cluster, a call counter and a
function that must not be called. Test modules import them with
``from helpers import ...``: tests/ has no __init__.py, so pytest puts
tests/ (the folder of tests/conftest.py) on sys.path; conftest.py itself
holds fixtures and hooks only.

Tolerances used throughout
--------------------------
Central differences with step h ~ macheps^(1/3) ~ 6e-6 (times max(1, |x|))
have truncation error ~ h^2 |f'''| / 6 ~ 6e-12 |f'''| and round-off
~ macheps |f| / h ~ 4e-11 |f|. On the small random networks used here f, f'
and f''' are all O(1)-O(10) relative to each other, so the norm-wise relative
error of a correct derivative is ~1e-10; FD_RTOL = 1e-7 leaves three orders
of magnitude of headroom for unlucky |f'''| / |f'|, yet a wrong derivative
(a missing term, a transposed matrix, a wrong h') gives errors O(1e-2)-O(1).

Identities that involve no finite differences (chunked == unchunked,
alpha * w added, the same sum taken in a different order) only suffer
round-off of a few ulps per operation: EXACT_RTOL = 1e-12.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import sopt
from sopt import finite_diff

FD_RTOL = 1e-7          # see module docstring
EXACT_RTOL = 1e-12      # round-off only
RELU_MARGIN = 1e-3      # no relu pre-activation closer than this to its kink
ROOT = Path(__file__).resolve().parents[1]          # the checkout: README.md, experiments/
DATA = ROOT / "tests" / "data"                      # files committed for the tests


# ------------------------------------------------ central differences
# the library's own, under the names the tests use
fd_gradient = finite_diff.gradient                  # dF/dw
fd_jacobian = finite_diff.jacobian                  # f(w).shape + (W,)
fd_rowwise_jacobian = finite_diff.rowwise_jacobian  # (N, K, D) of a row-wise map


# ------------------------------------------------------ user-defined parts
def diag_matrices(d):
    """(N, K) -> (N, K, K) batch of diagonal matrices (for loss Hessians)."""
    out = np.zeros(d.shape + d.shape[-1:])
    np.einsum("nkk->nk", out)[...] = d
    return out


def _logcosh_value(y, T):
    r = y - T       # log cosh r = logaddexp(r, -r) - log 2, overflow-free
    return (np.logaddexp(r, -r) - np.log(2.0)).sum(axis=1)


def _logcosh_hess(y, T):
    return diag_matrices(1.0 - np.tanh(y - T) ** 2)


LOGCOSH = sopt.Loss(_logcosh_value, lambda y, T: np.tanh(y - T),
                    _logcosh_hess, name="logcosh")

_C2 = 0.7 ** 2      # Cauchy scale c^2


def _cauchy_hess(y, T):
    r2 = (y - T) ** 2 / _C2
    return diag_matrices((1 - r2) / (1 + r2) ** 2)


# E_n = c^2/2 sum_k log(1 + r_k^2 / c^2), dE/dy = r / (1 + r^2/c^2)
CAUCHY = sopt.Loss(lambda y, T: 0.5 * _C2 * np.log1p((y - T) ** 2 / _C2).sum(axis=1),
                   lambda y, T: (y - T) / (1 + (y - T) ** 2 / _C2),
                   _cauchy_hess, name="cauchy")

# E_n = sum_k log(1 + r_k^2) as a (value, grad, hess) triple: its curvature
# is negative for |r| > 1, so Gauss-Newton and the exact Hessian differ
UNIT_CAUCHY = (lambda y, T: np.log1p((y - T) ** 2).sum(axis=1),
               lambda y, T: 2 * (y - T) / (1 + (y - T) ** 2),
               lambda y, T: diag_matrices(2 * (1 - (y - T) ** 2) / (1 + (y - T) ** 2) ** 2))

# arctan as an (h, dh, d2h) triple, and x * sigmoid(x) ("swish") as an Activation
ARCTAN_TRIPLE = (np.arctan, lambda a: 1.0 / (1.0 + a * a),
                 lambda a: -2.0 * a / (1.0 + a * a) ** 2)


def _sig(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _swish_dh(a):
    s = _sig(a)
    return s + a * s * (1 - s)


def _swish_d2h(a):
    s = _sig(a)
    return s * (1 - s) * (2 + a * (1 - 2 * s))


SWISH = sopt.Activation(lambda a: a * _sig(a), _swish_dh, _swish_d2h, name="swish")


# ------------------------------------------------------ output/loss pairs
# (id, output activation, loss, K, target kind)
OUTPUT_LOSS_CASES = [
    ("identity-sse", "identity", "sse", None, "gauss"),
    ("logistic-binary_ce", "logistic", "binary_ce", 1, "unit"),
    ("softmax-softmax_ce", "softmax", "softmax_ce", 3, "onehot"),
    ("logistic-sse", "logistic", "sse", None, "unit"),
    ("softmax-sse", "softmax", "sse", 3, "gauss"),
    ("identity-logcosh", "identity", LOGCOSH, None, "gauss"),
    ("identity-cauchy", "identity", CAUCHY, None, "gauss"),
    ("logistic-binary_ce-K3", "logistic", "binary_ce", 3, "unit"),
    ("softmax-softmax_ce-labels", "softmax", "softmax_ce", 3, "labels"),
    ("softmax-softmax_ce-soft", "softmax", "softmax_ce", 3, "prob"),
    ("softmax-binary_ce", "softmax", "binary_ce", 3, "unit"),   # non-canonical CE
]
OUTPUT_LOSS_IDS = [p[0] for p in OUTPUT_LOSS_CASES]


def make_targets(rng, n: int, k: int, kind: str):
    """Targets of one kind: "gauss", "gauss2" (twice the spread: Cauchy
    curvature < 0 for |r| > 1), "unit" (in (0, 1), not only 0/1), "unit1d"
    (k = 1, shape (n,)), "onehot", "labels" (integers), "prob" (rows sum to 1)."""
    if kind == "gauss":
        return rng.standard_normal((n, k))
    if kind == "gauss2":
        return 2.0 * rng.standard_normal((n, k))
    if kind == "unit":
        return rng.random((n, k))
    if kind == "unit1d":
        assert k == 1
        return rng.random(n)
    if kind == "onehot":
        return np.eye(k)[rng.integers(0, k, n)]
    if kind == "labels":
        return rng.integers(0, k, n)
    if kind == "prob":
        p = rng.random((n, k)) + 0.1
        return p / p.sum(axis=1, keepdims=True)
    raise ValueError(kind)


def random_weights(net, rng, scale: float = 0.5):
    """Fan-in scaled weights plus noise on every entry: biases and masked
    entries are non-zero too (masked ones must be ignored by the network)."""
    return (net.init_weights(seed=int(rng.integers(2**31)))
            + scale * rng.standard_normal(net.n_weights))


def relu_margin(net, w, X) -> float:
    """Smallest |a| over the units of relu layers (inf if there are none)."""
    fp = net.propagate(np.asarray(w, float), np.asarray(X, float))
    m = np.inf
    for l, layer in enumerate(net.layers, start=1):
        if layer.activation.name == "relu":
            m = min(m, float(np.abs(fp.a[l]).min()))
    return m


def problem(net, kind: str, seed: int, n: int = 7):
    """(w, X, T) for ``net``; for relu networks, the first data seed whose
    pre-activations all stay RELU_MARGIN away from the kink.

    Why 1e-3 is enough: a central-difference step moves one weight by
    h <= 6e-6 max(1, |w_i|) (or one input by 6e-6 max(1, |x|)), which moves
    any pre-activation by at most ~h |z| prod |W| ~ 1e-4 for the O(1) values
    here, so no finite-difference stencil crosses a kink and relu is smooth
    (piecewise linear) on it.
    """
    for s in range(seed, seed + 200):
        rng = np.random.default_rng(s)
        w = random_weights(net, rng)
        X = rng.standard_normal((n, net.n_inputs))
        T = make_targets(rng, n, net.n_outputs, kind)
        if relu_margin(net, w, X) > RELU_MARGIN:
            return w, X, T
    raise AssertionError("no data seed keeps relu pre-activations off 0")


def has_skip_edges(net) -> bool:
    return any(len(layer.sources) > 1 for layer in net.layers)


def has_masks(net) -> bool:
    return any(m is not None for layer in net.layers for m in layer.masks)


# ---------------------------------------------------------------- Dask
def local_cluster():
    """Two single-threaded in-process Dask workers (the Dask tests' cluster);
    distributed is imported here so that other tests do not need it."""
    import distributed
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                    processes=False, dashboard_address=None)


# ------------------------------------------------ stand-ins for user code
def must_not_be_called(*args, **kwargs):
    """A stand-in for a user's function where the input must be refused
    before any call."""
    raise AssertionError("called before the input was checked")


class Counted:
    """Wrap a function and count its calls."""

    def __init__(self, fun):
        self.fun, self.calls = fun, 0

    def __call__(self, x):
        self.calls += 1
        return self.fun(x)
