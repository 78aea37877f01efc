"""The machine's services for the tests that need a real one (PostgreSQL at 127.0.0.1:5432).

Where a service is absent a developer's run skips those tests with a message that says how to
start it; under CI (``CI`` set, as ``.ci/run`` runs) they fail instead, since CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import psycopg2
import pytest

PG_URL = os.environ.get("PROMETHEUS_TEST_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres")
PG_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def service_unavailable(service: str, where: str, error: object, hint: str) -> NoReturn:
    """Skip the test (fail it under CI) because ``service`` cannot be reached."""
    message = (f"{service} is not reachable at {where}: {str(error).strip()}\n"
               f"Start it with:\n    {hint}")
    if os.environ.get("CI"):
        pytest.fail(message + "\n(.ci/run starts it; CI runs every test that needs it)",
                    pytrace=False)
    pytest.skip(message)


def connect_postgres(url: str = PG_URL):  # noqa: ANN201 (psycopg2 connection)
    """An autocommit connection to the test server, or a skip (a failure under CI)."""
    try:
        conn = psycopg2.connect(url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        service_unavailable("PostgreSQL", url, exc,
                            f"{PG_START_HINT}\nor point PROMETHEUS_TEST_POSTGRES_URL at a server "
                            "(trust auth, user postgres)")
    conn.autocommit = True
    return conn


@contextmanager
def throwaway_postgres_database(prefix: str) -> Iterator[str]:
    """A new database on the test server, dropped afterwards; yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = connect_postgres()
    conn.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


RABBITMQ_URL = os.environ.get("PROMETHEUS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("PROMETHEUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_rabbitmq(url: str = RABBITMQ_URL) -> None:
    """Skip (fail under CI) unless the RabbitMQ broker answers."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 (any connection error means: not there)
        service_unavailable("RabbitMQ", url, exc, "rabbitmq-server -detached "
                            "(Debian package rabbitmq-server; user guest/guest)")


def require_redis(url: str = REDIS_URL) -> None:
    """Skip (fail under CI) unless the Redis server answers."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001
        service_unavailable("Redis", url, exc,
                            "redis-server --daemonize yes (Debian package redis-server)")
