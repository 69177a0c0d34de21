"""Fixtures of the backprop-core tests (tests/core/)."""
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _numpy_errors_are_loud():
    """In tests/core/, overflow / invalid / divide-by-zero raise (a NaN or
    inf anywhere in the core is a failure, not a warning); underflow to 0
    (e.g. exp(-1000)) is the correctly rounded result and stays silent, as
    numpy's default has it."""
    with np.errstate(over="raise", invalid="raise", divide="raise",
                     under="ignore"):
        yield
