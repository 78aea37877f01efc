"""Scenario steps: the scenario sets of each date (generated from data dated on or before it)
and their paths, regenerated from the stored set rows. Shared by the daily chain
(``assets/scenarios.py``) and anything that needs a date's scenario inputs again (the
reproducibility check of stored sets).

A partition range reads its look-back window once per chunk of a year (``ScenarioData``) and
cuts each date's view from it; every date's view equals what a run for that date alone reads,
so a range gives the same sets as date-by-date runs to the bit. The random stream of a set is
its own (seed, market, date, name), so draws stay per set; what does not depend on the draw
(the base window, its OLS betas and calibration, exposures, sectors and weakness aligned to the
window) is prepared once per date and shared by the sets of that date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import prometheus_dagster.engines.features  # noqa: F401  (declares returns, factors, exposures)
import prometheus_dagster.engines.regime  # noqa: F401  (declares the regimes table)
import prometheus_dagster.engines.stability  # noqa: F401  (declares stability_vectors)
from prometheus_dagster.core.calendars import trading_calendar
from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.query import between
from prometheus_dagster.core.schemas import empty_frame, validate_frame
from prometheus_dagster.engines.scenarios import (
    GeneratedSet,
    ScenarioDay,
    ScenarioError,
    ScenarioInputs,
    ScenariosConfig,
    generate_scenario_set,
    regenerate_paths,
    scenario_path_frame,
    scenario_set_frame,
)
from prometheus_dagster.steps.common import chunked

RETURN_COLUMNS = ["instrument_id", "date", "ret_1d"]
FACTOR_COLUMNS = ["factor_id", "date", "value"]
EXPOSURE_COLUMNS = ["instrument_id", "date", "factor_id", "exposure"]
STABILITY_COLUMNS = ["entity_type", "entity_id", "as_of_date", "stability_score", "fundamental"]


def scenario_lookback(cfg: ScenariosConfig) -> int:
    """Sessions before D a date's sets may use: the longest base window plus its horizon, with
    a margin of 5 sessions."""
    return max(s.base_window_sessions + s.horizon for s in cfg.sets) + 5


def scenario_inputs(cfg: ScenariosConfig, with_regime: bool) -> Inputs:
    """What the scenario sets of date D read: the look-back of returns and factor returns (and
    regime labels, for a market with regimes), D's exposures and stability vectors, and the
    market's instruments and issuers (sectors, and the issuer of each instrument)."""
    window = scenario_lookback(cfg)
    reads = [Read("returns_daily", sessions=window), Read("factors_daily", sessions=window),
             Read("instrument_factors_daily"), Read("stability_vectors"),
             Read("instruments", reference=True), Read("issuers", reference=True)]
    if with_regime:
        reads.append(Read("regimes", sessions=window,
                          note="labels of the base-window sessions (regime filters)"))
    return Inputs(*reads)


def scenario_path_inputs(cfg: ScenariosConfig, with_regime: bool) -> Inputs:
    """What the paths of date D read: D's stored sets, and what the sets were generated from."""
    return Inputs(Read("scenario_sets")) + scenario_inputs(cfg, with_regime)


def _wide(frame: pd.DataFrame, columns: str, values: str) -> pd.DataFrame:
    wide = frame.pivot_table(index="date", columns=columns, values=values,
                             aggfunc="first").sort_index()
    wide.index = pd.to_datetime(wide.index)
    return wide


def _by_date(frame: pd.DataFrame, column: str) -> dict[pd.Timestamp, pd.DataFrame]:
    """The rows of each date (one pass, instead of a scan of the frame per date)."""
    return dict(list(frame.groupby(pd.to_datetime(frame[column]), sort=False)))


