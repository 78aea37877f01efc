"""Typed, versioned configuration loaded from YAML.

Every config is a pydantic model with ``engine`` and ``version``. Its ``config_id`` is
``<engine>@<version>-<hash8>`` where hash8 is the first 8 hex digits of the SHA-256 of the
canonical JSON of the validated content, so any change of content gives a new id and history is
never silently rewritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not installed
from pydantic import BaseModel, ConfigDict, ValidationError

from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.paths import CONFIG_DIR


class StrictModel(BaseModel):
    """Unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionedConfig(StrictModel):
    """Base of all top-level configs."""

    engine: str
    version: str


C = TypeVar("C", bound=VersionedConfig)

CONFIG_MODELS: dict[str, type[VersionedConfig]] = {}
_ENGINE_OF_MODEL: dict[type[VersionedConfig], str] = {}

# The module that defines each engine's config model. Models register themselves on import, so
# the registry is filled from here on first use: a config loads in a fresh interpreter whatever
# was imported before (tests/unit/test_config_fresh_process.py keeps this map complete).
CONFIG_MODEL_MODULES: dict[str, str] = {
    "markets": "prometheus_dagster.core.calendars",
    "ingestion": "prometheus_dagster.core.ingestion_config",
    "research": "prometheus_dagster.core.research_config",
    **{
        engine: f"prometheus_dagster.engines.{engine}.config"
        for engine in (
            "assessment", "encoders", "execution", "features", "fragility", "profiles",
            "qc", "regime", "risk", "scenarios", "stability", "strategy", "synthetic_market",
        )
    },
}


def register_config_model(engine: str):
    """Class decorator: ``@register_config_model("regime")`` binds an engine name to its model."""

    def wrap(cls: type[C]) -> type[C]:
        CONFIG_MODELS[engine] = cls
        _ENGINE_OF_MODEL[cls] = engine
        return cls

    return wrap


def known_engines() -> list[str]:
    """Every engine name a config file may declare."""
    return sorted(set(CONFIG_MODEL_MODULES) | set(CONFIG_MODELS))


def config_model(engine: str, source: str = "<inline>") -> type[VersionedConfig]:
    """The config model of ``engine``, importing the module that defines it on first use."""
    if engine not in CONFIG_MODELS and engine in CONFIG_MODEL_MODULES:
        import importlib

        importlib.import_module(CONFIG_MODEL_MODULES[engine])
        if engine not in CONFIG_MODELS:
            raise ConfigError(
                f"{source}: engine {engine!r}: module {CONFIG_MODEL_MODULES[engine]} does not "
                f"register a config model for it"
            )
    if engine not in CONFIG_MODELS:
        raise ConfigError(
            f"{source}: field 'engine' = {engine!r}: unknown engine "
            f"(known: {', '.join(known_engines())})"
        )
    return CONFIG_MODELS[engine]


def model_engine(model: type[VersionedConfig]) -> str | None:
    """The engine name ``model`` is registered under (None for an unregistered model)."""
    return _ENGINE_OF_MODEL.get(model)


def _engine_mismatch(source: str, declared: Any, expected: str) -> ConfigError:
    return ConfigError(
        f"{source}: this file declares engine {declared!r} but was loaded as the {expected!r} "
        f"config; point the {expected} engine at a file with 'engine: {expected}', or load this "
        f"file as a {declared} config"
    )


@dataclass(frozen=True)
class LoadedConfig:
    config: VersionedConfig
    config_id: str
    content_hash: str
    body: dict[str, Any]
    source_path: str | None

    @property
    def engine(self) -> str:
        return self.config.engine

    @property
    def version(self) -> str:
        return self.config.version

    def typed(self, model: type[C]) -> C:
        """The config as ``model`` (typed at the call site); a config of another model is a
        :class:`ConfigError` naming both."""
        if not isinstance(self.config, model):
            raise ConfigError(
                f"{self.source_path or '<inline>'}: expected a {model.__name__} config for "
                f"engine {self.engine!r}, got {type(self.config).__name__}")
        return self.config


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping, raising ConfigError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if data is None:
        raise ConfigError(f"{path}: config file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _format_validation_error(source: str, exc: ValidationError, body: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        value = err.get("input", None)
        if err["type"] == "missing":
            parts.append(f"field '{loc}' is required but missing")
        elif err["type"] == "extra_forbidden":
            parts.append(f"field '{loc}' is not a known setting (value {value!r})")
        else:
            parts.append(f"field '{loc}' = {value!r}: {err['msg']}")
    return f"{source}: invalid config: " + "; ".join(parts)


def content_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def make_config_id(config: VersionedConfig) -> tuple[str, str, dict[str, Any]]:
    body = config.model_dump(mode="json")
    digest = content_hash(body)
    return f"{config.engine}@{config.version}-{digest[:8]}", digest, body


def validate_config(
    data: dict[str, Any], model: type[C] | None = None, source: str = "<inline>"
) -> LoadedConfig:
    """Validate a mapping into its config model (chosen by ``engine`` when no model is given)."""
    resolved: type[VersionedConfig]
    if model is None:
        engine = data.get("engine")
        if engine is None:
            raise ConfigError(f"{source}: field 'engine' is required but missing")
        resolved = config_model(str(engine), source)
    else:
        resolved = model
        expected = model_engine(model)
        declared = data.get("engine")
        if expected is not None and declared is not None and declared != expected:
            raise _engine_mismatch(source, declared, expected)
    try:
        config = resolved.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc, data)) from None
    cid, digest, body = make_config_id(config)
    return LoadedConfig(config, cid, digest, body, None if source == "<inline>" else source)


def load_config(path: str | Path, model: type[C] | None = None) -> LoadedConfig:
    """Load and validate one YAML config file."""
    path = Path(path)
    return validate_config(read_yaml(path), model, str(path))


def engine_config_path(engine: str, config_dir: Path | None = None) -> Path:
    return (config_dir or CONFIG_DIR) / "engines" / f"{engine}.yaml"


def load_engine_config(engine: str, config_dir: Path | None = None) -> LoadedConfig:
    """Load ``configs/engines/<engine>.yaml``; the file's ``engine`` must match."""
    path = engine_config_path(engine, config_dir)
    data = read_yaml(path)
    declared = data.get("engine")
    if declared is not None and declared != engine:
        raise _engine_mismatch(str(path), declared, engine)
    return validate_config(data, config_model(engine, str(path)), str(path))


def engine_config_record(loaded: LoadedConfig, created_by: str = "prometheus") -> dict[str, Any]:
    """The ``engine_configs`` row for a loaded config."""
    import pandas as pd

    return {
        "config_id": loaded.config_id,
        "engine_name": loaded.engine,
        "version": loaded.version,
        "config_body": json.dumps(loaded.body, sort_keys=True),
        "content_hash": loaded.content_hash,
        "source_path": loaded.source_path,
        "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        "created_by": created_by,
    }
