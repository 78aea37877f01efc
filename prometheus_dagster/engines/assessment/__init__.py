"""The assessment engine: expected returns, scores, confidence and signals per instrument,
date and horizon from alpha families combined by a point-in-time LightGBM model
(``docs/engines/assessment.md``).

* ``inputs``: :class:`AssessmentInputs`, the warehouse frames the engine reads, checked.
* ``features``: point-in-time value, momentum, quality, carry, low-vol, fragility and context
  features, standardised per date (one call for many dates = one call per date, to the bit).
* ``labels``: forward excess returns over each horizon and the winsorised training target.
* ``model``: :class:`AssessmentModel` (one regressor per horizon, purged and embargoed
  training, family contributions, JSON save/load) and :func:`fit_assessment_model`.
* ``evaluation``: walk-forward out-of-sample predictions; rank IC, deciles, IC by regime.
* ``scores``: the ``instrument_scores`` rows (long-side fragility penalty, score, confidence,
  signal label, alpha components).

Importing the package declares the table and registers the ``assessment`` config.
"""

from prometheus_dagster.engines.assessment import schemas  # noqa: F401  (declares the table)
from prometheus_dagster.engines.assessment.config import (
    FAMILIES,
    FEATURES,
    SIGNAL_LABELS,
    AssessmentConfig,
)
from prometheus_dagster.engines.assessment.evaluation import (
    decile_means,
    evaluate_predictions,
    walk_forward_predictions,
)
from prometheus_dagster.engines.assessment.features import (
    assessment_features,
    latest_statements,
    raw_features,
    standardise,
)
from prometheus_dagster.engines.assessment.inputs import AssessmentInputError, AssessmentInputs
from prometheus_dagster.engines.assessment.labels import forward_labels, training_target
from prometheus_dagster.engines.assessment.model import AssessmentModel, fit_assessment_model
from prometheus_dagster.engines.assessment.schemas import INSTRUMENT_SCORES
from prometheus_dagster.engines.assessment.scores import instrument_score_rows
from prometheus_dagster.engines.assessment.training import AssessmentTrainingError, training_cut

__all__ = [
    "FAMILIES", "FEATURES", "INSTRUMENT_SCORES", "SIGNAL_LABELS", "AssessmentConfig",
    "AssessmentInputError", "AssessmentInputs", "AssessmentModel", "AssessmentTrainingError",
    "assessment_features", "decile_means", "evaluate_predictions", "fit_assessment_model",
    "forward_labels", "instrument_score_rows", "latest_statements", "raw_features",
    "standardise", "training_cut", "training_target", "walk_forward_predictions",
]
