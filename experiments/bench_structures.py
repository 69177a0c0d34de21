"""sopt's posterior structures against laplace-torch's on the same MLP.

Run:  python experiments/bench_structures.py            (small: agreement table)
      python experiments/bench_structures.py --scale    (784-1000-10, timings)
      options: --side torch|sopt|both, --threads T, --n-test-timed M

Small mode. A tanh MLP (sopt.mlp([D, H, K], hidden="tanh")) is trained with
sopt to its MAP, copied into the identical torch
``nn.Sequential(Linear, Tanh, Linear)`` (float64; the copy is checked: same
outputs to 1e-12, weights back unchanged), and for (a) regression (sse,
identity output, noise sigma) and (b) softmax classification three
computations of each structure's log evidence at a few prior precisions and
of its GLM function-space covariance on new inputs are compared:

- laplace-torch 0.3, default backend (curvlinops, exact GGN, no sampling),
  fitted on ONE batch of all N patterns: FullLaplace ("dense"), DiagLaplace
  ("diagonal"), KronLaplace ("kfac"), FullLLLaplace ("last_layer": dense on
  the output layer's weight and bias);
- a numpy reference written here from the formulas of laplace-torch's source
  (sopt's Jacobians, the curvature assembled densely; small W only);
- sopt: ``sopt.bayes.laplace(objective, w, alpha=, beta=, structure=NAME)``,
  ``post.log_evidence`` and ``post.predict(X, full_cov=True,
  include_noise=False)`` / ``post.logit_variance(X)``. Until sopt has the
  ``structure`` argument, every structure but "dense" prints "not
  available"; "dense" then falls back to today's laplace (the dense
  Gauss-Newton posterior), so the mapping below is checked today.

The curvature each structure approximates, with G_n = J_n^T Lam_n J_n the
Gauss-Newton term of pattern n (Lam_n = I for sse, diag(p) - p p^T for
softmax; J_n = d outputs / d w, pre-activations for softmax):
  dense      sum_n G_n
  diagonal   diag(sum_n G_n)
  kfac       per Linear layer, block-diagonal over weight and bias:
             weight  B (x) A,  B = sum_n J_s,n^T Lam_n J_s,n (out x out; J_s,n =
             d outputs / d the layer's pre-activations), A = (1/N) sum_n a_n a_n^T
             (in x in, a_n the layer's inputs), in the row-major order of a
             (out, in) weight matrix; bias  B (its exact Gauss-Newton block)
  last_layer the block of sum_n G_n on the output layer's weight and bias;
             every other weight fixed at w_MAP and outside the prior terms.

Mapping of the quantities. alpha (sopt) = prior_precision (laplace-torch,
scalar); beta (sopt, regression) = 1 / sigma_noise^2; classification has no
beta and sigma_noise = 1. laplace-torch's log_marginal_likelihood is
  -beta SSE/2 - (N K / 2) ln(2 pi / beta) - [ln|A| - W ln alpha + alpha |w|^2] / 2
(regression; classification: -sum CE - [...] / 2), A = beta H + alpha I, the
sums over the N patterns (reduction="sum"), W the parameters of the
structure. With E_D = SSE / 2 that is term by term PRML eq. 5.175 (with N K
targets) and eq. 5.183, which sopt's log_evidence computes: the two agree
with NO constant offset. The one definitional difference to watch is
last_layer: laplace-torch's prior terms cover the last layer's parameters
only; a sopt definition that keeps the other weights' prior
-alpha |w_rest|^2 / 2 + (W_rest / 2) ln alpha differs by exactly that (printed
as "offset if the rest keep their prior").

Scale mode: the 784-1000-10 tanh MLP (795,010 weights) on 60,000
digits-derived patterns (scikit-learn's 8x8 digits zoomed to 28x28, shifted
by up to 2 pixels, plus noise; labels their digit), 10,000 more for the
predictive. The weights are sopt's L-BFGS on a subset (not the MAP of all
60,000: both sides get the same weights; the curvature needs no minimum).
Each side runs in its own process (its peak memory is ru_maxrss of that
process) on --threads threads (default 2):
- torch: KronLaplace fit (batches of --batch), optimize_prior_precision(
  method="marglik", scalar prior, laplace-torch's defaults: 100 Adam steps,
  lr 0.1, from 1), GLM predictive with the probit link, timed on
  --n-test-timed points in chunks of --chunk and scaled linearly to 10,000
  (its cost is linear in the points: a dense (chunk, K, W) Jacobian each);
- sopt: laplace(..., structure="kfac"), MacKay's fixed point alpha <-
  gamma / |w|^2 (PRML eq. 5.178) to 1e-6 relative, predict_proba on all
  10,000 points; "not available" until sopt has the structure.
Timings are read as ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import sopt
from sopt.bayes import laplace as sopt_laplace

TORCH_CLASSES = {"dense": "FullLaplace", "diagonal": "DiagLaplace",
                 "kfac": "KronLaplace", "last_layer": "FullLLLaplace"}
PRIOR_PRECISIONS = (0.1, 1.0, 10.0)
SIGMA_NOISE = 0.3            # regression: beta = 1 / 0.3^2
TRAIN_ALPHA = 1.0            # the prior precision sopt's MAP is trained under
AGREE = 1e-8                 # the target for sopt against laplace-torch
SCALE_SIZES = (784, 1000, 10)


# ---------------------------------------------------------------- conversion
def check_mlp(net) -> None:
    """net must be a chain of single-edge, unmasked layers with tanh hidden
    units: what nn.Sequential(Linear, Tanh, ..., Linear) can copy."""
    for i, layer in enumerate(net.layers):
        last = i == len(net.layers) - 1
        if len(layer.edges) != 1 or layer.edges[0].mask is not None:
            raise ValueError("torch copy: every layer needs one unmasked incoming edge")
        if layer.edges[0].source.index != i:
            raise ValueError("torch copy: a chain of layers only (no skip edges)")
        if not last and layer.activation.name != "tanh":
            raise ValueError("torch copy: tanh hidden units only")


def to_torch(net, w):
    """The float64 torch nn.Sequential computing net's output
    pre-activations at w. sopt's layout per layer ((fan_out, fan_in) row-major,
    then the bias) is torch's parameters_to_vector order, so the copy is a
    plain reshape of consecutive slices of w."""
    import torch
    check_mlp(net)
    modules = []
    for i, lp in enumerate(net.unpack(w)):
        W = lp.weights[0]
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(W)))
            lin.bias.copy_(torch.from_numpy(np.array(lp.bias)))
        modules.append(lin)
        if i < len(net.layers) - 1:
            modules.append(torch.nn.Tanh())
    return torch.nn.Sequential(*modules)


def from_torch(model) -> np.ndarray:
    """The weight vector of a torch model in sopt's layout, (W,)."""
    from torch.nn.utils import parameters_to_vector
    return parameters_to_vector(model.parameters()).detach().numpy().copy()


