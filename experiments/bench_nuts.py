"""sopt's own NUTS (sopt.bayes._nuts) against mici's multinomial dynamic HMC
on one and the same target, to choose the transition code by measurement.

The target: the linear softmax model of scikit-learn's wine data (70/30
split as bench_sampling.py) under the Gamma(1, 1e-3) hyperprior in the
non-centred coordinates sample_posterior uses, whitened by its Laplace
metric. One warm-up of sopt's sampler fixes the step size and the start;
then each implementation runs the same number of transitions from that
point with that step size and the identity metric on the whitened
coordinates (so both integrate the same Hamiltonian with the same
leapfrog steps; they differ in the bookkeeping and the random numbers).
Printed: leapfrog steps per transition, microseconds per leapfrog step
(wall and CPU), the bulk ESS of the held-out true-class probabilities, and
the ESS per CPU second. mici must be installed (pip install mici).

    python experiments/bench_nuts.py [--iterations 1000] [--dataset wine]

Measured (wine, 2 shared cores, one run):

    sopt: 16.0 steps per transition, 266 us CPU per step, ESS 120 of 1000
    mici: 17.1 steps per transition, 534 us CPU per step, ESS  66 of 1000

The same trajectories cost half as much CPU in sopt's code (mici's
per-step bookkeeping: state caching, metric objects, its tree recursion),
so sample_posterior uses its own transitions; both ESS figures are one
chain's (noisy, ~+-30%).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from sopt.bayes import evidence_fit
from sopt.bayes._diagnostics import ess_bulk
from sopt.bayes._nuts import NUTS, Point
from sopt.bayes._sampling import (_curvature, _options, _warm_up, _whitened_target,
                                  DEFAULT_HYPERPRIOR)
from sopt.bayes._sampling_targets import Hyperprior
from sopt.objective import Objective

from bench_sampling import DATASETS, model, split, true_class_draws


def setup(name: str, n_warmup: int):
    Xtr, Xte, ytr, yte = split(DATASETS[name])
    net, T, loss = model(Xtr, ytr)
    ev = evidence_fit(net, Xtr, T, loss=loss)
    data = Objective(net, Xtr, T, loss=loss)
    used = np.flatnonzero(net.active_weights())
    alpha = np.asarray(ev.posterior.alpha, dtype=float)
    post, curvature = _curvature(data, ev.w, used, alpha, None, "laplace",
                                 ev.posterior, "exact")
    hyper = Hyperprior(np.zeros(len(used), dtype=int), 1, *DEFAULT_HYPERPRIOR, None)
    whitened = _whitened_target(curvature, data, ev.w, used, alpha, None, hyper,
                                "joint", post)
    opts = _options(4, n_warmup, 1, 0.8, 10, 0.0, False, "laplace", True)
    opts.update(curvature=curvature, label="warm-up")
    rng = np.random.default_rng(0)
    sampler = NUTS(whitened.potential)
    z, step = _warm_up(sampler, whitened, np.zeros(len(whitened.q0)), rng, opts)
    return net, Xte, yte, whitened, z, step


def full_weights(whitened, x):
    target = whitened.target
    w = target.w.copy()
    w[target.used] = target.weights(whitened.to_q(x))
    return w


def run_sopt(whitened, z, step, n, seed):
    sampler, rng = NUTS(whitened.potential), np.random.default_rng(seed)
    xs, steps = [], 0
    for _ in range(n):
        z, stats = sampler.transition(z, step, rng)
        xs.append(z.x)
        steps += stats["n_steps"]
    return np.array(xs), steps


def run_mici(whitened, z, step, n, seed):
    import mici
    system = mici.systems.EuclideanMetricSystem(
        neg_log_dens=lambda x: whitened.potential(x)[0],
        grad_neg_log_dens=lambda x: tuple(reversed(whitened.potential(x))))
    integrator = mici.integrators.LeapfrogIntegrator(system, step_size=step)
    rng = np.random.default_rng(seed)
    sampler = mici.samplers.DynamicMultinomialHMC(system, integrator, rng)
    momentum = sampler.transitions["momentum_transition"]
    move = sampler.transitions["integration_transition"]
    state = mici.states.ChainState(pos=z.x, mom=None, dir=1)
    state.mom = system.sample_momentum(state, rng)
    xs, steps = [], 0
    for _ in range(n):
        state, _ = momentum.sample(state, rng)
        state, stats = move.sample(state, rng)
        xs.append(state.pos)
        steps += stats["n_step"]
    return np.array(xs), steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--dataset", default="wine", choices=["wine", "iris"])
    args = parser.parse_args()
    with threadpool_limits(limits=1):
        net, Xte, yte, whitened, z, step = setup(args.dataset, args.warmup)
        print(f"{args.dataset}: step size {step:.3g} after {args.warmup} warm-up iterations")
        for label, run in (("sopt", run_sopt), ("mici", run_mici)):
            n0 = whitened.n_gradients
            t0, c0 = time.perf_counter(), time.process_time()
            xs, steps = run(whitened, Point(z.x, None, z.U, z.g), step,
                            args.iterations, seed=1)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            grads = whitened.n_gradients - n0
            probs = np.stack([net.forward(full_weights(whitened, x), Xte) for x in xs])
            ess = float(np.min(ess_bulk(true_class_draws(probs[None], yte))))
            print(f"  {label}: {steps / args.iterations:5.1f} steps per transition, "
                  f"{1e6 * wall / grads:6.0f} us wall and {1e6 * cpu / grads:6.0f} us CPU "
                  f"per step, predictive bulk ESS {ess:5.0f} of {args.iterations}, "
                  f"{ess / cpu:6.1f} ESS per CPU second", flush=True)


if __name__ == "__main__":
    main()