class ScenarioData:
    """The inputs of a run's dates, read once; ``for_date`` gives the view of one date: the
    sessions of its own declared look-back and the instruments (factors) with data in it, so
    that a date's view is the same whether it was read alone or as part of a range."""

    def __init__(self, reader: Any, market_id: str, dates: list[pd.Timestamp],
                 cfg: ScenariosConfig, with_regime: bool = True):
        self.window = InputWindow(reader, scenario_inputs(cfg, with_regime), market_id, dates)
        self.market_id = market_id
        self.returns = _wide(self.window.frame("returns_daily", columns=RETURN_COLUMNS),
                             "instrument_id", "ret_1d")
        fac = self.window.frame("factors_daily", columns=FACTOR_COLUMNS)
        self.factors = None if fac.empty else _wide(fac, "factor_id", "value")
        reg = (self.window.frame("regimes", columns=["as_of_date", "regime_label"])
               if with_regime else pd.DataFrame())
        self.regimes = None if reg.empty else reg.set_index(
            pd.to_datetime(reg["as_of_date"]))["regime_label"]
        self.exposures = _by_date(self.window.frame("instrument_factors_daily",
                                                    columns=EXPOSURE_COLUMNS), "date")
        ins = self.window.frame("instruments", columns=["instrument_id", "issuer_id"])
        iss = self.window.frame("issuers", columns=["issuer_id", "sector"])
        sectors = ins.merge(iss, on="issuer_id", how="left").dropna(subset=["sector"])
        self.sectors = sectors.set_index("instrument_id")["sector"]
        self.issuer_of = ins.dropna(subset=["issuer_id"]).set_index("issuer_id")["instrument_id"]
        self.stability = _by_date(self.window.frame("stability_vectors",
                                                    columns=STABILITY_COLUMNS), "as_of_date")

    def start(self, d: pd.Timestamp) -> pd.Timestamp:
        """The first session of ``d``'s own look-back window."""
        return InputWindow(None, self.window.inputs, self.market_id, [d]).start("returns_daily")

    def weakness(self, d: pd.Timestamp) -> pd.Series | None:
        """instrument_id -> the drivers of fragility known before scenarios are drawn: the
        mean of (1 - stability score) and profile weakness (1 - fundamental) of its issuer
        (FX pairs: their own vector)."""
        s = self.stability.get(d)
        if s is None or s.empty:
            return None
        weak = pd.concat([1 - s["stability_score"], 1 - s["fundamental"]], axis=1).mean(axis=1)
        ids = s["entity_id"].astype(str)
        instrument = np.where(s["entity_type"] == "ISSUER", ids.map(self.issuer_of), ids)
        keep = s["entity_type"].isin(["ISSUER", "FX"]).to_numpy() & pd.notna(instrument)
        return pd.Series(weak.to_numpy()[keep], index=instrument[keep]).clip(0, 1)

    def for_date(self, d: pd.Timestamp) -> ScenarioInputs:
        start = self.start(d)
        ex = self.exposures.get(d)
        # (instrument, factor) is the key of a date's exposures: a plain pivot
        exposures = None if ex is None or ex.empty else ex.pivot(
            index="instrument_id", columns="factor_id", values="exposure")
        factors = None if self.factors is None else _with_data(self.factors.loc[start:d])
        return ScenarioInputs(returns=_with_data(self.returns.loc[start:d]),
                              factors=None if factors is None or factors.shape[1] == 0
                              else factors,
                              regime_labels=None if self.regimes is None
                              else self.regimes.loc[:d],
                              exposures=exposures, sectors=self.sectors,
                              weakness=self.weakness(d))


