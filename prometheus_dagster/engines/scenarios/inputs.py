"""What a scenario set is generated from, and the base window it is calibrated on.

Dated inputs (returns, factor returns, regime labels) are cut to sessions on or before the
as-of date D by the generator itself, so a backfill may pass one long history for many dates and
get exactly what a run for each date alone would. Exposures, sectors and weakness are
snapshots the caller takes as of D.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import DataSchemaError, LookAheadError
from prometheus_dagster.engines.scenarios.config import ScenarioSetSpec
from prometheus_dagster.engines.scenarios.errors import ScenarioError
from prometheus_dagster.engines.scenarios.paths import path_statistics


@dataclass(frozen=True)
class ScenarioInputs:
    """returns: sessions x instrument_id daily simple returns (NaN: no price); factors:
    sessions x factor_id daily factor returns; regime_labels: session -> label; exposures:
    instrument_id x factor_id betas as of D (estimated by OLS on the base window when absent);
    sectors: instrument_id -> sector; weakness: instrument_id -> fragility driver in [0, 1]."""

    returns: pd.DataFrame
    factors: pd.DataFrame | None = None
    regime_labels: pd.Series | None = None
    exposures: pd.DataFrame | None = None
    sectors: pd.Series | None = None
    weakness: pd.Series | None = None

    def validate(self) -> None:
        """Raise DataSchemaError when an input is not shaped as documented."""
        if not isinstance(self.returns, pd.DataFrame):
            raise DataSchemaError("scenario inputs: returns must be a DataFrame (sessions x "
                                  f"instrument_id), got {type(self.returns).__name__}")
        _check_dated("returns", self.returns)
        if self.factors is not None:
            _check_dated("factors", self.factors)
        if self.regime_labels is not None:
            _check_dated("regime_labels", self.regime_labels)
        if self.weakness is not None:
            w = pd.to_numeric(self.weakness, errors="coerce")
            bad = w.notna() & ((w < 0) | (w > 1))
            if bad.any():
                raise DataSchemaError(
                    f"scenario inputs: weakness of {bad[bad].index[0]!r} is "
                    f"{w[bad].iloc[0]!r}, outside [0, 1]")

    def check_as_of(self, as_of_date: pd.Timestamp) -> None:
        """Raise LookAheadError when a dated input holds a session after ``as_of_date``."""
        day = pd.Timestamp(as_of_date).normalize()
        for name, data in self._dated():
            later = data.index[data.index.normalize() > day]
            if len(later):
                raise LookAheadError(
                    f"scenario inputs: {name} has {len(later)} session(s) after "
                    f"{day:%Y-%m-%d}, the first {later[0]:%Y-%m-%d}")

    def as_of(self, as_of_date: pd.Timestamp) -> ScenarioInputs:
        """The inputs with dated rows cut to sessions on or before ``as_of_date``."""
        day = pd.Timestamp(as_of_date).normalize()

        def cut(data):
            return None if data is None else data[data.index.normalize() <= day]

        return replace(self, returns=cut(self.returns), factors=cut(self.factors),
                       regime_labels=cut(self.regime_labels))

    def _dated(self) -> list[tuple[str, pd.DataFrame | pd.Series]]:
        pairs = [("returns", self.returns), ("factors", self.factors),
                 ("regime_labels", self.regime_labels)]
        return [(n, d) for n, d in pairs if d is not None]


def _check_dated(name: str, data: pd.DataFrame | pd.Series) -> None:
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DataSchemaError(f"scenario inputs: {name} must be indexed by session dates "
                              f"(DatetimeIndex), got {type(data.index).__name__}")
    if not data.index.is_monotonic_increasing or data.index.has_duplicates:
        raise DataSchemaError(f"scenario inputs: {name} sessions must be unique and ascending")
    if isinstance(data, pd.DataFrame) and data.columns.has_duplicates:
        raise DataSchemaError(f"scenario inputs: {name} has duplicate columns")


@dataclass(frozen=True)
class BaseWindow:
    """The last ``base_window_sessions`` sessions up to D, as arrays. ``returns`` has the
    remaining gaps of included instruments filled with 0 (no move on a day without a price);
    ``factors`` likewise."""

    sessions: pd.DatetimeIndex
    instrument_ids: list[str]
    returns: np.ndarray                       # (T, N)
    excluded: list[str]
    factor_ids: list[str]
    factors: np.ndarray | None                # (T, K)
    labels: np.ndarray | None                 # (T,) object, None where unknown
    warnings: list[str] = field(default_factory=list)
    # results derived from the window and its date's inputs (OLS betas, calibrations, inputs
    # aligned to the window's instruments), shared by copies of the window: the sets of a date
    # compute them once
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    def copy_for_set(self) -> BaseWindow:
        """The same window with its own warnings list (the arrays and derived results are
        shared and read-only), so that several sets of a date can be generated from it."""
        return replace(self, warnings=list(self.warnings))

    def factor_returns(self, where: str) -> np.ndarray:
        """The (T, K) factor returns, which ``where`` needs."""
        if self.factors is None:
            raise ScenarioError(f"{where}: needs factor returns (inputs.factors) covering the "
                                "base window")
        return self.factors

    def ols_betas(self) -> np.ndarray:
        """(N, K) OLS slopes of the returns on the factors (see ``ols_betas``), computed once
        per window."""
        if "ols" not in self.derived:
            betas = ols_betas(self.returns, self.factor_returns("OLS betas"))
            betas.setflags(write=False)
            self.derived["ols"] = betas
        return self.derived["ols"]

    def calibration(self, rows: np.ndarray) -> dict:
        """``path_statistics`` of the window's ``rows`` (computed once per set of rows)."""
        key = ("calibration", rows.tobytes())
        if key not in self.derived:
            self.derived[key] = path_statistics(self.returns[rows][None])
        return dict(self.derived[key])

    def aligned(self, what: str, source: object, build: Any) -> Any:
        """``build()`` once per (what, source object): an input of the window's date aligned
        to its instruments. The window belongs to one date's inputs, so the source object is
        the same for every set of that date."""
        key = (what, id(source))
        if key not in self.derived:
            self.derived[key] = build()
        return self.derived[key]


