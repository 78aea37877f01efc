"""Scenario sets: ids, seeding, generation with bounds, the ``scenario_sets`` /
``scenario_paths`` rows, and regeneration from a stored set row.

The random stream of a set is a ``numpy.random.SeedSequence`` of the spec's seed and a SHA-256
of (market, as-of date, set name), so a run for one date and a backfill over many dates give
the same paths, and a stored row (its spec and seed) with the same inputs gives them again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.scenarios.config import Bounds, ScenariosConfig, ScenarioSetSpec
from prometheus_dagster.engines.scenarios.errors import ScenarioError
from prometheus_dagster.engines.scenarios.generators import GENERATORS, GenerationContext
from prometheus_dagster.engines.scenarios.inputs import (
    BaseWindow,
    ScenarioInputs,
    prepare_base_window,
    set_context,
)
from prometheus_dagster.engines.scenarios.paths import (
    clip_to_bounds,
    cumulative_returns,
    path_statistics,
)


@dataclass(frozen=True)
class GeneratedSet:
    """A generated set: its ``scenario_sets`` row, the instruments (columns of the paths) and
    the bounded step returns, shape (num_paths, horizon, n_instruments)."""

    set_row: dict
    instrument_ids: list[str]
    paths: np.ndarray

    @property
    def cumulative_returns(self) -> np.ndarray:
        """(num_paths, n_instruments) compounded path returns."""
        return cumulative_returns(self.paths)


def _day(as_of_date: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of_date).normalize()


def spec_json(spec: ScenarioSetSpec) -> str:
    """The canonical JSON of a spec (sorted keys, no spaces): what its id hash is taken of."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def scenario_set_id(market_id: str, as_of_date: pd.Timestamp, spec: ScenarioSetSpec) -> str:
    """``market:YYYY-MM-DD:name:hash8``, hash8 the first 8 hex digits of the SHA-256 of the
    spec's canonical JSON."""
    digest = hashlib.sha256(spec_json(spec).encode()).hexdigest()[:8]
    return f"{market_id}:{_day(as_of_date):%Y-%m-%d}:{spec.name}:{digest}"


def scenario_seed_sequence(seed: int, market_id: str, as_of_date: pd.Timestamp, name: str
                           ) -> np.random.SeedSequence:
    """The seed sequence of a set (stable across processes: no Python ``hash()``)."""
    key = f"{market_id}|{_day(as_of_date):%Y-%m-%d}|{name}".encode()
    words = np.frombuffer(hashlib.sha256(key).digest()[:16], dtype="<u4")
    return np.random.SeedSequence([int(seed), *(int(w) for w in words)])


class ScenarioDay:
    """The inputs of one as-of date D, validated and cut to sessions <= D once, and the base
    windows cut from them, shared by every set generated for D (the sets of a config mostly
    share one window, and its OLS betas with it)."""

    def __init__(self, inputs: ScenarioInputs, as_of_date: pd.Timestamp, *,
                 strict: bool = False):
        self.day = _day(as_of_date)
        self.inputs = _prepared(inputs, self.day, strict)
        self._windows: dict[tuple[int, int, int, float], BaseWindow] = {}

    def base_window(self, spec: ScenarioSetSpec, min_history_fraction: float) -> BaseWindow:
        """``prepare_base_window`` of ``spec``, with warnings of its own."""
        key = (spec.base_window_sessions, spec.min_base_sessions, spec.horizon,
               min_history_fraction)
        if key not in self._windows:
            self._windows[key] = prepare_base_window(self.inputs, self.day, spec,
                                                     min_history_fraction)
        return self._windows[key].copy_for_set()