def _with_data(window: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``window`` with at least one value (a pivot of the window alone)."""
    return window.loc[:, window.notna().any(axis=0).to_numpy()]


@dataclass
class SetsResult:
    """The ``scenario_sets`` rows of a run, and what could not be generated."""

    frame: pd.DataFrame
    skipped: list[str] = field(default_factory=list)   # dates without any set
    partial: list[str] = field(default_factory=list)   # sets that failed on a date


def _sets_of_date(market_id: str, d: pd.Timestamp, data: ScenarioData, cfg: ScenariosConfig,
                  config_id: str, result: SetsResult) -> list[GeneratedSet]:
    if d not in data.returns.index:
        result.skipped.append(f"{d.date()}: no returns")
        return []
    day = ScenarioDay(data.for_date(d), d)
    sets = []
    for spec in cfg.sets:
        try:
            sets.append(generate_scenario_set(market_id, d, spec, day, cfg, config_id))
        except ScenarioError as exc:
            result.partial.append(f"{d.date()} {spec.name}: {exc}")
    if not sets:
        result.skipped.append(f"{d.date()}: no set could be generated")
    return sets


def _chunks(reader: Any, market_id: str, dates: list[pd.Timestamp], cfg: ScenariosConfig,
            with_regime: bool, log: Any, what: str
            ) -> Iterator[tuple[list[pd.Timestamp], ScenarioData]]:
    for chunk in chunked(sorted(dates), log, f"{market_id} {what}"):
        yield chunk, ScenarioData(reader, market_id, chunk, cfg, with_regime)


def compute_scenario_sets(reader: Any, market_id: str, dates: list[pd.Timestamp],
                          cfg: ScenariosConfig, config_id: str, with_regime: bool = True,
                          log: Any = None) -> SetsResult:
    """Every configured set of every date (in config order), a year of dates per read."""
    result = SetsResult(empty_frame("scenario_sets"))
    frames = []
    with single_threaded_blas():
        for chunk, data in _chunks(reader, market_id, dates, cfg, with_regime, log,
                                   "scenario sets"):
            for d in chunk:
                sets = _sets_of_date(market_id, d, data, cfg, config_id, result)
                if sets:
                    frames.append(scenario_set_frame(sets, validate=False))
    if frames:
        result.frame = validate_frame("scenario_sets", pd.concat(frames, ignore_index=True))
    return result


def compute_scenario_paths(reader: Any, market_id: str, dates: list[pd.Timestamp],
                           cfg: ScenariosConfig, with_regime: bool = True, log: Any = None
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the ``scenario_paths`` rows, the stored sets they were regenerated from) of ``dates``.
    A stored set that no longer reproduces from its spec and seed raises ScenarioError."""
    stored = InputWindow(reader, scenario_path_inputs(cfg, with_regime), market_id,
                         dates).frame("scenario_sets")
    if stored.empty:
        return empty_frame("scenario_paths"), stored
    stored_on = _by_date(stored, "as_of_date")
    frames = []
    with single_threaded_blas():
        for chunk, data in _chunks(reader, market_id, sorted(stored_on), cfg, with_regime,
                                   log, "scenario paths"):
            for d in chunk:
                rows = stored_on[d].to_dict(orient="records")
                day = ScenarioDay(data.for_date(d), d)
                sets = [regenerate_paths(row, day, cfg) for row in rows]
                for row, gen in zip(rows, sets, strict=True):
                    check_reproduced(row, gen.set_row)
                frames.append(scenario_path_frame(sets, validate=False))  # validated on write
    return pd.concat(frames, ignore_index=True), stored


# --- what is stored of the paths, and regeneration ------------------------------------------
def step_returns_kept_from(market_id: str, last: pd.Timestamp, cfg: ScenariosConfig
                           ) -> pd.Timestamp | None:
    """The first date whose paths keep their step returns when a run ends on ``last``: the
    ``store_paths_sessions``-th session up to ``last`` (None: every date keeps them; the day
    after ``last``: none does)."""
    keep = cfg.store_paths_sessions
    last = pd.Timestamp(last).normalize()
    if keep == "all":
        return None
    if keep == 0:
        return last + pd.Timedelta(days=1)
    sessions = trading_calendar(market_id).sessions(last - pd.Timedelta(days=2 * keep + 14),
                                                    last)
    return sessions[-keep] if len(sessions) >= keep else None


def paths_as_stored(paths: pd.DataFrame, kept_from: pd.Timestamp | None) -> pd.DataFrame:
    """The ``scenario_paths`` rows as the warehouse keeps them: step returns emptied on dates
    before ``kept_from`` (cumulative returns always kept)."""
    if kept_from is None or paths.empty:
        return paths
    older = pd.to_datetime(paths["as_of_date"]) < kept_from
    if not older.any():
        return paths
    out = paths.copy()
    out["step_returns"] = out["step_returns"].astype(object).where(~older.to_numpy(), None)
    return out


def drop_older_step_returns(warehouse: Any, market_id: str,
                            kept_from: pd.Timestamp | None) -> int:
    """Empty the stored step returns of ``market_id``'s paths dated before ``kept_from``;
    returns how many rows held them."""
    if kept_from is None:
        return 0
    return int(warehouse.clear_values(
        "scenario_paths", ["step_returns"],
        where={"market_id": market_id,
               "as_of_date": between(None, kept_from - pd.Timedelta(days=1))}))


def full_scenario_paths(reader: Any, market_id: str, dates: list[pd.Timestamp],
                        cfg: ScenariosConfig, with_regime: bool = True, log: Any = None
                        ) -> pd.DataFrame:
    """The ``scenario_paths`` rows of ``dates`` with every step return: as stored where the
    warehouse kept them, regenerated from the stored set spec and seed (and the inputs the
    set was drawn from) on dates where it did not. Deterministic: a regenerated date equals
    what was stored before its step returns were dropped."""
    dates = sorted(pd.Timestamp(d).normalize() for d in dates)
    stored = InputWindow(reader, Inputs(Read("scenario_paths")), market_id,
                         dates).frame("scenario_paths")
    lacking = pd.to_datetime(stored.loc[stored["step_returns"].isna(), "as_of_date"])
    regenerate = sorted(set(lacking))
    if not regenerate:
        return stored.reset_index(drop=True)
    regenerated, _ = compute_scenario_paths(reader, market_id, regenerate, cfg, with_regime,
                                            log=log)
    kept = stored[~pd.to_datetime(stored["as_of_date"]).isin(regenerate)]
    out = validate_frame("scenario_paths", pd.concat([kept, regenerated], ignore_index=True))
    return out.sort_values(["as_of_date", "set_id", "path_id", "instrument_id"],
                           ignore_index=True)


def check_reproduced(stored: dict, regenerated: dict) -> None:
    a, b = (_as_dict(r.get("path_statistics")) for r in (stored, regenerated))
    same = a.keys() == b.keys() and all(
        (x is None and y is None) or (x is not None and y is not None
                                      and np.isclose(x, y, rtol=1e-9, atol=1e-12))
        for x, y in ((a[k], b[k]) for k in a))
    if not same:
        raise ScenarioError(
            f"scenario set {stored['set_id']} no longer reproduces from its stored spec and "
            "seed: its inputs (returns, factors, regimes or stability) changed since it was "
            "generated; re-materialize scenario_sets for this date")


def _as_dict(v: Any) -> dict:
    return json.loads(v) if isinstance(v, str) else dict(v or {})


def set_decisions(sets: pd.DataFrame, input_refs: dict) -> pd.DataFrame:
    """One decision record per date: the sets generated and whether each regime filter held."""
    rows = []
    for d, day in sets.groupby("as_of_date", sort=True):
        rows.append({"context_id": f"{day['market_id'].iloc[0]}:{pd.Timestamp(d).date()}",
                     "as_of_date": d, "config_id": day["config_id"].iloc[0], "model_id": None,
                     "input_refs": input_refs,
                     "proposed_action": {"scenario_sets": list(day["set_id"]),
                                         "regime_filter_applied": {
                                             str(n): bool(a) for n, a in
                                             zip(day["name"], day["regime_filter_applied"],
                                                 strict=True)}}})
    return pd.DataFrame(rows)


def single_threaded_blas() -> Any:
    """BLAS limited to one thread: the scenario engine's linear algebra is on small matrices
    (a 504 x 3 design), where a second thread costs far more than it gives (measured 8x on
    this 2-core machine, 80x when it is loaded)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
