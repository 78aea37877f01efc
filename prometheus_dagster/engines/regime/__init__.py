"""The regime engine: pure functions from a region's internals and macro series to regime
labels, confidence, transition probabilities and early-warning levels.

* ``features``: cross-asset window features per session (index trend, volatility, drawdown,
  implied vol, credit, curve, commodities, internals), using only data up to the session.
* ``model``: Gaussian-mixture prototypes fitted point in time, clusters named from their
  characteristics, transition matrix; JSON persistence; row-independent inference.
* ``smoothing``: causal minimum-duration smoothing, transition probabilities.
* ``warnings``: percentile-based early warnings by domain -> GREEN/YELLOW/ORANGE/RED.
* ``assign``: the ``regimes`` rows of a region.
* ``evaluation``: scores against a known regime path.

Importing the package declares the ``regimes`` table and registers the ``regime`` config.
"""

from prometheus_dagster.engines.regime import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.regime.assign import assign_regimes, regime_path_summary
from prometheus_dagster.engines.regime.config import (
    ALERT_LEVELS,
    REGIME_LABELS,
    RISK_OFF_LABELS,
    RISK_ON_LABELS,
    RegimeConfig,
)
from prometheus_dagster.engines.regime.evaluation import label_agreement, risk_off_balanced_accuracy
from prometheus_dagster.engines.regime.features import (
    RegionInputs,
    combine_internals,
    compute_region_features,
    missing_inputs,
)
from prometheus_dagster.engines.regime.model import (
    RegimeModel,
    RegimeTrainingError,
    fit_regime_model,
)
from prometheus_dagster.engines.regime.smoothing import (
    run_lengths,
    smooth_labels,
    transition_matrix,
)
from prometheus_dagster.engines.regime.warnings import early_warnings, trailing_percentile

__all__ = [
    "ALERT_LEVELS",
    "REGIME_LABELS",
    "RISK_OFF_LABELS",
    "RISK_ON_LABELS",
    "RegimeConfig",
    "RegimeModel",
    "RegimeTrainingError",
    "RegionInputs",
    "assign_regimes",
    "combine_internals",
    "compute_region_features",
    "early_warnings",
    "fit_regime_model",
    "label_agreement",
    "missing_inputs",
    "regime_path_summary",
    "risk_off_balanced_accuracy",
    "run_lengths",
    "smooth_labels",
    "trailing_percentile",
    "transition_matrix",
]
