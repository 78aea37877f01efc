"""The stability engine (``docs/engines/stability.md``): per market and date, a
``StabilityVector`` for each issuer, sector, the market and each FX instrument, with
components in [0, 1] (1 = most stable) and their weighted ``stability_score``.

* ``panel``: the inputs (``StabilityInputs``) on one session x instrument axis; baskets,
  the market index, regime labels per session.
* ``components``: liquidity, volatility (against own history, regime-aware), contagion,
  fundamental, the score; each a documented map to [0, 1].
* ``contagion``: stress-day betas and co-movement fitted on the trailing window.
* ``compute``: the ``stability_vectors`` rows of a market for a list of dates.
* ``rows``, ``notes``: rows per entity type, and what was missing in words.

Importing the package declares the ``stability_vectors`` table and registers the
``stability`` config.
"""

from prometheus_dagster.engines.stability import schemas  # noqa: F401  (declares the table)
from prometheus_dagster.engines.stability.components import (
    LiquidityParts,
    VolatilityParts,
    comovement_component,
    contagion_component,
    fundamental_component,
    hill,
    liquidity_component,
    stability_score,
    volatility_component,
)
from prometheus_dagster.engines.stability.compute import compute_stability
from prometheus_dagster.engines.stability.config import (
    COMPONENTS,
    ComponentWeights,
    StabilityConfig,
)
from prometheus_dagster.engines.stability.contagion import (
    average_comovement,
    origin_slope,
    stress_days,
    stress_exposure,
)
from prometheus_dagster.engines.stability.panel import StabilityInputs
from prometheus_dagster.engines.stability.schemas import ENTITY_TYPES, STABILITY_VECTORS

__all__ = [
    "COMPONENTS",
    "ENTITY_TYPES",
    "STABILITY_VECTORS",
    "ComponentWeights",
    "LiquidityParts",
    "StabilityConfig",
    "StabilityInputs",
    "VolatilityParts",
    "average_comovement",
    "comovement_component",
    "compute_stability",
    "contagion_component",
    "fundamental_component",
    "hill",
    "liquidity_component",
    "origin_slope",
    "stability_score",
    "stress_days",
    "stress_exposure",
    "volatility_component",
]
