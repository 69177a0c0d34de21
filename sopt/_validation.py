"""Input checks shared by the public API: clear errors, named arguments.

One rule everywhere: a value of the wrong *type* (a string where a number is
expected, complex where real, an object array, None where the argument is
required, a float where a count is expected) raises TypeError; a value of
the right type but the wrong *value* (negative, NaN or infinite, wrong
shape, out of range, an unknown name) raises ValueError.
"""
from __future__ import annotations

import numbers
import sys

import numpy as np



def _is_sparse(x) -> bool:
    """scipy.sparse.issparse without importing scipy.sparse (0.2 s): an
    object can only be a sparse matrix once that module is loaded."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(x)

def as_float_array(x, name: str, bool_ok: bool = True) -> np.ndarray:
    """x as a float64 array, or a TypeError naming ``name``. Booleans are
    numbers in data (X, T: 0/1 features and labels) but not in a point of
    weight space (``bool_ok=False``: w, w0, a finite-difference point)."""
    if _is_sparse(x):
        raise TypeError(f"{name}: sparse matrices are not supported; convert "
                        f"with {name}.toarray() (got {type(x).__name__})")
    try:
        raw = np.asarray(x)
        if raw.dtype.kind not in ("biuf" if bool_ok else "iuf"):
            raise TypeError                # complex, strings, objects (bools)
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


def check_weights(w, n_weights: int, name: str = "w") -> np.ndarray:
    """w as a finite float64 vector of length n_weights."""
    w = as_float_array(w, name, bool_ok=False)
    if w.shape != (n_weights,):
        raise ValueError(f"{name}: expected shape ({n_weights},) for this network, "
                         f"got {w.shape}")
    check_finite(w, name)
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


def check_alpha(alpha, n_weights: int, positive: bool = False):
    """Weight-decay or prior precision: a number (or an array of one
    number), or a (W,) array of one per weight; each finite and >= 0
    (``positive``: > 0); booleans are refused. A number comes back as a
    float, an array as a float64 array."""
    if np.ndim(alpha) == 0 or np.shape(alpha) == (1,) != (n_weights,):
        return (check_positive if positive else check_nonnegative)(
            np.reshape(alpha, ()) if np.ndim(alpha) else alpha, "alpha")
    a = as_float_array(alpha, "alpha", bool_ok=False)
    if a.shape != (n_weights,):
        raise ValueError(f"alpha: expected a number or shape ({n_weights},), "
                         f"got {a.shape} (one alpha per weight group, as "
                         f"EvidenceResult.alpha, is alpha_per_weight there)")
    check_finite(a, "alpha")
    if positive and a.min() <= 0:
        raise ValueError("alpha: prior precisions must be > 0")
    if a.min() < 0:
        raise ValueError("alpha: weight-decay coefficients must be >= 0")
    return a


def check_choice(value, name: str, choices) -> str:
    """A name among ``choices``: TypeError if not a string, ValueError if
    unknown."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {tuple(choices)}, got "
                        f"{type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


class DataTypeError(TypeError, ValueError):
    """Data of the wrong type given to a scikit-learn estimator: a TypeError
    by sopt's rule and a ValueError by scikit-learn's (its estimator checks
    require a ValueError for complex data), as scikit-learn's own
    ``InvalidParameterError`` is both for parameters."""


def check_estimator_data(x, name: str):
    """x unchanged unless it is of a type sopt rejects (strings, complex,
    None, anything not an array of numbers), which raises
    :class:`DataTypeError`. Object arrays pass: scikit-learn converts those
    holding numbers (a mixed-type DataFrame) and rejects the rest."""
    if x is None:
        # in scikit-learn's words (its check_requires_y_none looks for them)
        raise DataTypeError(f"{name}: Expected array-like (array or non-string "
                            f"sequence), got None")
    if _is_sparse(x):
        return x                    # scikit-learn's own message (TypeError)
    try:
        dtype = np.asarray(x).dtype
    except ValueError:              # ragged: scikit-learn's message
        return x
    if dtype.kind == "c":           # scikit-learn's check_complex_data wants these words
        raise DataTypeError(f"{name}: Complex data not supported (expected an "
                            f"array of real numbers)")
    if dtype.kind not in "biufO":
        raise DataTypeError(f"{name}: expected an array of real numbers, got {dtype}")
    return x


def _of_type(value, kind, name: str, expected: str):
    """value if it is a ``kind`` (numbers.Real or numbers.Integral) and not
    a bool, else a TypeError naming ``name`` and what was ``expected``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__}")
    return value


def check_positive_int(value, name: str) -> int:
    value = _of_type(_scalar(value), numbers.Integral, name, "a positive integer")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def check_nonnegative(value, name: str) -> float:
    value = _of_type(_scalar(value), numbers.Real, name, "a real number")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return float(value)


def check_positive(value, name: str) -> float:
    """A finite real number > 0: a TypeError (not a number) or a ValueError
    naming ``name``."""
    value = _of_type(_scalar(value), numbers.Real, name, "a real number")
    if not np.isfinite(value) or not value > 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


# --- option checks with a stated domain (TypeError for the type, ValueError
# --- for the value; bool is neither a real number nor an integer here)

def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if high == np.inf:
        if low == -np.inf:
            return "a finite number"
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    return (f"a number in {'(' if low_open else '['}{low:g}, "
            f"{high:g}{')' if high_open else ']'}")


def check_real(value, name: str, low: float = -np.inf, high: float = np.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the interval from low to high (open or closed
    at each end), or a TypeError / ValueError naming ``name`` and the
    interval."""
    domain = _interval(low, high, low_open, high_open)
    v = float(_of_type(value, numbers.Real, name, domain))
    inside = ((v > low if low_open else v >= low)
              and (v < high if high_open else v <= high))
    if not (inside and np.isfinite(v)):
        raise ValueError(f"{name}: expected {domain}, got {value!r}")
    return v


def check_int(value, name: str, low: int = 0) -> int:
    """An integer (not bool, not a float) >= low, or a TypeError / ValueError
    naming ``name``."""
    _of_type(value, numbers.Integral, name, f"an integer >= {low}")
    if value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
    return int(value)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


#: Largest dense W x W matrix built without being asked explicitly (bytes).
DEFAULT_MAX_BYTES = 4 * 2**30


def check_dense_size(n_weights: int, max_bytes: float | None = None,
                     what: str = "Hessian",
                     instead: str = "use hvp / hessian_operator (O(W) memory)") -> None:
    """Refuse a dense W x W float64 matrix larger than ``max_bytes`` (a
    MemoryError saying how much it needs and how to allow it)."""
    if max_bytes is None:
        limit = DEFAULT_MAX_BYTES
    else:
        limit = check_nonnegative(max_bytes, "max_bytes")
    need = 8 * n_weights**2
    if need > limit:
        raise MemoryError(
            f"a dense {what} for W = {n_weights} weights needs {need:,} bytes "
            f"({need / 2**30:.2f} GiB), over the limit of {int(limit):,} bytes; "
            f"raise max_bytes, or {instead}")


def _scalar(value):
    """A 0-d numeric numpy array (``np.array(0.1)``) as the Python number it
    holds, so the scalar checks accept it; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 \
            and value.dtype.kind in "biuf":
        return value.item()
    return value
