"""The No-U-Turn sampler with multinomial sampling from the trajectory, on a
target already whitened (identity metric), and dual-averaging step-size
adaptation.

Algorithm: Hoffman and Gelman (2014), "The No-U-Turn sampler", JMLR 15
(tree doubling, dual averaging, alg. 4 and 5); Betancourt (2017), "A
conceptual introduction to Hamiltonian Monte Carlo", arXiv:1701.02434
(multinomial sampling of the trajectory's points, biased progressive
sampling between its doublings, the no-U-turn criterion on the summed
momenta, appendix A); the criterion is also checked across the two halves
of each merged subtree, which stops trajectories that turn back within one
doubling (the checks Stan added in version 2.23). Written for this package
from those descriptions.

The metric is the identity: the caller whitens the target (x = L^T (q - q0)
for a metric L L^T), so that a leapfrog step costs one gradient and a few
vector operations, and the tree bookkeeping a few dot products per step.
"""
from __future__ import annotations

import math

import numpy as np

Array = np.ndarray
#: A trajectory point whose energy exceeds the start's by more than this is
#: divergent (the integrator has left the typical set; Stan's threshold).
MAX_ENERGY_ERROR = 1000.0


class Point:
    """A phase-space point: position x, momentum p, potential U and its
    gradient g (U = -ln density up to a constant)."""

    __slots__ = ("x", "p", "U", "g")

    def __init__(self, x: Array, p: Array, U: float, g: Array):
        self.x, self.p, self.U, self.g = x, p, U, g


class _Tree:
    """A subtree of the trajectory: its two ends in time order (``left``
    earlier than ``right``), the end it grows from (``edge``), the point
    drawn from it, ln of its summed weights exp(H0 - H), its summed
    momentum, and the transition statistics of its steps."""

    __slots__ = ("left", "right", "edge", "sample", "log_weight", "rho",
                 "n_steps", "sum_accept", "diverged", "turned")

    @property
    def stopped(self) -> bool:
        return self.diverged or self.turned


def _no_u_turn(rho: Array, p_left: Array, p_right: Array) -> bool:
    """Betancourt's criterion for the identity metric: both ends still move
    along the summed momentum rho."""
    return float(p_left @ rho) > 0.0 and float(p_right @ rho) > 0.0


def _merged_continues(left: _Tree, right: _Tree) -> bool:
    """The criterion on the merged span, then across its halves (each half
    extended by the neighbouring end of the other)."""
    pl, pr = left.left.p, right.right.p
    return (_no_u_turn(left.rho + right.rho, pl, pr)
            and _no_u_turn(left.rho + right.left.p, pl, right.left.p)
            and _no_u_turn(right.rho + left.right.p, left.right.p, pr))


