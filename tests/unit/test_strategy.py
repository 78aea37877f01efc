"""Strategy configs: the shipped YAMLs, validation against the kind of book, the loader."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from prometheus_dagster.core import config as core_config
from prometheus_dagster.core.config import validate_config
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.engines.strategy import StrategyConfig, load_strategies, portfolio_id

SHIPPED = Path(core_config.CONFIG_DIR) / "strategies"
LONG_ONLY = "core_equity_long_only"
NEUTRAL = "market_neutral_long_short"


def _body(name: str) -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())


def _with(body: dict, path: str, value: object) -> dict:
    out = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    node[leaf] = value
    return out


def test_shipped_strategies_load_and_validate() -> None:
    loaded = load_strategies()
    assert {LONG_ONLY, NEUTRAL} <= set(loaded)
    lo = loaded[LONG_ONLY].config
    ls = loaded[NEUTRAL].config
    assert isinstance(lo, StrategyConfig) and isinstance(ls, StrategyConfig)
    assert loaded[LONG_ONLY].config_id.startswith("strategy@1-")
    assert loaded[LONG_ONLY].config_id != loaded[NEUTRAL].config_id
    assert (lo.kind, lo.portfolio.budget, lo.portfolio.min_weight) == ("LONG_ONLY", 1.0, 0.0)
    assert 0.05 <= lo.portfolio.max_weight <= 0.10
    assert lo.universe.soft_target_policy == "EXCLUDE" and lo.fragility_penalty > 0
    assert lo.horizon_days == 21 and lo.mu_scale == pytest.approx(12.0)
    assert (lo.universe.max_size, lo.universe.core_size) == (60, 40)
    assert lo.portfolio.turnover_limit is not None
    assert (ls.kind, ls.portfolio.budget, ls.portfolio.gross_limit) == ("LONG_SHORT", 0.0, 2.0)
    assert (ls.portfolio.min_weight, ls.portfolio.max_weight) == (-0.05, 0.05)
    assert ls.portfolio.factor_limits["MARKET"] == (-0.1, 0.1)
    assert ls.universe.soft_target_policy == "SHORT_ONLY"
    assert ls.mu_scale == pytest.approx(252 / ls.horizon_days)
    assert set(lo.markets) >= {"US_EQ", "EU_EQ"}
    assert lo.risk_report.var_confidence == (0.95, 0.99)
    assert lo.risk_report.horizon_days == (1, 21)


def test_engine_name_selects_the_model() -> None:
    loaded = validate_config(_body(LONG_ONLY))
    assert isinstance(loaded.config, StrategyConfig)
    assert portfolio_id("core_equity_long_only", "US_EQ") == "core_equity_long_only:US_EQ"


@pytest.mark.parametrize(("name", "path", "value", "message"), [
    (LONG_ONLY, "portfolio.min_weight", -0.05,
     r"portfolio.*min_weight = -0\.05: a LONG_ONLY strategy cannot short"),
    (LONG_ONLY, "portfolio.budget", 0.0, r"portfolio\.budget = 0\.0: a LONG_ONLY strategy"),
    (LONG_ONLY, "universe.soft_target_policy", "SHORT_ONLY",
     r"LONG_ONLY strategy needs universe\.soft_target_policy EXCLUDE"),
    (NEUTRAL, "portfolio.min_weight", 0.0, r"LONG_SHORT strategy needs min_weight < 0"),
    (NEUTRAL, "horizon_days", 10, r"field 'horizon_days' = 10"),
    (NEUTRAL, "kind", "SHORT_ONLY", r"field 'kind' = 'SHORT_ONLY'"),
    (NEUTRAL, "portfolio.factor_limits", {"MARKET": [0.2, -0.2]},
     r"factor_limits\.MARKET: min 0\.2 exceeds max -0\.2"),
    (NEUTRAL, "portfolio.factor_limits", {"BETA": [0, 1]}, r"portfolio\.factor_limits\.BETA"),
    (NEUTRAL, "portfolio.sector_min_net", 0.2, r"sector_min_net 0\.2 exceeds sector_max_net"),
    (NEUTRAL, "portfolio.risk_aversion", 0.0, r"field 'portfolio\.risk_aversion' = 0\.0"),
    (NEUTRAL, "portfolio.mu_scale", -1.0, r"mu_scale must be > 0"),
    (NEUTRAL, "portfolio.max_weight", 0.0, r"field 'portfolio\.max_weight'"),
    (NEUTRAL, "fragility_penalty", -0.1, r"field 'fragility_penalty'"),
    (NEUTRAL, "strategy_id", "bad:id", r"field 'strategy_id' = 'bad:id'"),
    (NEUTRAL, "markets", ["US_EQ", "US_EQ"], r"market\(s\) listed twice: US_EQ"),
    (NEUTRAL, "markets", [], r"field 'markets'"),
    (NEUTRAL, "risk_report.var_confidence", [0.95, 1.2], r"confidence levels must lie in"),
    (NEUTRAL, "universe.max_size", 10, r"core_size 50 exceeds max_size 10"),
    (NEUTRAL, "portfolio.leverage", 3, r"field 'portfolio\.leverage' is not a known setting"),
])
def test_invalid_combinations_raise_clear_errors(name: str, path: str, value: object,
                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(_with(_body(name), path, value), StrategyConfig, source="s.yaml")


def test_gross_below_budget_is_rejected() -> None:
    body = _with(_body(NEUTRAL), "portfolio.budget", 0.5)
    with pytest.raises(ConfigError, match=r"\|budget\| 0\.5 exceeds gross_limit 0\.4"):
        validate_config(_with(body, "portfolio.gross_limit", 0.4), StrategyConfig)


def test_explicit_mu_scale_and_defaults() -> None:
    cfg = validate_config(_with(_body(NEUTRAL), "portfolio.mu_scale", 2.5)).config
    assert cfg.mu_scale == 2.5
    body = _body(LONG_ONLY)
    del body["risk_report"], body["portfolio"]["mu_scale"]
    cfg = validate_config(body).config
    assert cfg.mu_scale == 252 / 21 and cfg.risk_report.var_confidence == (0.95, 0.99)


def test_content_change_gives_new_config_id() -> None:
    a = validate_config(_body(LONG_ONLY))
    b = validate_config(_with(_body(LONG_ONLY), "portfolio.max_weight", 0.07))
    assert a.config_id != b.config_id and a.config_id == validate_config(_body(LONG_ONLY)).config_id


def _config_dir(tmp_path: Path) -> Path:
    (tmp_path / "strategies").mkdir()
    for name in (LONG_ONLY, NEUTRAL):
        shutil.copy(SHIPPED / f"{name}.yaml", tmp_path / "strategies" / f"{name}.yaml")
    return tmp_path


def test_loader_reads_config_dir_at_call_time(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = _config_dir(tmp_path)
    (root / "strategies" / f"{NEUTRAL}.yaml").unlink()
    monkeypatch.setattr(core_config, "CONFIG_DIR", root)
    loaded = load_strategies()
    assert list(loaded) == [LONG_ONLY]
    assert loaded[LONG_ONLY].source_path == str(root / "strategies" / f"{LONG_ONLY}.yaml")


def test_loader_rejects_duplicate_ids(tmp_path: Path) -> None:
    root = _config_dir(tmp_path)
    shutil.copy(root / "strategies" / f"{LONG_ONLY}.yaml", root / "strategies" / "copy.yaml")
    with pytest.raises(ConfigError, match=r"strategy_id defined more than once: "
                                          r"'core_equity_long_only' in .*copy\.yaml"):
        load_strategies(root)


def test_loader_rejects_file_name_mismatch(tmp_path: Path) -> None:
    root = _config_dir(tmp_path)
    (root / "strategies" / f"{NEUTRAL}.yaml").rename(root / "strategies" / "neutral.yaml")
    with pytest.raises(ConfigError, match=r"neutral\.yaml: file name must be the strategy_id: "
                                          r"expected market_neutral_long_short\.yaml"):
        load_strategies(root)


def test_loader_checks_markets_and_reports_bad_files(tmp_path: Path) -> None:
    root = _config_dir(tmp_path)
    (root / "markets.yaml").write_text("engine: markets\nversion: '1'\nmarkets:\n  US_EQ: {}\n")
    with pytest.raises(ConfigError, match=r"unknown market\(s\) EU_EQ"):
        load_strategies(root)
    (root / "markets.yaml").unlink()
    bad = _with(_body(LONG_ONLY), "portfolio.min_weight", -0.1)
    (root / "strategies" / f"{LONG_ONLY}.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"core_equity_long_only\.yaml: invalid config: .*"
                                          r"min_weight"):
        load_strategies(root)
    with pytest.raises(ConfigError, match="strategy directory not found"):
        load_strategies(tmp_path / "nowhere")
