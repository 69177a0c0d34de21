"""Posterior sampling of the linear softmax / logistic model: sopt's
sample_posterior beside numpyro's NUTS on the same model, prior, data and
numbers of draws, and beside the Laplace approximation.

Data: scikit-learn's bundled wine, iris, breast cancer (and, with
``--datasets digits``, digits); 70/30 split, random_state=0, stratified;
inputs standardised on the training part (as experiments/bench_bayes.py).
Model: y = softmax(W x + b) (K >= 3 classes) or sigmoid(w^T x + b) (two),
every weight and bias with prior N(0, 1/alpha). Priors compared:

  fixed   alpha at the evidence framework's value (evidence_fit);
  hyper   alpha ~ Gamma(a, b) (shape, rate; default sopt's (1, 1e-3))
          integrated by sampling.

Samplers, each with --chains chains of --warmup + --draws iterations:

  sopt     sample_posterior: NUTS on the exact gradient, metric the Laplace
           precision at w_MAP (whitened coordinates), warm-up rescaling of
           that metric; under the hyperprior the non-centred joint
           parametrisation (hyper_update="joint", the default), or
           --hyper-update gibbs / marginal;
  numpyro  NUTS with its defaults (diagonal mass matrix adapted in warm-up,
           target acceptance 0.8), the hyperprior non-centred
           (w = z / sqrt(alpha), which mixed better than the centred form:
           bulk ESS of the predictive 801 against 360 on wine) unless
           --numpyro-centred; jax on one CPU thread, 64-bit floats;
           sequential chains. Its time includes jax's compilation.

Printed per data set and prior: held-out NLL per point of both (and their
difference), wall time of both (their ratio; one run, the same machine and
load), gradient evaluations (leapfrog steps) per iteration, divergences,
and the largest split R-hat and the smallest bulk ESS (Vehtari et al.
2021) over the held-out points' predicted probabilities of their true
class. Laplace (Monte Carlo predictive at the evidence alpha) and
scikit-learn's LogisticRegression for reference.

    python experiments/bench_sampling.py [--draws 1000] [--warmup 500]
        [--chains 2] [--datasets wine iris breast_cancer digits]
        [--priors fixed hyper] [--n-jobs N] [--hyperprior A B]
        [--hyper-update joint|gibbs|marginal] [--numpyro-centred]
        [--no-numpyro]

sopt's chains run in forked processes (--n-jobs; default one per chain up
to the CPUs), numpyro's in turn; numpyro runs after all of sopt's runs
(jax's threads must not be in a process that forks). Each time is printed
with the load average.

Measured (defaults; AMD EPYC, 2 cores shared with other jobs, one run,
load 1.5-1.9; time: sopt's evidence fit + sampling in 2 processes,
numpyro's compilation + sampling):

    data    prior  NLL sopt  numpyro   time ratio  steps sopt/numpyro  R-hat, ESS sopt  numpyro
    wine    fixed  0.0718    0.0721    0.35        11.4 / 15.2         1.003, 1756      1.004, 2250
    wine    hyper  0.0439    0.0430    1.07        20.5 / 58.9         1.004, 557       1.004, 1044
    iris    fixed  0.0698    0.0696    0.40        12.8 / 55.0         1.003, 1208      1.003, 1445
    iris    hyper  0.0550    0.0576    0.76        13.7 / 67.7         1.007, 716       1.003, 1605
    cancer  fixed  0.0941    0.0939    0.21        7.0 / 29.1          1.007, 1784      1.003, 1817
    cancer  hyper  0.0935    0.0932    0.47        8.2 / 30.8          1.009, 1182      1.004, 1687

With --n-jobs 1 (chains in turn, same draws) the hyper rows took 20.3,
15.6 and 6.9 s against 14.2, 8.0 and 4.4 s in two processes (numpyro
13.3, 10.4, 9.3 s). A second run of the hyper rows at load 0.5-1.3: sopt
15.2, 8.3, 4.7 s (in turn 21.6, 12.9, 7.9 s), numpyro 20.9, 17.2, 15.1 s
(ratios 0.72, 0.48, 0.31). The two samplers' NLL agree within 0.0027 everywhere.
Before the lean objective path and the processes (README of the previous
version, chains in turn): time ratios 2.30, 1.45, 0.73 with the hyperprior;
that version rerun here (--no-numpyro, load 0.6-1.5): hyper 21.5, 16.2,
9.1 s (steps 17.0, 14.7, 10.0; wine's bulk ESS 385 with its one generator
for both chains), fixed 6.3, 11.6, 5.8 s.
Digits, hyper, --warmup 150 --draws 100 (too short to converge: R-hat
1.40 sopt, 1.10 numpyro): NLL 0.1167 / 0.1157, 508 / 514 leapfrog steps
per iteration, 231 s / 94 s (load 3.0 / 1.9). The other ways of
integrating alpha (earlier runs; held-out probabilities' R-hat, bulk ESS):
wine gibbs 1.065, 22; marginal 1.023, 61; iris gibbs 1.005, 258; marginal
1.010, 299 (joint: 1.002, 883 and 1.002, 740).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

# one thread for XLA as for BLAS: the machine is shared, and each library
# gets the same
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import sopt
from sopt.bayes import SamplingWarning, evidence_fit, sample_posterior
from sopt.bayes._diagnostics import ess_bulk, rhat
from sopt.bayes._sampling import DEFAULT_HYPERPRIOR

DATASETS = {"wine": load_wine, "iris": load_iris, "breast_cancer": load_breast_cancer,
            "digits": load_digits}


def split(load):
    X, y = load(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0,
                                          stratify=y)
    mean, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd[sd == 0] = 1.0                       # digits has constant pixels
    return (Xtr - mean) / sd, (Xte - mean) / sd, ytr, yte


def nll(p_true) -> float:
    """Mean -ln of the predicted probability of the true class, (N,)."""
    return float(-np.mean(np.log(np.clip(p_true, 1e-300, None))))


def diagnose(p_true_draws) -> tuple[float, float]:
    """(max split R-hat, min bulk ESS) over the held-out points of the
    per-draw probabilities of the true class, (M, S, N)."""
    return float(np.max(rhat(p_true_draws))), float(np.min(ess_bulk(p_true_draws)))


def true_class_draws(probs, y) -> np.ndarray:
    """(M, S, N) probability of y's class per draw from (M, S, N, K); K = 1
    is the logistic output's p(class 1)."""
    if probs.shape[-1] == 1:
        p1 = probs[..., 0]
        return np.where(y == 1, p1, 1.0 - p1)
    return np.take_along_axis(probs, y[None, None, :, None], axis=3)[..., 0]