def check_conversion(net, w, model, X) -> None:
    """The copy is exact: weights round-trip, outputs agree to 1e-12."""
    import torch
    if not np.array_equal(from_torch(model), w):
        raise AssertionError("torch copy: the weights do not round-trip")
    a_sopt = net.linearise(w, X, of="a")[0]
    with torch.no_grad():
        a_torch = model(torch.from_numpy(X)).numpy()
    err = np.max(np.abs(a_sopt - a_torch)) / max(np.max(np.abs(a_sopt)), 1e-300)
    if err > 1e-12:
        raise AssertionError(f"torch copy: outputs differ by {err:.2e} (relative)")


# ---------------------------------------------------------------- small data
def small_problem(task: str, seed: int = 0):
    """(net, X, T, labels, X_new): a sine-like regression or a 3-class
    problem on 60 patterns, 2 inputs, 6 tanh units (W = 32 or 39)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (60, 2))
    X_new = rng.uniform(-3, 3, (7, 2))
    if task == "regression":
        T = np.column_stack([np.sin(X[:, 0]) + X[:, 1] ** 2 / 4,
                             np.cos(X[:, 0] * X[:, 1])])
        T += SIGMA_NOISE * rng.standard_normal(T.shape)
        return sopt.mlp([2, 6, 2], hidden="tanh"), X, T, None, X_new
    labels = (np.arctan2(X[:, 1], X[:, 0]) // (2 * np.pi / 3)).astype(int) % 3
    flip = rng.random(60) < 0.1
    labels[flip] = rng.integers(0, 3, flip.sum())
    T = np.eye(3)[labels]
    return sopt.mlp([2, 6, 3], hidden="tanh", output="softmax"), X, T, labels, X_new


def train_map(net, X, T, loss: str, beta):
    """w_MAP of beta E_D + TRAIN_ALPHA |w|^2 / 2 (E_D + ... without beta),
    by sopt's damped Newton to |g|_inf < 1e-10."""
    decay = TRAIN_ALPHA / (beta or 1.0)
    obj = sopt.Objective(net, X, T, loss=loss, alpha=decay)
    res = sopt.optimize.minimize(obj, net.init_weights(seed=1), method="newton",
                                 options={"gtol": 1e-10, "maxiter": 500})
    return res.x


