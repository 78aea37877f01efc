"""What the brief shows, read point in time: rows dated on or before the brief's date only, so
a brief rendered today for a past date shows what was known on that date. Everything is read
through ``wh``, any object with the warehouse's read interface
(:class:`~prometheus_dagster.core.query.WarehouseReader`: the warehouse, a time machine, a test
double)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from prometheus_dagster.core.query import Between, WarehouseReader, between
from prometheus_dagster.core.schemas import TABLES

HISTORY_SESSIONS = 126
TOP_N = 10
# tables whose rows for the date are counted in the pipeline-status section, in chain order
CHAIN = ("prices_daily", "news_articles", "returns_daily", "factors_daily", "text_embeddings",
         "numeric_window_embeddings", "joint_embeddings", "profiles", "regimes",
         "stability_vectors", "scenario_sets", "fragility_measures", "soft_target_classes",
         "fragility_alpha", "instrument_scores", "universes", "target_portfolios",
         "portfolio_risk_reports")
# written only for markets that run the investment chain (runs: investment in markets.yaml)
INVESTMENT_TABLES = ("numeric_window_embeddings", "joint_embeddings", "profiles",
                     "fragility_alpha", "instrument_scores", "universes", "target_portfolios",
                     "portfolio_risk_reports")


@dataclass
class BriefData:
    date: pd.Timestamp
    markets: list[str]
    pipeline: pd.DataFrame                 # market_id, table, rows on the date, ingestion status
    index_history: pd.DataFrame            # market_id, date, level (index rebased to 100)
    internals: pd.DataFrame                # market_id, index return, avg corr, breadth...
    regimes: pd.DataFrame | None = None    # region, date, label, confidence (history)
    weakest: pd.DataFrame | None = None    # issuers with the highest profile_weakness
    new_weak: pd.DataFrame | None = None   # issuers crossing the weakness threshold today
    stability: pd.DataFrame | None = None  # market_id, as_of_date, market stability (history)
    soft_targets: pd.DataFrame | None = None  # entities on the watchlist or soft targets today
    fragility: pd.DataFrame | None = None  # highest SoftTargetScores today with class and alpha
    scores: pd.DataFrame | None = None     # top and bottom assessment scores per strategy
    universe_changes: pd.DataFrame | None = None  # names entering / leaving, with reasons
    portfolios: pd.DataFrame | None = None  # largest weights of each target portfolio
    portfolio_risk: pd.DataFrame | None = None  # each portfolio's vol, VaR / ES, binding
    paper: pd.DataFrame | None = None  # each paper book: equity, day return, exposure, fills
    models: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def _has(wh: WarehouseReader, table: str) -> bool:
    return table in TABLES and wh.table_exists(table)


def _date_col(table: str) -> str:
    return TABLES[table].partition_column or "date"


def collect_brief(wh: WarehouseReader, date: pd.Timestamp, markets: list[str],
                  weakness_threshold: float = 0.7) -> BriefData:
    """Everything the brief shows for ``date`` across ``markets``."""
    from prometheus_dagster.core.calendars import markets_running, trading_calendar

    d = pd.Timestamp(date).normalize()
    notes: list[str] = []
    status_rows, internals, history = [], [], []
    for m in markets:
        cal = trading_calendar(m)
        if not cal.is_trading_day(d):
            notes.append(f"{m}: {d.date()} is not a trading day")
        runs = wh.read("ingestion_runs", where={"market_id": m, "date": d}) \
            if _has(wh, "ingestion_runs") else pd.DataFrame()
        latest = (runs.sort_values("finished_at").groupby("table_name").tail(1)
                  if len(runs) else runs)
        runs = "investment" if m in markets_running("investment") else (
            "regimes" if m in markets_running("regimes") else "data")
        for table in CHAIN:
            if not _has(wh, table) or (table in INVESTMENT_TABLES and runs != "investment") \
                    or (table == "regimes" and runs == "data"):
                continue  # the market does not run the engine that writes it
            col = _date_col(table)
            n = len(wh.read_partitions(table, market_id=m, dates=[d], columns=[col]))
            run = latest[latest["table_name"] == table] if len(latest) else latest
            status = run["status"].iloc[0] if len(run) else ("-" if n else "missing")
            status_rows.append({"market_id": m, "table": table, "rows": int(n),
                                "ingestion": status})
        start = cal.previous_trading_day(d, HISTORY_SESSIONS) if cal.is_trading_day(d) \
            else cal.previous_trading_day(d, HISTORY_SESSIONS - 1)
        if _has(wh, "market_correlation_daily"):
            mc = wh.read_partitions("market_correlation_daily", market_id=m, start=start, end=d)
            if len(mc):
                mc = mc.sort_values("date")
                level = 100 * (1 + mc["index_ret_1d"].fillna(0)).cumprod() \
                    if "index_ret_1d" in mc.columns else None
                if level is not None:
                    history.append(pd.DataFrame({"market_id": m, "date": mc["date"],
                                                 "level": level.to_numpy()}))
                last = mc.iloc[-1]
                internals.append({"market_id": m, "as_of": pd.Timestamp(last["date"]).date(),
                                  **{c: last[c] for c in mc.columns
                                     if c not in ("market_id", "date", "config_id")}})
    regimes = None
    if _has(wh, "regimes"):
        reg = wh.read("regimes", where={"as_of_date": _between(d, HISTORY_SESSIONS * 2)})
        if len(reg):
            regimes = reg
    weakest = new_weak = None
    if _has(wh, "profiles"):
        prev_dates = []
        for m in markets:
            cal = trading_calendar(m)
            prev_dates.append(cal.previous_trading_day(d))
        prof = wh.read("profiles", where={"as_of_date": [d, *sorted(set(prev_dates))]},
                       columns=["market_id", "issuer_id", "as_of_date", "profile_weakness",
                                "leverage_score", "liquidity_risk", "earnings_quality_score",
                                "governance_risk_score", "recent_articles"])
        today = prof[prof["as_of_date"] == d].dropna(subset=["profile_weakness"])
        if len(today):
            weakest = today.sort_values("profile_weakness", ascending=False).head(TOP_N)
            before = prof[prof["as_of_date"] < d].set_index(["market_id", "issuer_id"])[
                "profile_weakness"]
            was = before.reindex(pd.MultiIndex.from_frame(today[["market_id", "issuer_id"]]))
            crossed = (today["profile_weakness"].to_numpy() >= weakness_threshold) & ~(
                was.to_numpy() >= weakness_threshold)
            new_weak = today[crossed].assign(previous=was.to_numpy()[crossed])
    stability, soft, fragility = _fragility_sections(wh, d)
    models = pd.DataFrame()
    if _has(wh, "models"):
        models = wh.read("models", columns=["model_id", "market_id", "model_type",
                                            "valid_from", "trained_through"])
        models = models[pd.to_datetime(models["trained_through"]) < d]
        models = models.sort_values("trained_through").groupby(
            ["market_id", "model_type"]).tail(1)
    return BriefData(
        date=d, markets=list(markets), pipeline=pd.DataFrame(status_rows),
        index_history=pd.concat(history, ignore_index=True) if history else pd.DataFrame(),
        internals=pd.DataFrame(internals), regimes=regimes, weakest=weakest,
        new_weak=new_weak, stability=stability, soft_targets=soft, fragility=fragility,
        models=models, notes=notes, **_investment_sections(wh, d))


def _fragility_sections(wh: WarehouseReader, d: pd.Timestamp):
    """(market stability history, today's soft targets and watchlist, today's highest
    SoftTargetScores), each None when the table is absent or empty."""
    stability = soft = fragility = None
    if _has(wh, "stability_vectors"):
        st = wh.read("stability_vectors", where={"entity_type": "MARKET",
                                                 "as_of_date": _between(d, HISTORY_SESSIONS * 2)},
                     columns=["market_id", "as_of_date", "stability_score", "liquidity",
                              "volatility", "contagion", "fundamental"])
        stability = st if len(st) else None
    if _has(wh, "soft_target_classes"):
        sc = wh.read("soft_target_classes", where={"as_of_date": d,
                                                   "soft_target_class": ["SOFT_TARGET",
                                                                         "WATCHLIST"]},
                     columns=["market_id", "entity_type", "entity_id", "soft_target_class",
                              "stability_score", "high_fragility", "profile_weakness"])
        if len(sc):
            order = {"SOFT_TARGET": 0, "WATCHLIST": 1}
            soft = sc.assign(_o=sc["soft_target_class"].map(order)).sort_values(
                ["_o", "stability_score"]).drop(columns="_o").head(TOP_N * 2)
    if _has(wh, "fragility_alpha"):
        fa = wh.read("fragility_alpha", where={"as_of_date": d},
                     columns=["market_id", "entity_type", "entity_id", "horizon_days",
                              "soft_target_score", "fragility_class", "tail_probability",
                              "fragility_alpha", "weak_profile", "instability",
                              "high_fragility", "complacent_pricing"])
        if len(fa):
            first = fa[fa["horizon_days"] == fa["horizon_days"].max()]
            fragility = first.sort_values("soft_target_score", ascending=False).head(TOP_N)
    return stability, soft, fragility


def _json(v):
    import json

    return json.loads(v) if isinstance(v, str) else v


def _investment_sections(wh: WarehouseReader, d: pd.Timestamp) -> dict:
    """Top / bottom scores (each strategy's own horizon), universe changes with reasons,
    the largest target weights and each portfolio's risk, on ``d``."""
    out: dict = {}
    if _has(wh, "instrument_scores"):
        sc = wh.read("instrument_scores", where={"as_of_date": d},
                     columns=["market_id", "strategy_id", "instrument_id", "horizon_days",
                              "expected_return", "score", "confidence", "signal_label"])
        parts = []
        for _, g in sc[sc["horizon_days"] == sc["horizon_days"].max()].groupby(
                ["market_id", "strategy_id"]):
            g = g.sort_values(["score", "instrument_id"], ascending=[False, True])
            parts += [g.head(3).assign(rank="top"), g.tail(3).assign(rank="bottom")]
        out["scores"] = pd.concat(parts, ignore_index=True) if parts else None
    if _has(wh, "engine_decisions"):
        dec = wh.read("engine_decisions", where={"as_of_date": d, "engine_name": "universe"},
                      columns=["market_id", "context_id", "proposed_action"])
        rows = []
        for r in dec.itertuples():
            action = _json(r.proposed_action) or {}
            strategy = str(r.context_id).split(":")[0]
            rows += [{"market_id": r.market_id, "strategy_id": strategy, "change": "added",
                      "instrument_id": i, "reasons": ""} for i in action.get("added", [])]
            rows += [{"market_id": r.market_id, "strategy_id": strategy, "change": "removed",
                      "instrument_id": i, "reasons": "; ".join(why)}
                     for i, why in (action.get("removed") or {}).items()]
        out["universe_changes"] = pd.DataFrame(rows) if rows else None
    if _has(wh, "target_portfolios"):
        tp = wh.read("target_portfolios", where={"as_of_date": d},
                     columns=["portfolio_id", "instrument_id", "weight", "trade", "sector",
                              "expected_return"])
        tp = tp[tp["weight"] != 0]
        top = tp.assign(_a=tp["weight"].abs()).sort_values(["portfolio_id", "_a"],
                                                          ascending=[True, False])
        out["portfolios"] = (top.groupby("portfolio_id").head(5).drop(columns="_a")
                             if len(top) else None)
    if _has(wh, "portfolio_risk_reports"):
        rr = wh.read("portfolio_risk_reports", where={"as_of_date": d},
                     columns=["portfolio_id", "n_names", "gross", "net", "volatility",
                              "parametric_var", "scenario_es", "stability",
                              "binding_constraints"])
        if len(rr):
            rr = rr.assign(
                var_95_1d=[(_json(v) or {}).get("95%_1d") for v in rr["parametric_var"]],
                scenario_es_95=[(_json(v) or {}).get("95%") for v in rr["scenario_es"]],
                binding=[", ".join(_json(v) or []) for v in rr["binding_constraints"]])
            out["portfolio_risk"] = rr.drop(columns=["parametric_var", "scenario_es",
                                                     "binding_constraints"])
    if _has(wh, "positions_snapshots"):
        out["paper"] = _paper_books(wh, d)
    return out


PAPER_LOOKBACK_DAYS = 10  # how far back the previous session's book is looked for


def _paper_books(wh: WarehouseReader, d: pd.Timestamp) -> pd.DataFrame | None:
    """Per paper portfolio on ``d``: equity, return since the previous session's book, gross
    and net exposure, the session's fills and their costs."""
    books = wh.read("positions_snapshots",
                    where={"mode": "PAPER", "date": _between(d, PAPER_LOOKBACK_DAYS)},
                    columns=["portfolio_id", "backtest_id", "date", "instrument_id",
                             "market_value", "cash", "equity"])
    books = books[books["backtest_id"].isna()]
    today = books[pd.to_datetime(books["date"]) == d]
    if today.empty:
        return None
    fills = wh.read("fills", where={"mode": "PAPER", "date": d},
                    columns=["portfolio_id", "backtest_id", "value", "commission",
                             "slippage_cost"]) if _has(wh, "fills") else pd.DataFrame()
    if len(fills):
        fills = fills[fills["backtest_id"].isna()]
    rows = []
    for pid, g in today.groupby("portfolio_id"):
        equity = float(g["equity"].iloc[0])
        held = g[g["instrument_id"] != "CASH"]["market_value"]
        before = books[(books["portfolio_id"] == pid) & (pd.to_datetime(books["date"]) < d)]
        prev = float(before.sort_values("date")["equity"].iloc[-1]) if len(before) else None
        mine = fills[fills["portfolio_id"] == pid] if len(fills) else fills
        rows.append({
            "portfolio_id": pid, "equity": equity,
            "day_return": equity / prev - 1 if prev else None,
            "gross": float(held.abs().sum()) / equity if equity else None,
            "net": float(held.sum()) / equity if equity else None,
            "cash": float(g["cash"].iloc[0]), "fills": len(mine),
            "traded": float(mine["value"].sum()) if len(mine) else 0.0,
            "costs": float((mine["commission"] + mine["slippage_cost"]).sum())
            if len(mine) else 0.0})
    return pd.DataFrame(rows)


def _between(d: pd.Timestamp, days: int) -> Between:
    return between(d - pd.Timedelta(days=days), d)