# ------------------------------------------------------------------- sopt
def model(Xtr, ytr):
    K = int(ytr.max()) + 1
    if K == 2:
        return (sopt.mlp([Xtr.shape[1], 1], output="logistic"),
                ytr[:, None].astype(float), "binary_ce")
    return sopt.mlp([Xtr.shape[1], K], output="softmax"), np.eye(K)[ytr], "softmax_ce"


def run_sopt(net, Xtr, T, loss, Xte, yte, ev, t_ev, args, hyperprior):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)    # reported below
        t0 = time.perf_counter()
        sp = sample_posterior(net, Xtr, T, ev.w, loss=loss, posterior=ev.posterior,
                              hyperprior=hyperprior, hyper_update=args.hyper_update,
                              n_draws=args.draws, n_warmup=args.warmup,
                              n_chains=args.chains, seed=0, n_jobs=args.n_jobs)
        t = time.perf_counter() - t0 + t_ev        # the MAP and metric included
    W = net.n_weights
    probs = np.stack([net.forward(w, Xte) for w in sp.draws.reshape(-1, W)])
    p = true_class_draws(probs.reshape(sp.n_chains, sp.n_draws, *probs.shape[1:]), yte)
    r, e = diagnose(p)
    return {"nll": nll(p.mean(axis=(0, 1))), "time": t, "rhat": r, "ess": e,
            "steps": float(np.mean(sp.n_steps)), "div": sp.n_divergent,
            "load": os.getloadavg()[0],
            "alpha": (float(np.mean(np.log(sp.alpha))) if sp.alpha is not None
                      else None)}


