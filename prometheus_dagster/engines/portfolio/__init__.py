"""The portfolio engine (docs/engines/portfolio.md): mean-variance optimisation with transaction
costs under budget, bounds, gross leverage, sector/country, factor, turnover and soft-target
budget limits, on a factor risk model Sigma = B F B' + diag(D).

* ``problem``: ``RiskModel``, ``OptimizationProblem``, ``OptimizationResult`` and input
  validation.
* ``qp``: the factor form as one sparse QP for Clarabel, solvers cached per structure.
* ``screening``: large long-only books solved on a subset, with a dual certificate for the
  names left out.
* ``formulation``: the cvxpy problem (factor form for other solvers, dense baseline,
  feasibility checks).
* ``constraints``: binding constraints, violations and the infeasibility diagnosis.
* ``optimizer``: ``optimize`` (cached, parametrised, warm-startable) and ``optimize_dense``.
* ``construction``: a strategy, its universe and a risk model -> the problem
  (``build_problem``), the optimum -> ``target_portfolios`` rows.
* ``report``: the ``portfolio_risk_reports`` row of a portfolio (exposures, parametric and
  scenario VaR / ES, scenario P&L per set, stability).

Importing the package declares its tables (``target_portfolios``, ``portfolio_risk_reports``).
"""

from prometheus_dagster.engines.portfolio import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.portfolio.constraints import (
    BINDING_TOL,
    binding_constraints,
    cheap_conflicts,
    constraint_violations,
    diagnose_infeasibility,
)
from prometheus_dagster.engines.portfolio.optimizer import clear_cache, optimize, optimize_dense
from prometheus_dagster.engines.portfolio.problem import (
    InfeasibleProblemError,
    OptimizationError,
    OptimizationProblem,
    OptimizationResult,
    PreparedProblem,
    ProblemValidationError,
    RiskModel,
    prepare,
)

__all__ = [
    "BINDING_TOL", "InfeasibleProblemError", "OptimizationError", "OptimizationProblem",
    "OptimizationResult", "PreparedProblem", "ProblemValidationError", "RiskModel",
    "binding_constraints", "cheap_conflicts", "clear_cache", "constraint_violations",
    "diagnose_infeasibility", "optimize", "optimize_dense", "prepare",
]
