"""Run the 'bayes_regression' experiment alone: python experiments/bayes_regression.py [--out DIR] [--quick].
The code lives in sopt/experiments/bayes_regression.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, bayes_regression

if __name__ == "__main__":
    sys.exit(_common.script_main(bayes_regression))
