"""Portfolio risk report step: the risk report of each stored target portfolio on each date of
a range (exposures by factor, sector, country, currency and fragility bucket; parametric and
scenario VaR / ES; P&L per scenario set; stability; binding constraints), from one read of
each declared input for the range. See ``docs/engines/portfolio.md``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from prometheus_dagster.core.inputs import Inputs, InputWindow, Read
from prometheus_dagster.core.schemas import empty_frame
from prometheus_dagster.engines.portfolio.report import portfolio_risk_report, risk_report_rows
from prometheus_dagster.steps.portfolio import Strategies
from prometheus_dagster.steps.risk import STORED_RISK_INPUTS, load_risk_models

REPORT_INPUTS = Inputs(
    Read("target_portfolios"), Read("scenario_sets"),
    Read("scenario_paths", note="the paths of the instruments each portfolio holds"),
    Read("soft_target_classes"), Read("fragility_alpha"), Read("stability_vectors"),
    Read("instruments", reference=True), Read("issuers", reference=True)) + STORED_RISK_INPUTS
# (reader, market, dates, instruments=date -> ids) -> (date, its scenario paths) per date
PathsReader = Callable[..., Iterator[tuple[pd.Timestamp, pd.DataFrame]]]
ATTRIBUTES = {"soft_target_classes": "soft_target_class", "fragility_alpha": "fragility_class",
              "stability_vectors": "stability_score"}


def _issuer_values(frame: pd.DataFrame, column: str) -> dict[pd.Timestamp, pd.Series]:
    """Date -> issuer id -> ``column`` of the ISSUER rows of ``frame`` (fragility: the
    shortest horizon of that date)."""
    issuers = frame[frame["entity_type"] == "ISSUER"]
    if "horizon_days" in issuers and len(issuers):
        day = pd.to_datetime(issuers["as_of_date"])
        shortest = issuers["horizon_days"].groupby(day).transform("min")
        issuers = issuers[issuers["horizon_days"] == shortest]
    return {pd.Timestamp(d): g.set_index("entity_id")[column] for d, g in
            issuers.groupby(pd.to_datetime(issuers["as_of_date"]), sort=False)}


def report_attributes(window: InputWindow, dates: list[pd.Timestamp], instruments: pd.DataFrame,
                      issuers: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    """Date -> sector, country, currency, soft-target and fragility class and stability score
    of every instrument of the market on that date (one read per table for all dates)."""
    base = instruments[["instrument_id", "issuer_id", "currency"]].merge(
        issuers[["issuer_id", "sector", "country"]], on="issuer_id", how="left")
    values = {}
    for table, column in ATTRIBUTES.items():
        frame = window.frame(table, columns=[
            "entity_type", "entity_id", "as_of_date",
            *(["horizon_days"] if table == "fragility_alpha" else []), column])
        frame = frame[pd.to_datetime(frame["as_of_date"]).isin(dates)]
        # a date without rows maps every issuer to NaN, as an empty series of the read's dtype
        values[column] = (_issuer_values(frame, column), frame.set_index("entity_id")[column]
                          .iloc[:0])
    out = {}
    for d in dates:
        day = base.copy()
        for column, (by_date, none) in values.items():
            day[column] = day["issuer_id"].map(by_date.get(d, none))
        out[d] = day.drop(columns="issuer_id")
    return out


def compute_risk_reports(reader: Any, market_id: str, dates: list[pd.Timestamp],
                         strategies: Strategies, read_paths: PathsReader) -> pd.DataFrame:
    """``portfolio_risk_reports`` rows of every stored target of ``dates`` with a risk model.
    ``read_paths`` reads the declared ``scenario_sets`` / ``scenario_paths`` of the held
    names, a chunk of dates per query (the scenario step's reader)."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    window = InputWindow(reader, REPORT_INPUTS, market_id, dates)
    targets = window.frame("target_portfolios")
    risk = load_risk_models(reader, market_id, dates)
    instruments = window.frame("instruments")
    issuers = window.frame("issuers")
    with_targets = sorted({pd.Timestamp(d) for d in targets["as_of_date"]})
    attributes_on = report_attributes(window, with_targets, instruments, issuers) \
        if with_targets else {}
    held_on = {pd.Timestamp(d): set(day.loc[day["weight"] != 0, "instrument_id"])
               for d, day in targets.groupby("as_of_date", sort=True)}
    paths_on = dict(read_paths(reader, market_id, sorted(held_on), instruments=held_on))
    reports = []
    for d, day in targets.groupby("as_of_date", sort=True):
        d = pd.Timestamp(d)
        if d not in risk:
            continue
        for _, rows in day.groupby("portfolio_id", sort=True):
            sid = str(rows["strategy_id"].iloc[0])
            if sid not in strategies:
                continue
            strategy, config_id = strategies[sid]
            binding = rows["binding_constraints"].iloc[0]
            reports.append(portfolio_risk_report(
                rows.set_index("instrument_id")["weight"], risk[d], attributes_on[d],
                paths_on[d], strategy.risk_report.var_confidence,
                strategy.risk_report.horizon_days, strategy_id=sid, market_id=market_id,
                as_of_date=d, config_id=config_id,
                binding_constraints=json.loads(binding) if isinstance(binding, str)
                else list(binding or [])))
    return risk_report_rows(reports) if reports else empty_frame("portfolio_risk_reports")