def _generate(market_id: str, prepared: ScenarioDay, spec: ScenarioSetSpec,
              config: ScenariosConfig, config_id: str) -> GeneratedSet:
    day, inputs = prepared.day, prepared.inputs
    where = set_context(spec, day)
    base = prepared.base_window(spec, config.min_history_fraction)
    ctx = GenerationContext(spec, base, inputs,
                            scenario_seed_sequence(spec.seed, market_id, day, spec.name), where)
    result = GENERATORS[spec.family](ctx)
    bounds = config.bounds
    paths, clipped = clip_to_bounds(result.paths, bounds.min_step_return, bounds.max_step_return)
    calibration = {
        **base.calibration(result.used_rows),
        "n_sessions": len(result.used_rows),
        "first_session": f"{base.sessions[result.used_rows[0]]:%Y-%m-%d}",
        "last_session": f"{base.sessions[result.used_rows[-1]]:%Y-%m-%d}",
    }
    details = {
        **result.details,
        "requested_paths": spec.num_paths,
        "settings": {"bounds": bounds.model_dump(mode="json"),
                     "min_history_fraction": config.min_history_fraction},
        "warnings": list(base.warnings),
    }
    row = {
        "market_id": market_id,
        "as_of_date": day,
        "set_id": scenario_set_id(market_id, day, spec),
        "name": spec.name,
        "family": spec.family,
        "category": spec.category,
        "horizon": spec.horizon,
        "num_paths": int(paths.shape[0]),
        "seed": spec.seed,
        "generator_spec": spec.model_dump(mode="json"),
        "base_start": base.sessions[0],
        "base_end": base.sessions[-1],
        "regime_filter": None if spec.regime_filter is None else list(spec.regime_filter),
        "regime_filter_applied": bool(result.regime_filter_applied),
        "tags": list(spec.tags),
        "n_instruments": len(base.instrument_ids),
        "excluded_instruments": list(base.excluded),
        "clipped_moves": clipped,
        "calibration": calibration,
        "path_statistics": path_statistics(paths),
        "details": details,
        "config_id": config_id,
    }
    return GeneratedSet(row, list(base.instrument_ids), paths)


def _prepared(inputs: ScenarioInputs, day: pd.Timestamp, strict: bool) -> ScenarioInputs:
    inputs.validate()
    if strict:
        inputs.check_as_of(day)
    return inputs.as_of(day)


def _scenario_day(inputs: ScenarioInputs | ScenarioDay, day: pd.Timestamp, strict: bool
                  ) -> ScenarioDay:
    if not isinstance(inputs, ScenarioDay):
        return ScenarioDay(inputs, day, strict=strict)
    if inputs.day != day:
        raise ValueError(f"inputs prepared for {inputs.day:%Y-%m-%d} used for {day:%Y-%m-%d}")
    return inputs


def generate_scenario_set(market_id: str, as_of_date: pd.Timestamp, spec: ScenarioSetSpec,
                          inputs: ScenarioInputs | ScenarioDay, config: ScenariosConfig,
                          config_id: str, *, strict: bool = False) -> GeneratedSet:
    """One scenario set of ``market_id`` as of ``as_of_date`` (D). Dated inputs after D are
    ignored (cut off here), or refused with LookAheadError when ``strict``. Pass a
    ``ScenarioDay`` to generate several sets of D from inputs prepared once."""
    day = _day(as_of_date)
    return _generate(market_id, _scenario_day(inputs, day, strict), spec, config, config_id)


def generate_scenarios(market_id: str, as_of_date: pd.Timestamp, inputs: ScenarioInputs,
                       config: ScenariosConfig, config_id: str, *, strict: bool = False
                       ) -> list[GeneratedSet]:
    """Every set of the config, in config order."""
    prepared = ScenarioDay(inputs, as_of_date, strict=strict)
    return [_generate(market_id, prepared, spec, config, config_id) for spec in config.sets]


