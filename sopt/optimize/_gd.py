"""Gradient descent with a backtracking line search and an adaptive step
("bold driver": the trial step doubles after each success; Battiti, Neural
Computation 1, 1989). A baseline for comparisons, not a recommendation."""
from __future__ import annotations

from ._loop import StepFailure
from ._line_search import ROUND_OFF_MESSAGE, RoundOff, armijo


class GradientDescentStep:
    def __init__(self, problem, lr: float = 1e-2):
        self.problem, self.damping = problem, float(lr)

    def wants_more(self, w, f, g) -> bool:
        return False

    def step(self, w, f, g):
        try:
            found = armijo(self.problem, w, f, g, -self.damping * g)
        except RoundOff:
            raise StepFailure(3, ROUND_OFF_MESSAGE) from None
        if found is None:
            raise StepFailure(3, "No decrease of f along the negative gradient.")
        w_new, f_new, t = found
        lr = self.damping * t
        self.damping = 2.0 * lr
        return w_new, f_new, {"damping": lr}
