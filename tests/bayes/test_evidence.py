"""sopt.bayes.evidence_fit (sopt/bayes/_evidence.py) on awkward input:
data sets of one to a dozen points, noise-free data (the data error reaches
0 and beta its cap), gamma past N with the exact Hessian, a training that
stops early, 0-d arrays, the memory limit, and the options it passes on to
minimize (checked first, with minimize's message)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from problems import noise_free_sine, small_objective
from sopt.bayes import evidence_fit, laplace


# ---------------------------------------------- small data, no noise
# N = 12 is slow (beta climbs to its cap and each cycle's training takes
# long); N = 1, 2, 3 check the same bound fast
@pytest.mark.parametrize("N", [1, 2, 3, pytest.param(12, marks=pytest.mark.slow)])
def test_evidence_fit_keeps_gamma_below_the_number_of_data(N):
    X, t = noise_free_sine(N)
    net = sopt.mlp([1, 10, 1])
    res = evidence_fit(net, X, t, max_cycles=10, beta=1.0)
    for g, b in zip(res.history["gamma"], res.history["beta"]):
        assert 0 <= g <= N
        assert np.isfinite(b) and b > 0
    assert np.all(np.isfinite(res.alpha)) and np.all(res.alpha > 0)
    assert np.isfinite(res.beta) and res.beta > 0
    assert np.isfinite(res.log_evidence)


def test_evidence_fit_zero_data_error_caps_beta():
    Z = np.linspace(-1, 1, 8)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evidence_fit(sopt.mlp([1, 1]), Z, np.zeros(8), w0=np.zeros(2))
    assert np.isfinite(res.beta) and res.beta > 0
    assert np.all(np.isfinite(res.alpha)) and np.all(res.alpha > 0)
    assert np.isfinite(res.log_evidence)
    assert res.beta == pytest.approx(sopt.bayes._evidence.BETA_MAX, rel=1e-12)
    mean, var = res.posterior.predict(Z)
    assert np.all(np.isfinite(var)) and np.all(var > 0)


def test_evidence_loop_on_normal_data_is_unchanged_and_quiet():
    X, t = noise_free_sine(20)
    t = t + 0.1 * np.random.default_rng(1).normal(size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evidence_fit(sopt.mlp([1, 3, 1]), X, t, max_cycles=30, beta=1.0)
    post = res.posterior
    assert 0 < post.gamma < 10
    assert res.converged


# -------------------------------------------- max_bytes, 0-d arrays, gamma > N
def test_evidence_fit_takes_max_bytes_as_its_error_advises():
    X, t = noise_free_sine(12)
    net = sopt.mlp([1, 3, 1])
    with pytest.raises(MemoryError, match="max_bytes") as err:
        evidence_fit(net, X, t, max_cycles=1, max_bytes=100)
    assert "evidence_fit" in str(err.value) or "max_bytes" in str(err.value)
    res = evidence_fit(net, X, t, max_cycles=1, max_bytes=8 * net.n_weights**2)
    assert np.isfinite(res.log_evidence)


@pytest.mark.filterwarnings("ignore::sopt.bayes.NotAtMinimumWarning")   # w: init
def test_bayes_functions_accept_zero_dimensional_arrays():
    X, t = noise_free_sine(12)
    net = sopt.mlp([1, 3, 1])
    w = net.init_weights(0)
    a = laplace(net, X, t, w, alpha=np.array(0.1), beta=np.array(2.0),
                clip_negative=True)
    b = laplace(net, X, t, w, alpha=0.1, beta=2.0, clip_negative=True)
    assert a.log_evidence == b.log_evidence
    r1 = evidence_fit(net, X, t, alpha=np.array(0.1), max_cycles=np.array(1),
                      tol=np.array(1e-4))
    r2 = evidence_fit(net, X, t, alpha=0.1, max_cycles=1, tol=1e-4)
    assert r1.log_evidence == r2.log_evidence


@pytest.mark.filterwarnings("ignore::sopt.bayes.NotAtMinimumWarning")   # new beta
def test_beta_reestimate_is_the_stationary_point_when_gamma_exceeds_n():
    # PRML eq. 5.180 would give beta = (N - gamma) / 2 E_D <= 0 here; the new
    # beta solves N - gamma(beta) = 2 beta E_D at the same w and alpha instead
    from sopt.bayes._evidence import BETA_MAX, _beta_stationary
    X, t = noise_free_sine(3)
    net = sopt.mlp([1, 10, 1])
    # the exact Hessian's residual term lifts gamma past N on 3 points
    post = evidence_fit(net, X, t, max_cycles=1, beta=1.0, hessian="exact").posterior
    assert post.gamma_per_weight.sum() > 3 and post.gamma == 3
    beta = _beta_stationary(post, BETA_MAX)
    assert 0 < beta < post.beta
    again = laplace(net, X, t, post.w_map, alpha=post.alpha, beta=beta,
                    hessian="exact", clip_negative=True)
    residual_dof = 3 - again.gamma_per_weight.sum()
    assert residual_dof > 0
    assert residual_dof == pytest.approx(2 * beta * again.data_error, rel=1e-8)


def test_evidence_fit_warns_once_when_its_last_training_stopped_early():
    X, t = noise_free_sine(20)
    with pytest.warns(sopt.bayes.NotAtMinimumWarning, match="maxiter") as rec:
        evidence_fit(sopt.mlp([1, 3, 1]), X, t, max_cycles=3, beta=1.0,
                     options={"maxiter": 1})
    assert len([w for w in rec if w.category is sopt.bayes.NotAtMinimumWarning]) == 1


# ------------------------------------------ options passed on to minimize
@pytest.mark.parametrize("options, error, name", [
    ({"gtol": "1e-6"}, TypeError, "gtol"), ({"gtol": -1.0}, ValueError, "gtol"),
    ({"maxiter": 2.5}, TypeError, "maxiter"), ({"mu_min": "small"}, TypeError, "mu_min")])
def test_evidence_fit_checks_the_options_it_passes_to_minimize(options, error, name):
    """evidence_fit uses gtol itself (divided by beta) before minimize sees
    it: the option is checked first, with minimize's message."""
    obj, _ = small_objective()
    with pytest.raises(error, match=f"{name}: expected"):
        evidence_fit(obj, beta=1.0, max_cycles=1, options=options)


def test_evidence_fit_options_not_a_dict():
    obj, _ = small_objective()
    with pytest.raises(TypeError, match="options: expected a dict"):
        evidence_fit(obj, beta=1.0, max_cycles=1, options=["gtol", 1e-6])