def set_context(spec: ScenarioSetSpec, as_of_date: pd.Timestamp) -> str:
    return f"scenario set {spec.name!r} as of {pd.Timestamp(as_of_date):%Y-%m-%d}"


def prepare_base_window(inputs: ScenarioInputs, as_of_date: pd.Timestamp,
                        spec: ScenarioSetSpec, min_history_fraction: float) -> BaseWindow:
    """Cut the base window of ``spec`` from inputs already limited to sessions <= D."""
    where = set_context(spec, as_of_date)
    window = inputs.returns.iloc[-spec.base_window_sessions:]
    needed = max(spec.min_base_sessions, spec.horizon)
    if len(window) < needed:
        first = f" from {window.index[0]:%Y-%m-%d}" if len(window) else ""
        raise ScenarioError(
            f"{where}: the base window has {len(window)} session(s){first}; at least {needed} "
            f"are needed (horizon {spec.horizon}, min_base_sessions {spec.min_base_sessions})")
    values = _numeric(window)
    coverage = values.notna().mean(axis=0)
    keep = coverage >= min_history_fraction
    ids = [str(c) for c in values.columns]
    excluded = [i for i, k in zip(ids, keep, strict=True) if not k]
    if not keep.any():
        raise ScenarioError(
            f"{where}: no instrument is priced on {min_history_fraction:.0%} of the "
            f"{len(window)} base sessions ({len(ids)} instruments)")
    warnings = []
    if excluded:
        warnings.append(f"{len(excluded)} instrument(s) excluded: priced on less than "
                        f"{min_history_fraction:.0%} of the base window")
    returns = values.loc[:, keep.to_numpy()].to_numpy(dtype=float)
    factor_ids, factors = _factor_window(inputs.factors, window.index, min_history_fraction,
                                         warnings)
    labels = None
    if inputs.regime_labels is not None:
        lab = inputs.regime_labels.reindex(window.index)
        labels = np.array([v if isinstance(v, str) else None for v in lab], dtype=object)
    base = BaseWindow(window.index, [i for i, k in zip(ids, keep, strict=True) if k],
                      np.nan_to_num(returns, nan=0.0), excluded, factor_ids, factors, labels,
                      warnings)
    for array in (base.returns, base.factors, base.labels):
        if array is not None:
            array.setflags(write=False)
    return base


def _factor_window(factors: pd.DataFrame | None, sessions: pd.DatetimeIndex,
                   min_fraction: float, warnings: list[str]
                   ) -> tuple[list[str], np.ndarray | None]:
    if factors is None or factors.shape[1] == 0:
        return [], None
    values = _numeric(factors.reindex(sessions))
    coverage = values.notna().mean(axis=0)
    dropped = [str(c) for c, v in coverage.items() if v < min_fraction]
    if dropped:
        warnings.append(f"factor(s) {dropped} dropped: present on less than "
                        f"{min_fraction:.0%} of the base window")
    values = values.loc[:, (coverage >= min_fraction).to_numpy()]
    if values.shape[1] == 0:
        return [], None
    return [str(c) for c in values.columns], np.nan_to_num(values.to_numpy(float), nan=0.0)


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        return frame.astype(float)
    return frame.apply(pd.to_numeric, errors="coerce")


