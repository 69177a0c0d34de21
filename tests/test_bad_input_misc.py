"""Bad input to finite_diff, sopt.testing, mlp /
init_weights and the command line is refused with a clear error naming the
argument, before any work is done."""
from __future__ import annotations

import numpy as np
import pytest

import sopt
from sopt import finite_diff
from sopt.cli import main
from sopt.testing import check_activation, check_gradient, check_jacobian, random_network


def must_not_be_called(*args):
    raise AssertionError("called before the input was checked")


# ------------------------------------------------------ finite_diff memory
@pytest.mark.parametrize("fn", [finite_diff.hessian, finite_diff.hessian_from_gradient])
def test_dense_fd_hessian_refused_before_f_is_called(fn):
    with pytest.raises(MemoryError, match=r"W = 25000 weights needs 5,000,000,000 "
                                          r"bytes \(4.66 GiB\).*raise max_bytes"):
        fn(must_not_be_called, np.zeros(25000))


@pytest.mark.parametrize("fn, f", [(finite_diff.hessian, lambda w: w @ w),
                                   (finite_diff.hessian_from_gradient, lambda w: 2 * w)])
def test_dense_fd_hessian_max_bytes(fn, f):
    np.testing.assert_allclose(fn(f, np.ones(3), max_bytes=8 * 9), 2 * np.eye(3),
                               atol=1e-6)
    with pytest.raises(MemoryError, match="W = 3"):
        fn(must_not_be_called, np.ones(3), max_bytes=8 * 9 - 1)
    with pytest.raises(ValueError, match="max_bytes"):
        fn(must_not_be_called, np.ones(3), max_bytes=-1)


# ------------------------------------------------------------ sopt.testing
@pytest.mark.parametrize("eps, error", [(0, ValueError), (-1e-6, ValueError),
                                        (np.nan, ValueError), (np.inf, ValueError),
                                        ("1e-6", TypeError), (True, TypeError)])
def test_check_functions_refuse_a_bad_step(eps, error):
    f, g = (lambda w: w @ w), (lambda w: 2 * w)
    with pytest.raises(error, match="eps: expected"):
        check_gradient(f, g, np.ones(3), eps=eps)
    with pytest.raises(error, match="eps: expected"):
        check_jacobian(g, lambda w: 2 * np.eye(3), np.ones(3), eps=eps)
    with pytest.raises(error, match="eps: expected"):
        check_activation("tanh", eps=eps)


@pytest.mark.parametrize("n, error", [(0, ValueError), (2.0, TypeError)])
def test_check_gradient_refuses_bad_n_directions(n, error):
    with pytest.raises(error, match="n_directions"):
        check_gradient(must_not_be_called, must_not_be_called, np.ones(3), n_directions=n)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(n_hidden_layers=-1), ValueError, "n_hidden_layers"),
    (dict(n_hidden_layers=1.5), TypeError, "n_hidden_layers"),
    (dict(n_outputs=0), ValueError, "n_outputs"),
    (dict(n_inputs=0), ValueError, "n_inputs"),
    (dict(max_units=0), ValueError, "max_units"),
    (dict(skip_prob=1.5), ValueError, "skip_prob"),
    (dict(mask_prob=np.nan), ValueError, "mask_prob"),
    (dict(hidden=()), ValueError, "hidden"),
])
def test_random_network_refuses_bad_sizes(kwargs, error, name):
    with pytest.raises(error, match=f"{name}: expected"):
        random_network(0, **kwargs)


def test_random_network_with_no_hidden_layers_is_allowed():
    net = random_network(0, n_inputs=2, n_hidden_layers=0, n_outputs=3)
    assert len(net.layers) == 1 and net.n_outputs == 3


# ------------------------------------------------------ mlp, init_weights
@pytest.mark.parametrize("sizes, error", [(5, TypeError), ("23", TypeError),
                                          ([2, 2.5, 1], TypeError),
                                          ([2, 0, 1], ValueError), ([2, -3], ValueError),
                                          ([2, True, 1], TypeError)])
def test_mlp_sizes(sizes, error):
    with pytest.raises(error, match="sizes"):
        sopt.mlp(sizes)


@pytest.mark.parametrize("scale, error", [(np.nan, ValueError), (-1.0, ValueError),
                                          (np.inf, ValueError), ("1", TypeError)])
def test_init_weights_scale(scale, error):
    with pytest.raises(error, match="scale"):
        sopt.mlp([2, 3, 1]).init_weights(0, scale=scale)


# ----------------------------------------------------------------- the CLI
@pytest.mark.parametrize("argv", [["check", "--seed", "-1"], ["check", "--seed", "x"],
                                  ["check", "--eps", "1e300"], ["check", "--eps", "2"],
                                  ["check", "--eps", "1e-300"]])
def test_check_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: sopt" in err and argv[1] in err


@pytest.fixture
def no_experiment(monkeypatch):
    import sopt.experiments
    monkeypatch.setattr(sopt.experiments, "reproduce", must_not_be_called)


def test_reproduce_twice_the_same_name_is_refused(no_experiment, capsys, tmp_path):
    assert main(["reproduce", "regression", "regression", "--out", str(tmp_path)]) == 2
    assert "regression" in capsys.readouterr().err


def test_reproduce_out_is_an_existing_file(no_experiment, capsys, tmp_path):
    target = tmp_path / "report"
    target.write_text("keep me")
    assert main(["reproduce", "regression", "--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_reproduce_out_not_writable(no_experiment, capsys):
    assert main(["reproduce", "regression", "--out", "/proc/sopt-results"]) == 2
    assert "--out" in capsys.readouterr().err
