"""Run the 'classification' experiment alone: python experiments/classification.py [--out DIR] [--quick].
The code lives in sopt/experiments/classification.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, classification

if __name__ == "__main__":
    sys.exit(_common.script_main(classification))
