"""The data source resource: the embedded synthetic market by default, or a folder of files."""

from __future__ import annotations

import functools
from pathlib import Path

from dagster import ConfigurableResource

from prometheus_dagster.core.config import load_config, load_engine_config
from prometheus_dagster.core.disk_cache import cache_dir
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.paths import CONFIG_DIR


@functools.cache
def _embedded(config_path: str):
    from prometheus_dagster.engines.ingestion.sources import EmbeddedSource
    from prometheus_dagster.engines.synthetic_market import SyntheticMarket, SyntheticMarketConfig

    loaded = load_config(config_path)
    if not isinstance(loaded.config, SyntheticMarketConfig):
        raise ConfigError(f"{config_path}: engine {loaded.config.engine!r} is not a synthetic "
                          "market config")
    # the simulated markets are kept in the home: each run process loads them, not simulates
    cache = cache_dir("synthetic_market")
    return EmbeddedSource(SyntheticMarket(loaded.config, cache_dir=cache)), loaded


@functools.cache
def _files(root: str):
    from prometheus_dagster.engines.ingestion.file_source import FileSource

    return FileSource(Path(root))


class SourceResource(ConfigurableResource):
    """Which source ingestion reads. Empty fields fall back to configs/engines/ingestion.yaml."""

    kind: str = ""
    files_root: str = ""
    synthetic_config: str = ""

    def _settings(self) -> tuple[str, str]:
        from prometheus_dagster.core.ingestion_config import IngestionConfig

        cfg = load_engine_config("ingestion").typed(IngestionConfig)
        kind = self.kind or cfg.source
        root = self.files_root or (cfg.files_root or "")
        return kind, root

    @property
    def synthetic_config_path(self) -> str:
        return self.synthetic_config or str(CONFIG_DIR / "engines" / "synthetic_market.yaml")

    def get(self):
        kind, root = self._settings()
        if kind == "embedded":
            return _embedded(self.synthetic_config_path)[0]
        if kind == "files":
            if not root:
                raise ConfigError("ingestion source 'files' needs files_root (a folder path)")
            return _files(str(Path(root).resolve()))
        raise ConfigError(f"ingestion source {kind!r} is unknown: use 'embedded' or 'files'")

    def synthetic_market(self):
        """The embedded market generator (for its ground-truth tables), or None."""
        kind, _ = self._settings()
        if kind != "embedded":
            return None
        return _embedded(self.synthetic_config_path)[0].market
