"""Run the 'derivatives' experiment alone: python experiments/derivatives.py [--out DIR] [--quick].
The code lives in sopt/experiments/derivatives.py so that `sopt reproduce` finds it
after `pip install .`."""
import sys

from sopt.experiments import _common, derivatives

if __name__ == "__main__":
    sys.exit(_common.script_main(derivatives))
