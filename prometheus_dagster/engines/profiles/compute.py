"""Point-in-time profiles: structured fields of the latest usable statement, risk flags, and the
profile embedding (joint text/numeric space).

For issuer i and date D the statement used is the one reported most recently on or before D
(``report_date <= D``), if it is at most ``fundamentals_max_age_days`` old; growth compares it
with the statement for the period a year earlier, if that was also reported by then. News
counts when it is linked to the issuer and dated in (D - ``news_lookback_days``, D].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_dagster.core.schemas import get_schema
from prometheus_dagster.engines.profiles import flags
from prometheus_dagster.engines.profiles.config import ProfilesConfig
from prometheus_dagster.engines.profiles.schemas import RISK_FLAGS, STRUCTURED_FIELDS

_ITEMS = ("total_assets", "total_liabilities", "equity", "revenue", "ebitda", "net_income",
          "operating_cash_flow", "interest_expense", "cash", "short_term_debt",
          "long_term_debt")


def latest_statements(fundamentals: pd.DataFrame, issuer_ids: list[str],
                      dates: list[pd.Timestamp], config: ProfilesConfig) -> pd.DataFrame:
    """One row per (issuer_id, as_of_date): the usable statement's items (NaN when none),
    period_end, report_date, statement_age_days and prior_year_revenue."""
    grid = pd.MultiIndex.from_product([sorted(map(str, issuer_ids)),
                                       sorted(pd.to_datetime(dates).normalize())],
                                      names=["issuer_id", "as_of_date"]).to_frame(index=False)
    f = fundamentals.copy()
    for col in _ITEMS:
        if col not in f.columns:
            f[col] = np.nan
    f = f.assign(issuer_id=f["issuer_id"].astype(str),
                 period_end=pd.to_datetime(f["period_end"]).dt.normalize(),
                 report_date=pd.to_datetime(f["report_date"]).dt.normalize())
    f = f[f["issuer_id"].isin(grid["issuer_id"])]
    f = f.sort_values(["report_date", "period_end"], kind="stable").reset_index(drop=True)
    f["prior_year_revenue"] = _prior_year_revenue(f, config.prior_year_tolerance_days)
    cols = ["issuer_id", "period_end", "report_date", *_ITEMS, "prior_year_revenue"]
    out = pd.merge_asof(grid.sort_values("as_of_date"), f[cols], left_on="as_of_date",
                        right_on="report_date", by="issuer_id", direction="backward")
    age = (out["as_of_date"] - out["report_date"]).dt.days
    stale = age > config.fundamentals_max_age_days
    out.loc[stale, [*cols[1:]]] = np.nan
    out["statement_age_days"] = age.where(~stale)
    return out.sort_values(["issuer_id", "as_of_date"], ignore_index=True)


def _prior_year_revenue(f: pd.DataFrame, tolerance_days: int) -> pd.Series:
    """Revenue of the statement whose period ended about a year before each row's (within
    ``tolerance_days``), reported no later than the row itself."""
    if f.empty:
        return pd.Series([], dtype=float)
    left = f[["issuer_id", "period_end", "report_date"]].assign(
        target=f["period_end"] - pd.Timedelta(days=365), row=np.arange(len(f)))
    right = f[["issuer_id", "period_end", "report_date", "revenue"]].rename(
        columns={"period_end": "prior_end", "report_date": "prior_report",
                 "revenue": "prior_revenue"}).sort_values("prior_end")
    m = pd.merge_asof(left.sort_values("target"), right, left_on="target", right_on="prior_end",
                      by="issuer_id", direction="nearest",
                      tolerance=pd.Timedelta(days=tolerance_days))
    ok = m["prior_report"] <= m["report_date"]
    return pd.Series(np.where(ok, m["prior_revenue"], np.nan), index=m["row"]).sort_index() \
        .set_axis(f.index)


def structured_fields(st: pd.DataFrame) -> pd.DataFrame:
    """The ``STRUCTURED_FIELDS`` of statement rows (``latest_statements`` output)."""
    g = {c: pd.to_numeric(st[c], errors="coerce").to_numpy(dtype=float)
         for c in (*_ITEMS, "prior_year_revenue")}
    debt = g["short_term_debt"] + g["long_term_debt"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "total_debt": debt,
            "debt_to_ebitda": np.where(g["ebitda"] > 0, debt / (4.0 * g["ebitda"]), np.nan),
            "debt_to_equity": np.where(g["equity"] > 0, debt / g["equity"], np.nan),
            "liabilities_to_assets": np.where(g["total_assets"] > 0,
                                              g["total_liabilities"] / g["total_assets"], np.nan),
            "interest_coverage": np.where(g["interest_expense"] > 0,
                                          g["ebitda"] / g["interest_expense"], np.nan),
            "ebitda_margin": np.where(g["revenue"] > 0, g["ebitda"] / g["revenue"], np.nan),
            "net_margin": np.where(g["revenue"] > 0, g["net_income"] / g["revenue"], np.nan),
            "roe": np.where(g["equity"] > 0, 4.0 * g["net_income"] / g["equity"], np.nan),
            "roic": np.where(g["equity"] + debt > 0,
                             4.0 * g["net_income"] / (g["equity"] + debt), np.nan),
            "revenue_growth_yoy": np.where(g["prior_year_revenue"] > 0,
                                           g["revenue"] / g["prior_year_revenue"] - 1.0, np.nan),
            "cash_to_st_debt": np.where(g["short_term_debt"] > 0,
                                        g["cash"] / g["short_term_debt"], np.nan),
            "accruals_ratio": np.where(g["total_assets"] > 0,
                                       (g["net_income"] - g["operating_cash_flow"])
                                       / g["total_assets"], np.nan),
        }
    return pd.DataFrame(out, index=st.index)[list(STRUCTURED_FIELDS)]


def risk_flags(st: pd.DataFrame, max_anchor_similarity: np.ndarray,
               config: ProfilesConfig) -> pd.DataFrame:
    """The ``RISK_FLAGS`` and ``profile_weakness`` of statement rows."""
    g = {c: pd.to_numeric(st[c], errors="coerce").to_numpy(dtype=float) for c in _ITEMS}
    debt = g["short_term_debt"] + g["long_term_debt"]
    out = {
        "leverage_score": flags.leverage_score(debt, g["ebitda"], g["equity"],
                                               g["total_liabilities"], g["total_assets"], config),
        "earnings_quality_score": flags.earnings_quality_score(
            g["net_income"], g["operating_cash_flow"], g["total_assets"], g["revenue"], config),
        "liquidity_risk": flags.liquidity_risk(g["cash"], g["short_term_debt"], g["ebitda"],
                                               g["interest_expense"], config),
        "governance_risk_score": flags.governance_risk_score(max_anchor_similarity, config),
    }
    frame = pd.DataFrame(out, index=st.index)[list(RISK_FLAGS)]
    frame["profile_weakness"] = flags.profile_weakness(out, config)
    return frame


def recent_news(news: pd.DataFrame, issuer_ids: list[str], dates: list[pd.Timestamp],
                lookback_days: int) -> pd.DataFrame:
    """Linked articles per (issuer_id, as_of_date) in (D - lookback, D]: columns issuer_id,
    as_of_date, article_id (one row per pair), ordered by date, then as in ``news``.

    Vectorised over dates: article i counts for the dates D with date_i <= D < date_i +
    lookback, a contiguous run of the sorted dates found by two binary searches."""
    cols = ["issuer_id", "as_of_date", "article_id"]
    if news.empty:
        return pd.DataFrame(columns=cols)
    n = news.assign(issuer_id=news["issuer_id"].astype(str),
                    date=pd.to_datetime(news["date"]).dt.normalize())
    n = n[n["issuer_id"].isin(set(map(str, issuer_ids)))]
    days = np.array(sorted(pd.to_datetime(dates).normalize()), dtype="datetime64[ns]")
    when = n["date"].to_numpy(dtype="datetime64[ns]")
    lo = np.searchsorted(days, when, side="left")
    hi = np.searchsorted(days, when + np.timedelta64(lookback_days, "D"), side="left")
    counts = np.maximum(hi - lo, 0)
    row = np.repeat(np.arange(len(n)), counts)
    day = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                                       counts))
    order = np.lexsort((row, day))
    row, day = row[order], day[order]
    return pd.DataFrame({"issuer_id": n["issuer_id"].to_numpy()[row],
                         "as_of_date": pd.DatetimeIndex(days[day]),
                         "article_id": n["article_id"].to_numpy()[row]})[cols]


def build_profiles(market_id: str, issuer_ids: list[str], dates: list[pd.Timestamp],
                   fundamentals: pd.DataFrame, news: pd.DataFrame, config: ProfilesConfig,
                   config_id: str, article_anchor_similarity: pd.Series | None = None,
                   ) -> pd.DataFrame:
    """Profiles without embeddings: structured fields and risk flags per issuer and date.

    ``news``: article_id, issuer_id, date of linked articles; ``article_anchor_similarity``:
    article_id -> largest cosine similarity to the governance anchor themes."""
    st = latest_statements(fundamentals, issuer_ids, dates, config)
    recent = recent_news(news, issuer_ids, dates, config.news_lookback_days)
    counts = recent.groupby(["issuer_id", "as_of_date"]).size()
    key = pd.MultiIndex.from_frame(st[["issuer_id", "as_of_date"]])
    n_recent = counts.reindex(key).fillna(0).astype(int).to_numpy()
    if article_anchor_similarity is not None and len(recent):
        sims = recent.assign(sim=recent["article_id"].map(article_anchor_similarity))
        best = sims.groupby(["issuer_id", "as_of_date"])["sim"].max().reindex(key).to_numpy()
    else:
        best = np.full(len(st), np.nan)
    out = pd.concat([st[["issuer_id", "as_of_date", "period_end", "report_date",
                         "statement_age_days"]],
                     structured_fields(st), risk_flags(st, best, config)], axis=1)
    out["market_id"] = market_id
    out["recent_articles"] = n_recent
    out["notes"] = np.where(st["report_date"].isna(), "no usable statement",
                            np.array(None, dtype=object))
    out["profile_embedding"] = None
    out["model_id"] = None
    out["config_id"] = config_id
    return out[get_schema("profiles").column_names]


def combine_embedding(numeric: np.ndarray | None, texts: np.ndarray | None,
                      text_weight: float) -> np.ndarray | None:
    """Unit vector of (numeric window vector + text_weight x unit mean of recent news
    vectors); either part may be missing."""
    parts = []
    if numeric is not None:
        parts.append(np.asarray(numeric, dtype=np.float64))
    if texts is not None and len(texts):
        m = np.asarray(texts, dtype=np.float64).mean(axis=0)
        norm = np.linalg.norm(m)
        if norm > 0:
            parts.append(text_weight * m / norm)
    if not parts:
        return None
    v = np.sum(parts, axis=0)
    norm = np.linalg.norm(v)
    return (v / norm).astype(np.float32) if norm > 0 else None


def _norm(v: np.ndarray) -> float:
    # np.linalg.norm of a 1-d vector (a BLAS dot): row by row, so that many rows give the
    # same bits as combine_embedding on each
    return float(np.sqrt(v.dot(v)))


def combine_embeddings(numeric: np.ndarray, has_numeric: np.ndarray, texts: np.ndarray,
                       text_rows: list[np.ndarray], text_weight: float,
                       ) -> list[np.ndarray | None]:
    """``combine_embedding`` of many rows at once, bit for bit: row i mixes ``numeric[i]``
    (when ``has_numeric[i]``) with the mean of ``texts[text_rows[i]]`` (its recent news, in
    order). The mean is summed article by article in that order, as numpy's mean over the
    first axis does."""
    n = len(text_rows)
    out: list[np.ndarray | None] = [None] * n
    count = np.array([len(r) for r in text_rows], dtype=int)
    texts64 = np.asarray(texts, dtype=np.float64)
    total = np.zeros((n, texts64.shape[1] if texts64.ndim == 2 else 0))
    with_text = np.nonzero(count > 0)[0]
    if len(with_text):
        total[with_text] = texts64[[text_rows[i][0] for i in with_text]]
        for j in range(1, int(count.max())):
            more = np.nonzero(count > j)[0]
            total[more] = total[more] + texts64[[text_rows[i][j] for i in more]]
    num64 = np.asarray(numeric, dtype=np.float64)
    for i in range(n):
        text_part = None
        if count[i]:
            m = total[i] / count[i]
            norm = _norm(m)
            if norm > 0:
                text_part = text_weight * m / norm
        if has_numeric[i]:
            v = num64[i] + text_part if text_part is not None else num64[i]
        elif text_part is not None:
            v = text_part
        else:
            continue
        norm = _norm(v)
        out[i] = (v / norm).astype(np.float32) if norm > 0 else None
    return out