def scenario_frames(sets: list[GeneratedSet]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``scenario_sets`` and ``scenario_paths`` rows of generated sets, validated against
    their schemas. Path rows carry step returns as float32 vectors; cumulative returns are
    compounded from the float64 paths."""
    if not sets:
        return empty_frame("scenario_sets"), empty_frame("scenario_paths")
    return scenario_set_frame(sets), scenario_path_frame(sets)


def scenario_set_frame(sets: list[GeneratedSet], *, validate: bool = True) -> pd.DataFrame:
    """The ``scenario_sets`` rows of generated sets, validated unless ``validate=False`` (a
    caller collecting many dates validates their concatenation once)."""
    if not sets:
        return empty_frame("scenario_sets")
    frame = pd.DataFrame([s.set_row for s in sets])
    return validate_frame("scenario_sets", frame) if validate else frame


def scenario_path_frame(sets: list[GeneratedSet], *, validate: bool = True) -> pd.DataFrame:
    """The ``scenario_paths`` rows of generated sets (see ``scenario_frames``); with
    ``validate=False`` not yet checked against the schema, for a caller that writes them
    through the warehouse (which validates on write) and would otherwise pay it twice."""
    if not sets:
        return empty_frame("scenario_paths")
    steps, cumulative, path_ids, instruments = [], [], [], []
    for s in sets:
        num_paths, horizon, n = s.paths.shape
        flat = s.paths.transpose(0, 2, 1).reshape(num_paths * n, horizon)
        # each row's float32 step returns as one bytes value (a void view: no Python loop)
        steps.append(np.ascontiguousarray(flat, dtype="<f4").view(f"V{4 * horizon}")
                     .ravel().astype(object))
        cumulative.append(np.prod(1.0 + flat, axis=1) - 1.0)
        path_ids.append(np.repeat(np.arange(num_paths), n))
        instruments.append(np.tile(np.asarray(s.instrument_ids, dtype=object), num_paths))
    counts = [len(c) for c in cumulative]

    def per_set(column: str) -> np.ndarray:
        return np.repeat(np.asarray([s.set_row[column] for s in sets], dtype=object), counts)

    days = pd.DatetimeIndex([s.set_row["as_of_date"] for s in sets])
    frame = pd.DataFrame({
        "market_id": per_set("market_id"),
        "as_of_date": pd.DatetimeIndex(np.repeat(days.to_numpy(), counts)),
        "set_id": per_set("set_id"),
        "path_id": np.concatenate(path_ids),
        "instrument_id": np.concatenate(instruments),
        "step_returns": np.concatenate(steps),
        "cumulative_return": np.concatenate(cumulative),
        "config_id": per_set("config_id"),
    })
    return validate_frame("scenario_paths", frame) if validate else frame


def _json_field(value: object) -> Any:  # JSON text decoded, anything else as stored
    return json.loads(value) if isinstance(value, str) else value


def regenerate_paths(set_row: dict | pd.Series, inputs: ScenarioInputs | ScenarioDay,
                     config: ScenariosConfig) -> GeneratedSet:
    """Rebuild a stored set from its row (``generator_spec``, seed, market, date) and the same
    inputs. Bounds and the history threshold are those recorded on the row (``details``), else
    the config's; the rebuilt set must have the stored ``set_id``."""
    row = dict(set_row)
    try:
        spec = ScenarioSetSpec.model_validate(_json_field(row["generator_spec"]))
    except ValidationError as exc:
        raise ConfigError(f"scenario set {row.get('set_id')!r}: stored generator_spec is "
                          f"invalid: {exc}") from None
    if int(row["seed"]) != spec.seed:
        raise ScenarioError(f"scenario set {row['set_id']!r}: row seed {row['seed']} differs "
                            f"from the spec's seed {spec.seed}")
    settings = (_json_field(row.get("details")) or {}).get("settings")
    if settings:
        config = config.model_copy(update={
            "bounds": Bounds.model_validate(settings["bounds"]),
            "min_history_fraction": float(settings["min_history_fraction"])})
    regenerated = generate_scenario_set(str(row["market_id"]), pd.Timestamp(row["as_of_date"]),
                                        spec, inputs, config, str(row["config_id"]))
    if regenerated.set_row["set_id"] != row["set_id"]:
        raise ScenarioError(f"scenario set {row['set_id']!r}: regenerated as "
                            f"{regenerated.set_row['set_id']!r} (market, date or spec differ)")
    return regenerated
