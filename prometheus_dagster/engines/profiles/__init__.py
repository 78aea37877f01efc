"""Profiles and risk flags (``docs/engines/profiles.md``): point-in-time structured fields
from the latest reported statement, risk flags in [0, 1], and a profile embedding in the joint
space.

Importing the package declares the ``profiles`` table and registers the ``profiles`` config.
"""

from prometheus_dagster.engines.profiles.compute import (
    build_profiles,
    combine_embedding,
    latest_statements,
    recent_news,
    risk_flags,
    structured_fields,
)
from prometheus_dagster.engines.profiles.config import ProfilesConfig, Ramp
from prometheus_dagster.engines.profiles.flags import (
    earnings_quality_score,
    governance_risk_score,
    leverage_score,
    liquidity_risk,
    profile_weakness,
    ramp,
)
from prometheus_dagster.engines.profiles.schemas import RISK_FLAGS, STRUCTURED_FIELDS

__all__ = [
    "RISK_FLAGS",
    "STRUCTURED_FIELDS",
    "ProfilesConfig",
    "Ramp",
    "build_profiles",
    "combine_embedding",
    "earnings_quality_score",
    "governance_risk_score",
    "latest_statements",
    "leverage_score",
    "liquidity_risk",
    "profile_weakness",
    "ramp",
    "recent_news",
    "risk_flags",
    "structured_fields",
]
