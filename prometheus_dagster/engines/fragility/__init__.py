"""The fragility engine: scenario-loss fragility measures, soft-target classes and fragility
alpha (docs/engines/fragility.md).

* ``measures``: per entity, the losses of every scenario path, expected shortfall, worst case,
  HighFragility in [0, 1].
* ``classes``: soft-target classes (NONE / WATCHLIST / SOFT_TARGET), fragility classes and
  position templates.
* ``components``: WeakProfile, Instability, HighFragility, ComplacentPricing and the
  SoftTargetScore.
* ``outcomes``: the tail outcomes a model learns (drawdown or delisting within a horizon).
* ``model``: the point-in-time LightGBM tail model and FragilityAlpha.
* ``alpha``: the ``fragility_alpha`` rows.

Importing the package declares the tables and registers the ``fragility`` config.
"""

from prometheus_dagster.engines.fragility import schemas  # noqa: F401  (declares the tables)
from prometheus_dagster.engines.fragility.alpha import fragility_alpha_rows
from prometheus_dagster.engines.fragility.classes import (
    fragility_class,
    position_templates,
    soft_target_class,
    soft_target_classes,
)
from prometheus_dagster.engines.fragility.components import (
    fragility_components,
    soft_target_score,
)
from prometheus_dagster.engines.fragility.config import (
    COMPONENTS,
    FRAGILITY_CLASSES,
    SOFT_TARGET_CLASSES,
    FragilityConfig,
)
from prometheus_dagster.engines.fragility.measures import (
    entity_path_returns,
    expected_shortfall,
    fragility_measures,
    high_fragility,
)
from prometheus_dagster.engines.fragility.model import (
    FragilityModel,
    FragilityTrainingError,
    fit_fragility_model,
)
from prometheus_dagster.engines.fragility.outcomes import (
    index_levels,
    tail_outcomes,
    total_return_levels,
)

__all__ = [
    "COMPONENTS", "FRAGILITY_CLASSES", "SOFT_TARGET_CLASSES", "FragilityConfig",
    "FragilityModel", "FragilityTrainingError", "entity_path_returns", "expected_shortfall",
    "fit_fragility_model", "fragility_alpha_rows", "fragility_class", "fragility_components",
    "fragility_measures", "high_fragility", "index_levels", "position_templates",
    "soft_target_class", "soft_target_classes", "soft_target_score", "tail_outcomes",
    "total_return_levels",
]
