"""The scenario engine's named error."""

from prometheus_dagster.core.errors import PrometheusError


class ScenarioError(PrometheusError):
    """A scenario set cannot be generated from the inputs it was given (too little history, a
    regime filter that leaves too few sessions, a missing input the set needs...)."""
