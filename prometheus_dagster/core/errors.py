"""Named errors. Every failure a user can cause raises one of these with a message that names
the file, table, column, row or value at fault."""


class PrometheusError(Exception):
    """Base class of all errors raised by Prometheus."""


class ConfigError(PrometheusError):
    """A configuration file is unreadable, malformed, or holds an invalid value."""


class DataSchemaError(PrometheusError):
    """A frame does not match the declared schema of the table it is written to."""


class DataQualityError(PrometheusError):
    """Staged data breaks a data-quality rule and was not written."""


class SourceError(PrometheusError):
    """A data source could not provide what was asked (missing or unparsable file...)."""


class WarehouseError(PrometheusError):
    """The warehouse could not complete an operation (the previous data is left untouched)."""


class LookAheadError(PrometheusError):
    """Code tried to read data dated after the as-of date it runs for."""


class ModelNotFoundError(PrometheusError):
    """No registered model version is valid for the requested as-of date."""