def ols_betas(returns: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(N, K) slopes of each instrument's returns on the factors, with an intercept."""
    design = np.column_stack([np.ones(len(factors)), factors])
    coef, *_ = np.linalg.lstsq(design, returns, rcond=None)
    return coef[1:].T


def factor_exposures(base: BaseWindow, exposures: pd.DataFrame | None, where: str
                     ) -> tuple[np.ndarray, str]:
    """(N, K) betas on ``base.factor_ids``: the supplied exposures where given, OLS on the base
    window for instruments or factors they miss. Returns the betas and their source."""
    base.factor_returns(where)  # raises without factor returns
    estimated = base.ols_betas()
    if exposures is None:
        return estimated, "ols"
    given = _exposure_matrix(base, exposures, base.factor_ids)
    missing = np.isnan(given)
    if missing.all():
        return estimated, "ols"
    if missing.any():
        base.warnings.append(f"{int(missing.sum())} exposure(s) missing from inputs.exposures "
                             "estimated by OLS on the base window")
        return np.where(missing, estimated, given), "exposures+ols"
    return given, "exposures"


def factor_beta(base: BaseWindow, exposures: pd.DataFrame | None, factor: str, where: str
                ) -> np.ndarray:
    """(N,) beta of every instrument on ``factor`` (supplied, else OLS on all factors)."""
    given = np.full(len(base.instrument_ids), np.nan)
    if exposures is not None and factor in exposures.columns:
        given = _exposure_matrix(base, exposures, [factor])[:, 0]
    missing = np.isnan(given)
    if not missing.any():
        return given
    if factor in base.factor_ids:
        estimated = base.ols_betas()[:, base.factor_ids.index(factor)]
        if not missing.all():
            base.warnings.append(f"{int(missing.sum())} {factor} beta(s) missing from "
                                 "inputs.exposures estimated by OLS")
        return np.where(missing, estimated, given)
    if missing.all():
        raise ScenarioError(f"{where}: needs {factor} exposures (inputs.exposures) or {factor} "
                            "factor returns (inputs.factors)")
    fill = float(np.median(given[~missing]))
    base.warnings.append(f"{int(missing.sum())} {factor} beta(s) missing: set to the "
                         f"cross-sectional median {fill:.3f}")
    return np.where(missing, fill, given)


def _exposure_matrix(base: BaseWindow, exposures: pd.DataFrame, factor_ids: list[str]
                     ) -> np.ndarray:
    """(N, len(factor_ids)) exposures of the window's instruments (NaN where not given),
    read-only."""
    def build() -> pd.DataFrame:
        frame = exposures.copy()
        frame.index = frame.index.map(str)
        frame.columns = frame.columns.map(str)
        return frame.reindex(index=base.instrument_ids)

    aligned = base.aligned("exposures", exposures, build)
    out = _numeric(aligned.reindex(columns=factor_ids)).to_numpy(float)
    out.setflags(write=False)
    return out


def instrument_weakness(base: BaseWindow, weakness: pd.Series | None, where: str) -> np.ndarray:
    """(N,) weakness in [0, 1]; an instrument without a value counts as not weak (recorded)."""
    if weakness is None:
        raise ScenarioError(f"{where}: needs per-instrument weakness (inputs.weakness)")

    def build() -> tuple[np.ndarray, int]:
        w = pd.to_numeric(weakness, errors="coerce")
        w.index = w.index.map(str)
        values = w.reindex(base.instrument_ids).to_numpy(float)
        filled = np.nan_to_num(values, nan=0.0)
        filled.setflags(write=False)
        return filled, int(np.isnan(values).sum())

    values, missing = base.aligned("weakness", weakness, build)
    if missing:
        base.warnings.append(f"{missing} instrument(s) without weakness treated as 0")
    return values


def instrument_sectors(base: BaseWindow, sectors: pd.Series | None) -> np.ndarray | None:
    """(N,) sector per instrument (None where unknown), or None without a sector input."""
    if sectors is None:
        return None

    def build() -> tuple[np.ndarray, int]:
        s = sectors.copy()
        s.index = s.index.map(str)
        values = s.reindex(base.instrument_ids)
        out = np.array([v if isinstance(v, str) else None for v in values], dtype=object)
        out.setflags(write=False)
        return out, int(values.isna().sum())

    values, missing = base.aligned("sectors", sectors, build)
    if missing:
        base.warnings.append(f"{missing} instrument(s) without a sector")
    return values
