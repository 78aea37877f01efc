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

import yaml
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


def register_config_model(engine: str):
    """Class decorator: ``@register_config_model("regime")`` binds an engine name to its model."""

    def wrap(cls: type[C]) -> type[C]:
        CONFIG_MODELS[engine] = cls
        return cls

    return wrap


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


def _import_engine(engine: str) -> None:
    """Engines register their config models on import; import one on first use by name."""
    import importlib

    if not engine.isidentifier():
        return
    try:
        importlib.import_module(f"prometheus_dagster.engines.{engine}")
    except ModuleNotFoundError:
        pass


def validate_config(
    data: dict[str, Any], model: type[C] | None = None, source: str = "<inline>"
) -> LoadedConfig:
    """Validate a mapping into its config model (chosen by ``engine`` when no model is given)."""
    if model is None:
        engine = data.get("engine")
        if engine is None:
            raise ConfigError(f"{source}: field 'engine' is required but missing")
        if engine not in CONFIG_MODELS:
            _import_engine(engine)
        if engine not in CONFIG_MODELS:
            raise ConfigError(
                f"{source}: field 'engine' = {engine!r}: unknown engine "
                f"(known: {', '.join(sorted(CONFIG_MODELS))})"
            )
        model = CONFIG_MODELS[engine]  # type: ignore[assignment]
    try:
        config = model.model_validate(data)
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
    loaded = load_config(engine_config_path(engine, config_dir))
    if loaded.engine != engine:
        raise ConfigError(
            f"{loaded.source_path}: field 'engine' = {loaded.engine!r}: expected {engine!r}"
        )
    return loaded


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
