"""Imported first by the benchmarks that time sopt's own kernels
(``import _bench_setup`` before numpy): BLAS on one thread unless the
caller set OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS (on a
small machine shared with other jobs, threaded BLAS waits for busy cores
and timings swing at random), and the sopt of this checkout preferred to an
installed one, so a checkout runs without installing."""
import os
import sys
from pathlib import Path

if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                      "MKL_NUM_THREADS")):
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"

ROOT = Path(__file__).resolve().parent.parent
if (ROOT / "sopt" / "__init__.py").is_file():
    sys.path.insert(0, str(ROOT))
