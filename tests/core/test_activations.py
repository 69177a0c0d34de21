"""sopt.activations: the built-in activations' values and derivatives
(overflow-free up to |a| = 1e3, derivatives against central differences,
relu's derivative at its kink) and the choice of an activation by name or
object (an unknown name or a wrong type is refused, naming the argument)."""
import warnings

import numpy as np
import pytest

import sopt
from sopt import testing
from sopt.activations import ACTIVATIONS, RELU


# ------------------------------------------------------------ built-ins
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_never_overflow_or_nan_up_to_1e3(name):
    act = ACTIVATIONS[name]
    a = np.concatenate([np.linspace(-1e3, 1e3, 2001), [-1e4, 1e4, -745.2, 745.2]])
    A = np.stack([a, -a, 0.5 * a], axis=1)           # softmax needs rows
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        outs = [act.h(A)]
        if act.elementwise:
            outs += [act.dh(A), act.d2h(A),
                     act.derivative(A, act.h(A))]
    for o in outs:
        assert o.shape == A.shape
        assert np.all(np.isfinite(o))
    h = outs[0]
    expected_limits = {                  # value of h at a = +1e3 and -1e3
        "identity": (1e3, -1e3), "tanh": (1.0, -1.0), "logistic": (1.0, 0.0),
        "softplus": (1e3, 0.0), "relu": (1e3, 0.0)}
    if name in expected_limits:
        i_hi, i_lo = np.argmax(a == 1e3), np.argmax(a == -1e3)
        hi, lo = expected_limits[name]
        assert h[i_hi, 0] == pytest.approx(hi, abs=1e-12)
        assert h[i_lo, 0] == pytest.approx(lo, abs=1e-12)
    else:                                # softmax: rows sum to 1, in [0, 1]
        np.testing.assert_allclose(h.sum(axis=1), 1.0, atol=1e-14)
        assert h.min() >= 0.0 and h.max() <= 1.0


@pytest.mark.parametrize("name", ["tanh", "logistic", "softplus", "identity", "relu"])
def test_builtin_activation_derivatives(name):
    """dh and d2h of the built-ins against central differences of h and dh:
    error ~ h^2 |h'''| + macheps |h| / h ~ 1e-10 relative (tests/helpers.py)."""
    act = ACTIVATIONS[name]
    a = np.linspace(-6, 6, 97) + 0.0123                 # off relu's kink
    err = testing.check_activation(act, a)
    assert err["dh"] <= 1e-7 and err["d2h"] <= 1e-7
    z = act.h(a)
    np.testing.assert_allclose(act.derivative(a, z), act.dh(a), rtol=1e-14, atol=1e-15)


# a mutation the rest of the suite let through: relu's h'(0) := 0, not 1
def test_relu_derivative_at_the_kink_is_zero():
    np.testing.assert_array_equal(RELU.dh(np.array([-1.0, -0.0, 0.0, 1e-300, 2.0])),
                                  [0.0, 0.0, 0.0, 1.0, 1.0])


# ----------------------------------------------------------- by name
@pytest.mark.parametrize("where", ["hidden", "output", "add_layer"])
def test_unknown_activation_name(where):
    with pytest.raises(ValueError, match=r"activation: unknown name 'tanhh'"):
        if where == "hidden":
            sopt.mlp([2, 3, 1], hidden="tanhh")
        elif where == "output":
            sopt.mlp([2, 3, 1], output="tanhh")
        else:
            sopt.Network(2).add_layer(3, "tanhh", inputs=[0])


@pytest.mark.parametrize("spec", [3, (np.tanh, np.tanh), None])
def test_activation_of_wrong_type(spec):
    with pytest.raises(TypeError, match="activation"):
        sopt.Network(2).add_layer(3, spec, inputs=[0])