# ----------------------------------------------------------- numpy reference
def output_hessians(a: np.ndarray, loss: str) -> np.ndarray:
    """Lam_n, (N, K, K): I for sse, diag(p) - p p^T for softmax_ce."""
    N, K = a.shape
    if loss == "sse":
        return np.broadcast_to(np.eye(K), (N, K, K))
    p = np.exp(a - a.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.einsum("nk,kl->nkl", p, np.eye(K)) - np.einsum("nk,nl->nkl", p, p)


def kfac_curvature(net, w, X, J, Lam) -> np.ndarray:
    """The K-FAC approximation as a dense (W, W) block-diagonal matrix: per
    layer B (x) A on the weight (row-major (out, in)), B on the bias."""
    fp = net.propagate(w, X)
    H = np.zeros((net.n_weights, net.n_weights))
    for layer in net.layers:
        b = layer.bias_slice
        Jb = J[:, :, b]                    # d outputs / d this layer's pre-activations
        B = np.einsum("nki,nkl,nlj->ij", Jb, Lam, Jb)
        a = fp.z[layer.edges[0].source.index]
        A = a.T @ a / len(X)
        ws = layer.edges[0].weights
        H[ws, ws] = np.kron(B, A)
        H[b, b] = B
    return H


def curvature(net, w, X, loss: str, structure: str):
    """(H, idx): the structure's approximation of the Gauss-Newton matrix on
    the weights it covers, and their indices."""
    a, J = net.linearise(w, X, of="a")
    Lam = output_hessians(a, loss)
    if structure == "kfac":
        return kfac_curvature(net, w, X, J, Lam), np.arange(net.n_weights)
    G = np.einsum("nkv,nkl,nlu->vu", J, Lam, J)
    if structure == "dense":
        return G, np.arange(net.n_weights)
    if structure == "diagonal":
        return np.diag(np.diag(G)), np.arange(net.n_weights)
    last = net.layers[-1]
    idx = np.r_[last.edges[0].weights, last.bias_slice]
    return G[np.ix_(idx, idx)], idx


def reference(net, w, X, T, X_new, loss: str, structure: str, alphas, beta):
    """Log evidence per alpha and the GLM covariance (N_new, K, K) at
    alphas[0], written from laplace-torch's formulas (module docstring)."""
    H, idx = curvature(net, w, X, loss, structure)
    lossobj = sopt.losses.get_loss(loss)
    E_D = sopt.Objective(net, X, T, loss=loss).value(w)
    n_targets = T.size
    loglik = -(beta or 1.0) * E_D - n_targets * lossobj.log_normaliser(beta)
    wi = w[idx]
    evidences = []
    for alpha in alphas:
        A = (beta or 1.0) * H + alpha * np.eye(len(idx))
        logdet = np.linalg.slogdet(A)[1]
        evidences.append(loglik - 0.5 * (logdet - len(idx) * np.log(alpha)
                                         + alpha * wi @ wi))
    A = (beta or 1.0) * H + alphas[0] * np.eye(len(idx))
    Jn = net.linearise(w, X_new, of="a")[1][:, :, idx]
    cov = np.einsum("nkv,vu,nlu->nkl", Jn, np.linalg.inv(A), Jn)
    return np.array(evidences), cov


# ------------------------------------------------------------- laplace-torch
def torch_structure(net, w, X, labels_or_T, X_new, task, structure, alphas):
    """laplace-torch's log_marginal_likelihood per alpha and GLM covariance
    at alphas[0], fitted on one batch of all N patterns."""
    import laplace
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    # FullLaplace / FullLLLaplace materialise the GGN as linop @ torch.eye(P),
    # torch.eye in the default dtype: float32 unless set, a 1e-8 error
    torch.set_default_dtype(torch.float64)
    model = to_torch(net, w)
    check_conversion(net, w, model, X)
    y = torch.from_numpy(labels_or_T)
    lik = "regression" if task == "regression" else "classification"
    sigma = SIGMA_NOISE if task == "regression" else 1.0
    cls = getattr(laplace, TORCH_CLASSES[structure])
    la = cls(model, lik, sigma_noise=sigma, prior_precision=alphas[0])
    la.fit(DataLoader(TensorDataset(torch.from_numpy(X), y), batch_size=len(X)))
    ev = [la.log_marginal_likelihood(
        prior_precision=torch.tensor(float(p), dtype=torch.float64)).item()
          for p in alphas]
    la.prior_precision = float(alphas[0])
    # the logit covariance before any link function: the private method is
    # what la(x, pred_type="glm") calls (regression returns it unchanged)
    _, f_var = la._glm_predictive_distribution(torch.from_numpy(X_new))
    return np.array(ev), f_var.numpy()


# ---------------------------------------------------------------------- sopt
def sopt_structure(net, w, X, T, X_new, loss, structure, alphas, beta):
    """sopt's log evidence per alpha and GLM covariance at alphas[0], or
    None if this sopt has no such structure."""
    obj = sopt.Objective(net, X, T, loss=loss)
    posts = []
    with warnings.catch_warnings():
        # w is the MAP at TRAIN_ALPHA only: at the other alphas sopt warns
        # that w is not a minimum, which does not change the formula compared
        warnings.simplefilter("ignore", sopt.bayes.NotAtMinimumWarning)
        for alpha in alphas:
            try:
                posts.append(sopt_laplace(obj, w, alpha=alpha, beta=beta,
                                          structure=structure))
            except TypeError:
                if structure != "dense":
                    return None
                # today's laplace: the dense Gauss-Newton posterior
                posts.append(sopt_laplace(obj, w, alpha=alpha, beta=beta))
    post = posts[0]
    if loss == "sse":
        cov = post.predict(X_new, full_cov=True, include_noise=False)[1]
    else:
        cov = post.logit_variance(X_new)[1]
    return np.array([p.log_evidence for p in posts]), cov


def rest_prior_offset(net, w, alpha) -> float:
    """ln of the other weights' prior as PRML writes it,
    -alpha |w_rest|^2 / 2 + (W_rest / 2) ln alpha: what a last-layer log
    evidence that keeps them in the prior adds to laplace-torch's."""
    last = net.layers[-1]
    keep = np.ones(net.n_weights, bool)
    keep[last.edges[0].weights] = keep[last.bias_slice] = False
    wr = w[keep]
    return -0.5 * alpha * wr @ wr + 0.5 * keep.sum() * np.log(alpha)


# ---------------------------------------------------------------- small mode
def rel_diff(x, ref) -> float:
    """max |x - ref| / max |ref| (NaN when x is missing)."""
    if x is None:
        return float("nan")
    scale = max(float(np.max(np.abs(ref))), 1e-300)
    return float(np.max(np.abs(np.asarray(x) - ref))) / scale


def small_task(task: str, have_torch: bool) -> list[dict]:
    """One row per structure: laplace-torch, the numpy reference and sopt."""
    net, X, T, labels, X_new = small_problem(task)
    loss = "sse" if task == "regression" else "softmax_ce"
    beta = 1.0 / SIGMA_NOISE ** 2 if task == "regression" else None
    w = train_map(net, X, T, loss, beta)
    rows = []
    for structure in TORCH_CLASSES:
        ref = reference(net, w, X, T, X_new, loss, structure, PRIOR_PRECISIONS, beta)
        mine = sopt_structure(net, w, X, T, X_new, loss, structure, PRIOR_PRECISIONS, beta)
        peer = (torch_structure(net, w, X, T if labels is None else labels, X_new,
                                task, structure, PRIOR_PRECISIONS)
                if have_torch else None)
        rows.append({"task": task, "structure": structure, "W": net.n_weights,
                     "ref": ref, "sopt": mine, "torch": peer})
    offset = [rest_prior_offset(net, w, a) for a in PRIOR_PRECISIONS]
    rows[-1]["offset"] = np.array(offset)
    return rows


def print_small(rows: list[dict]) -> None:
    """The table: per task and structure, log evidences and relative
    differences of log evidence and GLM covariance."""
    print(f"{'task':<15}{'structure':<11}{'W':>4}  {'torch log ev at alpha=' + str(PRIOR_PRECISIONS):<46}"
          f"{'torch-ref ev':>13}{'torch-ref cov':>14}{'sopt-torch ev':>14}{'sopt-torch cov':>15}")
    for r in rows:
        base = r["torch"] if r["torch"] is not None else r["ref"]
        evs = ", ".join(f"{v:.6f}" for v in base[0])
        tr = (rel_diff(r["torch"][0], r["ref"][0]), rel_diff(r["torch"][1], r["ref"][1])) \
            if r["torch"] is not None else (float("nan"),) * 2
        if r["sopt"] is None:
            st = "not available"
        else:
            st = (f"{rel_diff(r['sopt'][0], base[0]):14.1e}"
                  f"{rel_diff(r['sopt'][1], base[1]):15.1e}")
        print(f"{r['task']:<15}{r['structure']:<11}{r['W']:>4}  {evs:<46}"
              f"{tr[0]:13.1e}{tr[1]:14.1e}{st:>29}")
        if "offset" in r:
            print(f"{'':<30}offset if the rest keep their prior (add to torch's): "
                  + ", ".join(f"{v:.6f}" for v in r["offset"]))
    print(f"(relative differences: max |x - y| / max |y|; target sopt vs torch <= {AGREE:g}; "
          "ref = numpy from laplace-torch's formulas)")


def run_small(have_torch: bool) -> None:
    rows = []
    for task in ("regression", "classification"):
        rows += small_task(task, have_torch)
    print_small(rows)


# ---------------------------------------------------------------- scale mode
def digits_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n patterns (n, 784) in [0, 1] and their labels: scikit-learn's 8x8
    digits zoomed to 28x28, shifted by up to 2 pixels each way, plus
    N(0, 0.05^2) noise, clipped."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = zoom(digits.images / 16.0, (1, 3.5, 3.5), order=1)      # (1797, 28, 28)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(images), n)
    dy, dx = rng.integers(0, 5, n), rng.integers(0, 5, n)
    rows = dy[:, None] + np.arange(28)
    cols = dx[:, None] + np.arange(28)
    X = padded[pick[:, None, None], rows[:, :, None], cols[:, None, :]].reshape(n, 784)
    X = np.clip(X + 0.05 * rng.standard_normal(X.shape), 0.0, 1.0)
    return X, digits.target[pick]


def scale_weights(X, labels, n_sub: int, iters: int) -> np.ndarray:
    """Weights of the 784-1000-10 softmax MLP: sopt's L-BFGS, ``iters``
    iterations on the first n_sub patterns, alpha = TRAIN_ALPHA."""
    net = sopt.mlp(list(SCALE_SIZES), hidden="tanh", output="softmax")
    obj = sopt.Objective(net, X[:n_sub], np.eye(10)[labels[:n_sub]],
                         loss="softmax_ce", alpha=TRAIN_ALPHA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        res = sopt.optimize.minimize(obj, net.init_weights(seed=0), method="l-bfgs-b",
                                     options={"maxiter": iters})
    return res.x


def peak_rss_gb() -> float:
    """This process's peak resident memory, GB (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds; CPU counts every thread of this process: on a
    shared machine wall time also counts the waits for a core."""
    return time.perf_counter(), time.process_time()


def phases(t: list, predict_factor: float) -> dict:
    """Wall and CPU seconds of fit, prior and predict from four clock()s,
    the predictive scaled by predict_factor."""
    out = {}
    for i, name in enumerate(("fit", "prior", "predict")):
        factor = predict_factor if name == "predict" else 1.0
        out[name] = (t[i + 1][0] - t[i][0]) * factor
        out[name + "_cpu"] = (t[i + 1][1] - t[i][1]) * factor
    return out


def scale_torch(data: dict, args) -> dict:
    """laplace-torch KronLaplace: fit, marglik prior optimisation, GLM probit
    predictive timed on args.n_test_timed points, scaled to all test points."""
    import torch
    from laplace import KronLaplace
    from torch.utils.data import DataLoader, TensorDataset
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    net = sopt.mlp(list(SCALE_SIZES), hidden="tanh", output="softmax")
    model = to_torch(net, data["w"])
    X, y = torch.from_numpy(data["X"]), torch.from_numpy(data["labels"])
    la = KronLaplace(model, "classification", prior_precision=1.0)
    t = [clock()]
    la.fit(DataLoader(TensorDataset(X, y), batch_size=args.batch))
    t.append(clock())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # "link_approx is probit"
        la.optimize_prior_precision(method="marglik", pred_type="glm")
    t.append(clock())
    X_test = torch.from_numpy(data["X_test"][:args.n_test_timed])
    for chunk in torch.split(X_test, args.chunk):
        la(chunk, pred_type="glm", link_approx="probit")
    t.append(clock())
    n_test = len(data["X_test"])
    return {"side": "laplace-torch KronLaplace", **phases(t, n_test / len(X_test)),
            "predict_note": f"timed on {len(X_test)} points, x{n_test / len(X_test):g}",
            "alpha": la.prior_precision.item(),
            "log_evidence": la.log_marginal_likelihood().item(),
            "peak_gb": peak_rss_gb()}


def scale_sopt(data: dict, args) -> dict:
    """sopt K-FAC: laplace, MacKay's alpha fixed point, predict_proba on all
    test points; {"side": ..., "error": ...} if sopt has no structure=."""
    net = sopt.mlp(list(SCALE_SIZES), hidden="tanh", output="softmax")
    obj = sopt.Objective(net, data["X"], np.eye(10)[data["labels"]], loss="softmax_ce")
    w, alpha = data["w"], 1.0
    warnings.simplefilter("ignore", sopt.bayes.NotAtMinimumWarning)
    t = [clock()]
    try:
        post = sopt_laplace(obj, w, alpha=alpha, structure="kfac")
    except TypeError as err:
        return {"side": "sopt kfac", "error": f"not available ({err})"}
    t.append(clock())
    post = sopt.bayes.optimize_prior(post, tol=1e-6).posterior   # PRML eq. 5.178
    alpha = float(post.alpha[0])
    t.append(clock())
    post.predict_proba(data["X_test"])        # row blocks of bounded memory inside
    t.append(clock())
    return {"side": "sopt kfac", **phases(t, 1.0),
            "predict_note": f"all {len(data['X_test'])} points", "alpha": alpha,
            "log_evidence": post.log_evidence, "peak_gb": peak_rss_gb()}


def make_scale_data(args) -> dict:
    """The patterns, labels, test inputs and weights both sides use."""
    X, labels = digits_like(args.n_train + args.n_test, seed=0)
    t0 = time.perf_counter()
    w = scale_weights(X, labels, args.map_patterns, args.map_iters)
    print(f"weights: sopt l-bfgs-b, {args.map_iters} iterations on "
          f"{args.map_patterns} patterns, {time.perf_counter() - t0:.1f} s")
    return {"X": X[:args.n_train], "labels": labels[:args.n_train],
            "X_test": X[args.n_train:], "w": w}


def run_side_in_child(side: str, path: str, args) -> dict:
    """One side in a fresh process (its own peak memory); its last stdout
    line is a JSON dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--scale", "--side", side,
           "--data", path, "--threads", str(args.threads), "--batch", str(args.batch),
           "--chunk", str(args.chunk), "--n-test-timed", str(args.n_test_timed)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"side": side, "error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_scale(results: list[dict]) -> None:
    """Seconds per phase as wall / CPU, alpha, log evidence, peak memory."""
    print(f"{'side':<27}{'fit s':>15}{'prior s':>15}{'predict s':>17}{'total s':>17}"
          f"{'alpha':>9}{'log evidence':>14}{'peak GB':>8}  note")
    for r in results:
        if "error" in r:
            print(f"{r['side']:<27}{r['error']}")
            continue
        r["total"] = r["fit"] + r["prior"] + r["predict"]
        r["total_cpu"] = r["fit_cpu"] + r["prior_cpu"] + r["predict_cpu"]
        cols = "".join(f"{r[k]:>{n - 8}.1f} /{r[k + '_cpu']:>6.0f}"
                       for k, n in (("fit", 15), ("prior", 15), ("predict", 17),
                                    ("total", 17)))
        print(f"{r['side']:<27}{cols}{r['alpha']:9.4g}{r['log_evidence']:14.6g}"
              f"{r['peak_gb']:8.2f}  predict {r['predict_note']}")
    print("(seconds: wall / CPU of all threads)")
    done = [r for r in results if "error" not in r]
    if len(done) == 2:
        print(f"total sopt / laplace-torch: wall {done[1]['total'] / done[0]['total']:.3g}, "
              f"CPU {done[1]['total_cpu'] / done[0]['total_cpu']:.3g}")


def run_scale(args) -> None:
    data = make_scale_data(args)
    sides = ["torch", "sopt"] if args.side == "both" else [args.side]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scale.npz")
        np.savez(path, **data)
        results = [run_side_in_child(s, path, args) for s in sides]
    print(f"784-1000-10 tanh/softmax MLP, W = {len(data['w'])}, N = {len(data['X'])}, "
          f"{len(data['X_test'])} test points, {args.threads} threads, float64")
    print_scale(results)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", action="store_true", help="the 784-1000-10 benchmark")
    p.add_argument("--side", choices=("torch", "sopt", "both"), default="both")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS / torch threads (default 1 small, 2 scale)")
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--n-test-timed", type=int, default=200,
                   help="laplace-torch's predictive is timed on this many points")
    p.add_argument("--batch", type=int, default=10000, help="laplace-torch fit batch")
    p.add_argument("--chunk", type=int, default=20, help="predictive rows per call")
    p.add_argument("--map-patterns", type=int, default=3000)
    p.add_argument("--map-iters", type=int, default=20)
    p.add_argument("--data", help=argparse.SUPPRESS)     # a child's input file
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = 2 if args.scale else 1
    return args


def have_peer() -> bool:
    try:
        import laplace   # noqa: F401
        import torch     # noqa: F401
    except Exception:
        return False
    return True


def main(argv=None) -> None:
    args = parse_args(argv)
    with threadpool_limits(limits=args.threads):
        if args.data:                                  # a child of run_scale
            data = dict(np.load(args.data))
            side = scale_torch if args.side == "torch" else scale_sopt
            print(json.dumps(side(data, args)))
        elif args.scale:
            run_scale(args)
        else:
            if not have_peer():
                print("laplace-torch not installed (pip install .[peers]): "
                      "numpy reference and sopt only")
            run_small(have_peer())


if __name__ == "__main__":
    main()