class NUTS:
    """Transitions of the No-U-Turn sampler for a potential on R^d.

    ``potential(x) -> (U, g)``: -ln density (up to a constant) and its
    gradient. Each transition costs n_steps potential calls (at most
    2^max_tree_depth - 1) plus O(d) per step."""

    def __init__(self, potential, max_tree_depth: int = 10):
        self.potential = potential
        self.max_tree_depth = max_tree_depth

    def point(self, x: Array) -> Point:
        U, g = self.potential(x)
        return Point(x, None, U, g)

    def _leapfrog(self, z: Point, step: float) -> Point:
        p = z.p - 0.5 * step * z.g
        x = z.x + step * p
        U, g = self.potential(x)
        return Point(x, p - 0.5 * step * g, U, g)

    def _leaf(self, z: Point, step: float, H0: float) -> _Tree:
        new = self._leapfrog(z, step)
        H = new.U + 0.5 * float(new.p @ new.p)
        error = H - H0 if np.isfinite(H) else math.inf
        t = _Tree()
        t.left = t.right = t.edge = t.sample = new
        t.log_weight, t.rho = -error, new.p
        t.n_steps, t.sum_accept = 1, math.exp(-max(error, 0.0))
        t.diverged, t.turned = error > MAX_ENERGY_ERROR, False
        return t

    def _build(self, z: Point, step: float, depth: int, H0: float, rng) -> _Tree:
        """A subtree of 2^depth leapfrog steps from z (``step`` < 0: back in
        time); stopped early when a half diverges or turns."""
        if depth == 0:
            return self._leaf(z, step, H0)
        first = self._build(z, step, depth - 1, H0, rng)
        if first.stopped:
            return first
        second = self._build(first.edge, step, depth - 1, H0, rng)
        first.n_steps += second.n_steps
        first.sum_accept += second.sum_accept
        if second.stopped:
            first.diverged, first.turned = second.diverged, second.turned
            return first
        return self._merge(first, second, step > 0, rng, progressive=False)

    @staticmethod
    def _merge(old: _Tree, new: _Tree, forward: bool, rng, progressive: bool) -> _Tree:
        """``old`` extended by ``new``, which continues it in time
        (``forward``) or before it. The drawn point moves to new's with
        probability w_new / (w_old + w_new) inside a subtree (multinomial),
        min(1, w_new / w_old) at the top (biased progressive sampling)."""
        log_total = np.logaddexp(old.log_weight, new.log_weight)
        log_ratio = new.log_weight - (old.log_weight if progressive else log_total)
        if log_ratio >= 0 or rng.random() < math.exp(log_ratio):
            old.sample = new.sample
        left, right = (old, new) if forward else (new, old)
        old.turned = not _merged_continues(left, right)
        old.left, old.right, old.edge = left.left, right.right, new.edge
        old.log_weight, old.rho = log_total, old.rho + new.rho
        return old

    def transition(self, z: Point, step_size: float, rng) -> tuple[Point, dict]:
        """One transition from z (position, U, g; the momentum is drawn
        here): the next point and its statistics (accept_stat, the mean of
        min(1, exp(H0 - H)) over the new points, which step-size adaptation
        reads; tree_depth; n_steps; diverging)."""
        p0 = rng.standard_normal(z.x.shape)
        start = Point(z.x, p0, z.U, z.g)
        H0 = z.U + 0.5 * float(p0 @ p0)
        tree = _Tree()
        tree.left = tree.right = tree.edge = tree.sample = start
        tree.log_weight, tree.rho = 0.0, p0
        tree.n_steps, tree.sum_accept, tree.diverged, tree.turned = 0, 0.0, False, False
        depth = 0
        while depth < self.max_tree_depth:
            forward = rng.random() < 0.5
            end = tree.right if forward else tree.left
            sub = self._build(end, step_size if forward else -step_size, depth, H0, rng)
            depth += 1
            tree.n_steps += sub.n_steps
            tree.sum_accept += sub.sum_accept
            if sub.stopped:
                tree.diverged = sub.diverged
                break
            self._merge(tree, sub, forward, rng, progressive=True)
            if tree.turned:
                break
        stats = {"accept_stat": tree.sum_accept / max(tree.n_steps, 1),
                 "tree_depth": depth, "n_steps": tree.n_steps,
                 "diverging": tree.diverged}
        s = tree.sample
        return Point(s.x, None, s.U, s.g), stats


def initial_step_size(sampler: NUTS, z: Point, rng, start: float = 1.0) -> float:
    """Hoffman and Gelman's heuristic (alg. 4): double or halve the step
    until one leapfrog step's acceptance probability crosses 1/2. At most
    60 leapfrog steps."""
    step = start
    p = rng.standard_normal(z.x.shape)
    z = Point(z.x, p, z.U, z.g)
    H0 = z.U + 0.5 * float(p @ p)

    def log_accept(step):
        new = sampler._leapfrog(z, step)
        H = new.U + 0.5 * float(new.p @ new.p)
        return H0 - H if np.isfinite(H) else -math.inf

    direction = 1.0 if log_accept(step) > math.log(0.5) else -1.0
    for _ in range(60):
        trial = step * 2.0 ** direction
        crossed = (log_accept(trial) > math.log(0.5)) != (direction > 0)
        if crossed:
            return trial if direction < 0 else step
        step = trial
    return step


class DualAveraging:
    """Step-size adaptation by dual averaging (Hoffman and Gelman 2014,
    sec. 3.2, alg. 5) towards a mean acceptance statistic ``target``, with
    their constants gamma = 0.05, t0 = 10, kappa = 0.75 and mu = ln(10
    step0)."""

    GAMMA, T0, KAPPA = 0.05, 10.0, 0.75

    def __init__(self, step0: float, target: float):
        self.mu, self.target = math.log(10.0 * step0), target
        self.m, self.h_bar, self.log_step_bar = 0, 0.0, 0.0

    def update(self, accept_stat: float) -> float:
        """The step size for the next iteration."""
        self.m += 1
        m = self.m
        w = 1.0 / (m + self.T0)
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - accept_stat)
        log_step = self.mu - math.sqrt(m) / self.GAMMA * self.h_bar
        eta = m ** -self.KAPPA
        self.log_step_bar = eta * log_step + (1.0 - eta) * self.log_step_bar
        return math.exp(log_step)

    @property
    def final(self) -> float:
        """The averaged step size, used after warm-up."""
        return math.exp(self.log_step_bar)
