"""Run the 'bayes_sampling' experiment alone: python experiments/bayes_sampling.py [--out DIR] [--quick].
The code lives in sopt/experiments/bayes_sampling.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, bayes_sampling

if __name__ == "__main__":
    sys.exit(_common.script_main(bayes_sampling))
