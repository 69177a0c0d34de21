"""Input checks shared by the public API: clear errors, named arguments."""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse


def as_float_array(x, name: str) -> np.ndarray:
    """x as a float64 array, or a TypeError naming ``name``."""
    if scipy.sparse.issparse(x):
        raise TypeError(f"{name}: sparse matrices are not supported; convert "
                        f"with {name}.toarray() (got {type(x).__name__})")
    try:
        raw = np.asarray(x)
        if raw.dtype.kind not in "biuf":     # complex, strings, objects
            raise TypeError
        arr = raw.astype(float, copy=False)
    except (TypeError, ValueError):
        kind = getattr(getattr(x, "dtype", None), "name", type(x).__name__)
        raise TypeError(f"{name}: expected an array of real numbers, "
                        f"got {kind}") from None
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.count_nonzero(~np.isfinite(arr))
        raise ValueError(f"{name}: contains {bad} NaN or infinite value(s)")


def check_weights(w, n_weights: int) -> np.ndarray:
    """w as a finite float64 vector of length n_weights."""
    w = as_float_array(w, "w")
    if w.shape != (n_weights,):
        raise ValueError(f"w: expected shape ({n_weights},) for this network, "
                         f"got {w.shape}")
    check_finite(w, "w")
    return w


def check_inputs(X, n_inputs: int, name: str = "X") -> np.ndarray:
    """X as a finite float64 array of shape (N, n_inputs)."""
    X = as_float_array(X, name)
    if X.ndim != 2 or X.shape[1] != n_inputs:
        hint = (" (use X.reshape(-1, 1) for a single input)"
                if X.ndim == 1 and n_inputs == 1 else "")
        raise ValueError(f"{name}: expected shape (N, {n_inputs}), "
                         f"got {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: needs at least one pattern (row)")
    check_finite(X, name)
    return X


def check_positive_int(value, name: str) -> int:
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, "
                        f"got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def check_nonnegative(value, name: str) -> float:
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, "
                        f"got {type(value).__name__}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return float(value)


def check_positive(value, name: str) -> float:
    """A finite real number > 0: a TypeError (not a number) or a ValueError
    naming ``name``."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, "
                        f"got {type(value).__name__}")
    if not np.isfinite(value) or not value > 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def _scalar(value):
    """A 0-d numeric numpy array (``np.array(0.1)``) as the Python number it
    holds, so the scalar checks accept it; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 \
            and value.dtype.kind in "biuf":
        return value.item()
    return value
