"""Fixtures of the solver tests (tests/optimize/)."""
import signal

import pytest


@pytest.fixture
def no_hang():
    """A SIGALRM guard for tests that could loop without bound if the code
    under test were wrong: a hang fails that test after 20 s instead of
    stalling the whole suite."""
    def timeout(signum, frame):
        raise TimeoutError("the solver did not return within 20 s")
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
