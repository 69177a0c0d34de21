"""Run the 'bayes_classification' experiment alone: python experiments/bayes_classification.py [--out DIR] [--quick].
The code lives in sopt/experiments/bayes_classification.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, bayes_classification

if __name__ == "__main__":
    sys.exit(_common.script_main(bayes_classification))
