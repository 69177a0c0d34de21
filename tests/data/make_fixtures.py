"""Writes the committed fixture files that later sopt versions must still read.

Run once per file-format version (``python tests/data/make_fixtures.py``);
never regenerate an existing fixture: its point is that it was written by
the version named in its name.
"""
import pathlib
import warnings

import numpy as np

import sopt
from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor

HERE = pathlib.Path(__file__).parent


def main():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (30, 2))
    t = np.sin(np.pi * X[:, 0]) + 0.1 * rng.standard_normal(30)
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    X_new = rng.uniform(-1, 1, (5, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = BayesianMLPRegressor(hidden=(3,), max_cycles=5).fit(X, t)
        clf = BayesianMLPClassifier(hidden=(2,), max_cycles=5).fit(X, labels)
        # format 2: hidden="auto" (its table has int keys), 0-d arrays
        auto = BayesianMLPRegressor().fit(X, t)
    mean, std = reg.predict(X_new, return_std=True)
    sopt.save(HERE / f"format{sopt.saving.FORMAT_VERSION}.sopt", {
        "regressor": reg, "classifier": clf, "X_new": X_new,
        "mean": mean, "std": std, "proba": clf.predict_proba(X_new),
        "auto": auto, "auto_mean": auto.predict(X_new), "zero_d": np.array(2.5),
        "by_key": {0: "int", (1, 2): "tuple", 2.5: "float"},
        "sopt_version": sopt.__version__})


if __name__ == "__main__":
    main()