# ---------------------------------------------------------------- numpyro
def run_numpyro(Xtr, ytr, Xte, yte, alpha, hyperprior, args):
    """NUTS of numpyro on the same model; alpha fixed, or None with
    ``hyperprior`` (a, b). Returns the same row as run_sopt."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS
    jax.config.update("jax_enable_x64", True)
    K = int(ytr.max()) + 1
    D, out = Xtr.shape[1], (1 if K == 2 else K)
    W = (D + 1) * out

    def logits(w, X):
        return X @ w[..., :D * out].reshape(w.shape[:-1] + (D, out)) + w[..., None, D * out:]

    def numpyro_model(X, y):
        if hyperprior is None:
            w = numpyro.sample("w", dist.Normal(0.0, 1.0 / np.sqrt(alpha)).expand([W]))
        else:
            a = numpyro.sample("alpha", dist.Gamma(*hyperprior))
            if args.numpyro_centred:
                w = numpyro.sample("w", dist.Normal(0.0, 1.0 / jnp.sqrt(a)).expand([W]))
            else:
                z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([W]))
                w = numpyro.deterministic("w", z / jnp.sqrt(a))
        f = logits(w, X)
        if K == 2:
            numpyro.sample("y", dist.Bernoulli(logits=f[:, 0]), obs=y)
        else:
            numpyro.sample("y", dist.Categorical(logits=f), obs=y)

    mcmc = MCMC(NUTS(numpyro_model), num_warmup=args.warmup, num_samples=args.draws,
                num_chains=args.chains, chain_method="sequential", progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), Xtr, ytr, extra_fields=("num_steps", "diverging"))
    w = np.asarray(mcmc.get_samples(group_by_chain=True)["w"])     # (M, S, W)
    t = time.perf_counter() - t0
    f = np.asarray(logits(w, Xte))                                  # (M, S, N, out)
    if K == 2:
        probs = 1.0 / (1.0 + np.exp(-f))
    else:
        e = np.exp(f - f.max(axis=-1, keepdims=True))
        probs = e / e.sum(axis=-1, keepdims=True)
    p = true_class_draws(probs, yte)
    r, e = diagnose(p)
    extra = mcmc.get_extra_fields()
    alpha_draws = mcmc.get_samples().get("alpha")
    return {"nll": nll(p.mean(axis=(0, 1))), "time": t, "rhat": r, "ess": e,
            "steps": float(np.mean(extra["num_steps"])), "load": os.getloadavg()[0],
            "div": int(np.sum(extra["diverging"])),
            "alpha": (None if alpha_draws is None
                      else float(np.mean(np.log(np.asarray(alpha_draws)))))}


# ------------------------------------------------------------------- main
def run(name, args):
    Xtr, Xte, ytr, yte = split(DATASETS[name])
    net, T, loss = model(Xtr, ytr)
    t0 = time.perf_counter()
    ev = evidence_fit(net, Xtr, T, loss=loss)
    t_ev = time.perf_counter() - t0
    # Monte Carlo over the linearised logits (probit for a logistic output,
    # where the two agree to the probit's accuracy)
    method = "mc" if loss == "softmax_ce" else "probit"
    p_lap = ev.posterior.predict_proba(Xte, method=method)
    lap = nll(true_class_draws(p_lap[None, None], yte)[0, 0])
    lr = LogisticRegression(max_iter=10_000).fit(Xtr, ytr).predict_proba(Xte)
    rows = []
    for prior in args.priors:
        s = run_sopt(net, Xtr, T, loss, Xte, yte, ev, t_ev, args, PRIORS(args)[prior])
        rows.append([prior, s, None])
    return {"alpha": float(ev.alpha[0]), "laplace": lap,
            "lr": nll(lr[np.arange(len(yte)), yte]), "rows": rows,
            "data": (Xtr, ytr, Xte, yte)}


def PRIORS(args):
    return {"fixed": None, "hyper": tuple(args.hyperprior)}


def add_numpyro(res, args):
    """numpyro's rows beside sopt's, run after all of sopt's: jax starts
    threads, and sopt's chains fork processes, which must not happen in a
    process with jax's threads."""
    for row in res["rows"]:
        row[2] = run_numpyro(*res["data"], res["alpha"], PRIORS(args)[row[0]], args)


def print_rows(name, res):
    print(f"{name}: evidence alpha {res['alpha']:.3g}; Laplace {res['laplace']:.3f}, "
          f"LogisticRegression {res['lr']:.3f}")
    for prior, s, n in res["rows"]:
        line = (f"  {prior:5s} sopt    NLL {s['nll']:.4f}  {s['time']:7.1f} s  "
                f"steps {s['steps']:5.1f}  div {s['div']:3d}  R-hat {s['rhat']:.3f}  "
                f"ESS {s['ess']:6.0f}  load {s['load']:.1f}"
                + ("" if s["alpha"] is None else f"  mean ln alpha {s['alpha']:.2f}"))
        print(line)
        if n is not None:
            print(f"  {prior:5s} numpyro NLL {n['nll']:.4f}  {n['time']:7.1f} s  "
                  f"steps {n['steps']:5.1f}  div {n['div']:3d}  R-hat {n['rhat']:.3f}  "
                  f"ESS {n['ess']:6.0f}  load {n['load']:.1f}"
                  + ("" if n["alpha"] is None else f"  mean ln alpha {n['alpha']:.2f}"))
            print(f"  {prior:5s} |NLL difference| {abs(s['nll'] - n['nll']):.4f}; "
                  f"time sopt / numpyro {s['time'] / n['time']:.2f}")
    print(flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=["wine", "iris", "breast_cancer"],
                        choices=list(DATASETS))
    parser.add_argument("--hyperprior", nargs=2, type=float, default=DEFAULT_HYPERPRIOR,
                        metavar=("SHAPE", "RATE"))
    parser.add_argument("--hyper-update", default="joint",
                        choices=["joint", "gibbs", "marginal"])
    parser.add_argument("--numpyro-centred", action="store_true")
    parser.add_argument("--no-numpyro", action="store_true")
    parser.add_argument("--priors", nargs="+", default=["fixed", "hyper"],
                        choices=["fixed", "hyper"])
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="sopt's processes for the chains (default: one per "
                             "chain up to the CPUs)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; sopt n_jobs {args.n_jobs}")
    print(f"{args.chains} chains x ({args.warmup} warm-up + {args.draws} draws); "
          f"hyperprior Gamma{tuple(args.hyperprior)}; sopt hyper_update="
          f"{args.hyper_update}; numpyro "
          f"{'centred' if args.numpyro_centred else 'non-centred'}\n")
    with threadpool_limits(limits=1):
        results = {name: run(name, args) for name in args.datasets}
        for name, res in results.items():
            if not args.no_numpyro:
                add_numpyro(res, args)
            print_rows(name, res)


if __name__ == "__main__":
    main()
