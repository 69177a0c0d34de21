"""Run the 'regression' experiment alone: python experiments/regression.py [--out DIR] [--quick].
The code lives in sopt/experiments/regression.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, regression

if __name__ == "__main__":
    sys.exit(_common.script_main(regression))
