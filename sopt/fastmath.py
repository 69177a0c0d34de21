"""Deprecated: the old name of :mod:`sopt.tanh_table` (an accurate float64
tanh, not fast-math arithmetic). Importing it warns and gives that module
itself, so that its state (the method chosen) is shared."""
import sys

from ._deprecation import warn_renamed
from . import tanh_table

# the warnings module skips the import machinery's frames, so the level
# above this module's code is the user's import statement
warn_renamed("sopt.fastmath", "sopt.tanh_table", stacklevel=3)
sys.modules[__name__] = tanh_table
