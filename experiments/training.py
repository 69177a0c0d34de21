"""Run the 'training' experiment alone: python experiments/training.py [--out DIR] [--quick].
The code lives in sopt/experiments/training.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, training

if __name__ == "__main__":
    sys.exit(_common.script_main(training))
