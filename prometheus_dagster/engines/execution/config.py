"""Configuration of the execution engine (``configs/engines/execution.yaml``): how the order
planner sizes orders and how the market simulator fills them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prometheus_dagster.core.config import VersionedConfig, register_config_model

FILL_PRICES: tuple[str, ...] = ("open", "close", "vwap")


@register_config_model("execution")
class ExecutionConfig(VersionedConfig):
    """Order planning and the fill model of the BACKTEST and PAPER simulator
    (docs/engines/execution.md).

    An order decided on D (after the close of D) executes in the next session processed after
    D, on that session's bar. ``fill_price`` is the basis of MARKET orders: the session's open,
    its close, or ``vwap``, proxied by the typical price (high + low + close) / 3 because daily
    bars carry no intraday volume profile.
    """

    engine: Literal["execution"] = "execution"
    version: str = "1"
    # planner
    lot_size: int = Field(1, ge=1, description="target shares are rounded toward zero to a "
                                               "multiple of this")
    min_order_value: float = Field(
        0.0, ge=0, description="orders worth less than this (|shares| x reference price) are "
                               "skipped")
    # fill model
    fill_price: Literal["open", "close", "vwap"] = Field(
        "open", description="price basis of MARKET orders in the execution session")
    slippage_bps: float = Field(
        0.0, ge=0, description="worsens every fill price: buys pay more, sells get less "
                               "(never past a LIMIT order's limit)")
    max_participation: float | None = Field(
        None, gt=0, le=1, description="largest share of the session's volume the orders of one "
                                      "instrument may take (null: no cap)")
    carry_unfilled: bool = Field(
        False, description="an order not fully filled in its session stays open for the next "
                           "one (false: the rest is cancelled, i.e. day orders)")
    on_missing_bar: Literal["cancel", "keep"] = Field(
        "cancel", description="no usable bar for the instrument in the session (not trading, "
                              "delisted): cancel the order or keep it for the next session")
    # paper trading
    paper_initial_capital: float = Field(
        10_000_000.0, gt=0, description="cash a paper portfolio starts with (its first "
                                        "session, when no earlier book is stored)")
    paper_resume_lookback_days: int = Field(
        30, ge=1, description="calendar days before a run's first session searched for the "
                              "stored book and the orders still open; a latest book older "
                              "than the previous session is a gap and is refused")
    # costs
    commission_bps: float = Field(0.0, ge=0, description="commission in bps of traded value")
    commission_per_share: float = Field(0.0, ge=0, description="commission per share traded")
    min_commission: float = Field(0.0, ge=0, description="least commission of a fill")
