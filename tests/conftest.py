"""Fixtures and hooks shared by every test folder (plain helpers are in
tests/helpers.py, shared problems in tests/problems.py). Folder-specific
fixtures live in that folder's conftest.py (tests/core/, tests/experiments/).
"""
from __future__ import annotations

import pytest

from helpers import local_cluster


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """The session on one BLAS thread. The tests' matrices are small, and on
    a machine busy with other work OpenBLAS's threads wait on each other
    (sopt/_threads.py): one gradient of the README's K-FAC example costs
    17 ms of CPU on 2 threads and 2.8 ms on 1 on a loaded 2-core machine.
    Tests of the thread handling set their own limits (core/test_threads.py)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def client():
    """A Client on one :func:`helpers.local_cluster` for the whole session
    (tests/sharded/, the sharded half of tests/core/test_validation.py, the
    K-FAC statistics on shards), always closed (client and cluster) at the
    end. Tests that break a cluster start their own."""
    import distributed
    cluster = local_cluster()
    try:
        c = distributed.Client(cluster)
        try:
            yield c
        finally:
            c.close()
    finally:
        cluster.close()
