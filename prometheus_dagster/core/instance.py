"""The project home's Dagster instance.

Two kinds, chosen with ``PROMETHEUS_INSTANCE`` when ``setup-home`` writes
``$DAGSTER_HOME/dagster.yaml``:

* ``postgres`` (default, the research instance): runs, event logs and schedules in PostgreSQL,
  the embedded server of the project home (``core.embedded_postgres``) or the server of
  ``PROMETHEUS_DAGSTER_PG_URL``; event writes are batched and a single-run backfill plans each
  asset once with its partition subset instead of once per partition. That is ~1-3 ms of
  Dagster bookkeeping per asset-partition instead of ~80 ms on SQLite.
* ``sqlite``: Dagster's default SQLite storage under ``$DAGSTER_HOME``; no server at all.

A run that plans its partitions as a subset is no longer marked failed per partition by Dagster
itself; :class:`ResearchEventLogStorage` restores that when (and only when) a run fails: it
writes one planned event per partition the run did not materialize, so the UI shows them
failed, exactly as with per-partition planning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import AssetKey, Field, StringSource
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage

from prometheus_dagster.core.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.paths import REPO_ROOT

INSTANCE_ENV = "PROMETHEUS_INSTANCE"
PG_URL_ENV = "PROMETHEUS_DAGSTER_PG_URL"
INSTANCE_KINDS = ("postgres", "sqlite")
# events per write; Dagster reads the variable at each write, so setting it here is enough
EVENT_BATCH_SIZE = "1000"
BASE_TEMPLATE = REPO_ROOT / "dagster.yaml"
RESEARCH_STORAGE_TEMPLATE = REPO_ROOT / "dagster_research_storage.yaml"
_MARKER = "# prometheus instance:"

_STORAGE_CONFIG = {
    "postgres_url": Field(StringSource, is_required=False),
    "data_dir": Field(StringSource, is_required=False),
}


def research_postgres_url(config: Mapping[str, Any] | None = None) -> str:
    """The PostgreSQL URL of the research instance: the config's ``postgres_url``, else
    ``$PROMETHEUS_DAGSTER_PG_URL``, else the embedded server (started here if needed)."""
    config = config or {}
    url = config.get("postgres_url") or os.environ.get(PG_URL_ENV)
    if url:
        return url
    data_dir = config.get("data_dir")
    return EmbeddedPostgres(Path(data_dir) if data_dir else None).url()


def _enable_event_batching() -> None:
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)


class _ResearchStorageConfig:
    """The config every research storage takes: a PostgreSQL URL or the embedded server."""

    @classmethod
    def config_type(cls) -> dict:
        return _STORAGE_CONFIG

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> Any:
        return cls(research_postgres_url(config_value), inst_data=inst_data)  # type: ignore[call-arg]


class ResearchRunStorage(_ResearchStorageConfig, PostgresRunStorage):
    pass


class ResearchScheduleStorage(_ResearchStorageConfig, PostgresScheduleStorage):
    pass


class ResearchEventLogStorage(_ResearchStorageConfig, PostgresEventLogStorage):
    """PostgreSQL event log with batched writes and one planned event per asset of a run; a
    failed run's unmaterialized partitions are marked failed when its failure is stored."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> Any:
        _enable_event_batching()
        return super().from_config_value(inst_data, config_value)

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True

    def store_event(self, event: EventLogEntry) -> None:
        super().store_event(event)
        if event.is_dagster_event and event.dagster_event_type == DagsterEventType.RUN_FAILURE:
            try:
                self.mark_unmaterialized_partitions_failed(event.run_id)
            except Exception as exc:  # never let the bookkeeping hide the run's own failure
                sys.stderr.write(f"could not mark the failed partitions of run "
                                 f"{event.run_id}: {exc}\n")

    def mark_unmaterialized_partitions_failed(self, run_id: str) -> int:
        """Write one planned event per partition the run planned as a subset and did not
        materialize; Dagster then reports them failed (the run has failed). Returns how many."""
        from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

        records = self.get_records_for_run(run_id, of_type=PLAN_AND_MATERIALIZE_EVENTS).records
        events: list[EventLogEntry] = []
        now = time.time()
        for entry, asset_key, keys in unmaterialized_planned_partitions(
                [r.event_log_entry for r in records], subsets_only=True):
            events.extend(EventLogEntry(
                error_info=None, level=logging.DEBUG, user_message="", run_id=run_id,
                timestamp=now, step_key=entry.step_key, job_name=entry.job_name,
                dagster_event=DagsterEvent.build_asset_materialization_planned_event(
                    entry.job_name or "", entry.step_key or "",
                    AssetMaterializationPlannedData(asset_key, partition=key)))
                for key in keys)
        if not events:
            return 0
        with self._connect() as conn:
            ids = [row[0] for row in conn.execute(self.prepare_insert_event_batch(events)
                                                  .returning(SqlEventLogStorageTable.c.id))]
        by_asset: dict[Any, tuple[EventLogEntry, int]] = {}
        for event, event_id in zip(events, ids, strict=True):
            by_asset[event.get_dagster_event().asset_key] = (event, event_id)
        with self.index_transaction() as conn:
            for event, event_id in by_asset.values():
                self._store_asset_event(conn, event, event_id)
        return len(events)


