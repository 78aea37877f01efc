"""Named errors of the execution engine."""

from __future__ import annotations

from prometheus_dagster.core.errors import PrometheusError


class ExecutionError(PrometheusError):
    """A broker or simulator operation cannot be carried out (unknown order, sessions out of
    order, an unknown mode...)."""


class OrderValidationError(ExecutionError, ValueError):
    """An order or fill has an impossible field (negative quantity, a LIMIT without a limit
    price, an unknown side...)."""


class LiveBrokerUnavailableError(ExecutionError):
    """LIVE mode was asked for but no live broker adapter is installed."""
