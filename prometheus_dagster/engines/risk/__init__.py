"""The risk engine: the point-in-time factor risk model Sigma = B F B' + D of docs/engines/risk.md
(exposures, factor covariance, specific risk) per market and date, the covariance the
portfolio optimiser uses.

* ``estimate``: :func:`estimate_risk_model` for one date, :func:`estimate_risk_models` for a
  backfill (bit-identical to per-date calls).
* ``model``: :class:`FactorRiskModel` (covariance, portfolio variance in factor form, factor
  exposures, risk decomposition, the arrays an optimiser takes).
* ``frames``: rows of ``risk_factor_covariance`` and ``risk_specific`` and the model back
  from them.
* ``stats``: the weighted covariance, shrinkage and eigenvalue-floor estimators.

Importing the package declares the tables and registers the ``risk`` config.
"""

from prometheus_dagster.engines.risk import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.risk.config import RiskModelConfig
from prometheus_dagster.engines.risk.estimate import (
    InsufficientHistoryError,
    RiskModelError,
    estimate_risk_model,
    estimate_risk_models,
)
from prometheus_dagster.engines.risk.frames import risk_model_frames, risk_model_from_frames
from prometheus_dagster.engines.risk.model import FactorRiskModel, RiskModelInputs, factor_order
from prometheus_dagster.engines.risk.schemas import RISK_TABLES

__all__ = [
    "RISK_TABLES", "FactorRiskModel", "InsufficientHistoryError", "RiskModelConfig",
    "RiskModelError", "RiskModelInputs", "estimate_risk_model", "estimate_risk_models",
    "factor_order", "risk_model_frames", "risk_model_from_frames",
]