PLAN_AND_MATERIALIZE_EVENTS = {DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                               DagsterEventType.ASSET_MATERIALIZATION}


def unmaterialized_planned_partitions(
    entries: Sequence[EventLogEntry], *, subsets_only: bool = False,
) -> list[tuple[EventLogEntry, AssetKey, list[str]]]:
    """Of one run's planned and materialization events: per asset, the planned partitions
    (planned one by one or as a subset) that the run did not materialize, sorted, with the
    planned event they came from. ``subsets_only`` ignores partitions planned one by one."""
    done: set[tuple[AssetKey, str | None]] = set()
    planned: dict[AssetKey, tuple[EventLogEntry, set[str]]] = {}
    for entry in entries:
        dagster_event = entry.get_dagster_event()
        if dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            if dagster_event.asset_key is not None:  # set on every materialization
                done.add((dagster_event.asset_key, dagster_event.partition))
            continue
        data = dagster_event.event_specific_data
        if not isinstance(data, AssetMaterializationPlannedData):
            continue
        if data.partitions_subset is not None:
            keys = set(data.partitions_subset.get_partition_keys())
        elif data.partition is not None and not subsets_only:
            keys = {data.partition}
        else:
            continue
        planned.setdefault(data.asset_key, (entry, set()))[1].update(keys)
    out = []
    for asset_key, (entry, keys) in planned.items():
        missing = sorted(k for k in keys if (asset_key, k) not in done)
        if missing:
            out.append((entry, asset_key, missing))
    return out


# -- the instance config in $DAGSTER_HOME ----------------------------------------------------


def instance_kind() -> str:
    """The kind asked for with ``PROMETHEUS_INSTANCE`` (default ``postgres``)."""
    kind = os.environ.get(INSTANCE_ENV, "postgres").strip().lower() or "postgres"
    if kind not in INSTANCE_KINDS:
        raise ConfigError(f"{INSTANCE_ENV}={kind!r}: use one of {', '.join(INSTANCE_KINDS)}")
    return kind


def instance_yaml(kind: str) -> str:
    """The dagster.yaml of a kind: the shipped dagster.yaml, plus the research storage for
    ``postgres``; headed by a marker that lets setup-home update it while it is unedited."""
    body = BASE_TEMPLATE.read_text()
    if kind == "postgres":
        body = ("# The storage blocks at the end (dagster_research_storage.yaml) put this instance "
                "on PostgreSQL.\n" + body.rstrip("\n") + "\n\n"
                + RESEARCH_STORAGE_TEMPLATE.read_text())
    return f"{_MARKER} {kind} {_digest(body)}\n{body}"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def installed_kind(path: Path) -> str | None:
    """The kind of an instance config written by setup-home and not edited since; None for a
    file someone edited or wrote (setup-home keeps it)."""
    text = path.read_text()
    if text == BASE_TEMPLATE.read_text():  # a plain copy, as older set-ups made
        return "sqlite"
    head, _, body = text.partition("\n")
    parts = head.split()
    if head.startswith(_MARKER) and len(parts) == 5 and parts[4] == _digest(body):
        return parts[3]
    return None


def install_instance_config(dagster_home: Path, kind: str | None = None,
                            out: Any = None) -> str:
    """Write ``dagster_home/dagster.yaml`` for ``kind`` (default: :func:`instance_kind`) unless
    the file there was edited by hand; returns the kind in use (``custom`` for an edited file).
    The research instance is tried first: where its server cannot start, SQLite is installed
    with a message saying why."""
    kind = kind or instance_kind()
    target = dagster_home / "dagster.yaml"
    if target.exists():
        current = installed_kind(target)
        if current is None:
            return "custom"
        if current == kind and target.read_text() == instance_yaml(kind):
            return kind
    if kind == "postgres":
        try:
            research_postgres_url()
        except EmbeddedPostgresError as exc:
            print(f"warning: the research instance (PostgreSQL) is not available here; using "
                  f"the SQLite instance, ~80 ms of Dagster bookkeeping per asset-partition.\n"
                  f"{exc}", file=out or sys.stderr)
            kind = "sqlite"
    target.write_text(instance_yaml(kind))
    return kind


def stop_embedded_postgres() -> bool:
    """Stop the project home's embedded server (``prometheus stop``); True if it ran."""
    return EmbeddedPostgres().stop()

