"""A warehouse URL -> its backend: ``duckdb:///abs/path.duckdb`` (or a bare ``*.duckdb`` path)
or ``postgresql://user@host:port/db``, with the optional query ``?schema=prefix`` (every
namespace moved under ``prefix``) and ``?lock_timeout=seconds``."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from prometheus_dagster.core.errors import WarehouseError
from prometheus_dagster.resources.warehouse_backend import (
    DEFAULT_LOCK_TIMEOUT_S,
    LOCK_TIMEOUT_ENV,
    _Backend,
    _mask_password,
)
from prometheus_dagster.resources.warehouse_duckdb import _DuckDBBackend
from prometheus_dagster.resources.warehouse_postgres import _PostgresBackend


def backend_for_url(url: str, lock_timeout: float | None = None) -> _Backend:
    """The backend ``url`` names; nothing is opened. ``lock_timeout`` (seconds) overrides
    ``?lock_timeout=`` and ``$PROMETHEUS_WAREHOUSE_LOCK_TIMEOUT`` (default 600)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    schema_prefix = query.pop("schema", None) or None
    timeout_text = query.pop("lock_timeout", None) or os.environ.get(LOCK_TIMEOUT_ENV)
    if lock_timeout is None:
        try:
            lock_timeout = float(timeout_text) if timeout_text else DEFAULT_LOCK_TIMEOUT_S
        except ValueError:
            raise WarehouseError(
                f"warehouse URL {_mask_password(url)}: lock_timeout {timeout_text!r} is not "
                "a number of seconds"
            ) from None
    if schema_prefix is not None and not schema_prefix.replace("_", "").isalnum():
        raise WarehouseError(
            f"warehouse URL {_mask_password(url)}: schema {schema_prefix!r} must be letters, "
            "digits and underscores"
        )
    lock_timeout = float(lock_timeout)
    scheme = parts.scheme.lower()
    if scheme == "duckdb" or (scheme == "" and parts.path.endswith(".duckdb")):
        # duckdb:///abs/file and duckdb:////abs/file both mean /abs/file; duckdb://rel/file
        # (or a bare path) is relative to the working directory.
        raw = url.split("://", 1)[1].split("?", 1)[0] if "://" in url else parts.path
        path = Path("/" + raw.lstrip("/")) if raw.startswith("/") else Path(raw)
        if not str(path) or str(path) == ".":
            raise WarehouseError(f"warehouse URL {url!r} names no DuckDB file")
        return _DuckDBBackend(path.expanduser().resolve(), schema_prefix, lock_timeout)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg2"):
        dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))
        return _PostgresBackend(dsn, schema_prefix, lock_timeout)
    raise WarehouseError(
        f"unsupported warehouse URL {_mask_password(url)!r}: use "
        "duckdb:///absolute/path.duckdb or postgresql://user@host:port/database"
    )
