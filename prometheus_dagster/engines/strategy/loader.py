"""Loading the strategy files ``configs/strategies/<strategy_id>.yaml``."""

from __future__ import annotations

from pathlib import Path

from prometheus_dagster.core import config as core_config
from prometheus_dagster.core.config import LoadedConfig, load_config, read_yaml
from prometheus_dagster.core.errors import ConfigError
from prometheus_dagster.engines.strategy.config import StrategyConfig

STRATEGY_DIR = "strategies"


def portfolio_id(strategy_id: str, market_id: str) -> str:
    """The id of a strategy's book in one market."""
    return f"{strategy_id}:{market_id}"


def _known_markets(config_dir: Path) -> set[str] | None:
    path = config_dir / "markets.yaml"
    if not path.exists():
        return None
    markets = read_yaml(path).get("markets")
    return set(markets) if isinstance(markets, dict) else None


def _strategy(loaded: LoadedConfig) -> StrategyConfig:
    assert isinstance(loaded.config, StrategyConfig)
    return loaded.config


def load_strategies(config_dir: Path | None = None) -> dict[str, LoadedConfig]:
    """strategy_id -> loaded config, for every ``strategies/*.yaml`` under ``config_dir``
    (default: the configured config directory, read at call time).

    Raises ConfigError for an invalid file, a file whose name is not its strategy_id, a
    strategy_id used twice, or a market not in the directory's ``markets.yaml`` (when there
    is one)."""
    root = Path(config_dir) if config_dir is not None else Path(core_config.CONFIG_DIR)
    folder = root / STRATEGY_DIR
    if not folder.is_dir():
        raise ConfigError(f"{folder}: strategy directory not found")
    known = _known_markets(root)
    loaded = [(path, load_config(path, StrategyConfig)) for path in sorted(folder.glob("*.yaml"))]
    sources: dict[str, list[str]] = {}
    for path, item in loaded:
        sources.setdefault(_strategy(item).strategy_id, []).append(path.name)
    dup = {sid: files for sid, files in sources.items() if len(files) > 1}
    if dup:
        raise ConfigError(f"{folder}: strategy_id defined more than once: " + "; ".join(
            f"{sid!r} in {', '.join(files)}" for sid, files in sorted(dup.items())))
    out: dict[str, LoadedConfig] = {}
    for path, item in loaded:
        cfg = _strategy(item)
        if path.stem != cfg.strategy_id:
            raise ConfigError(f"{path}: file name must be the strategy_id: expected "
                              f"{cfg.strategy_id}.yaml")
        if known is not None:
            unknown = [m for m in cfg.markets if m not in known]
            if unknown:
                raise ConfigError(f"{path}: field 'markets': unknown market(s) "
                                  f"{', '.join(unknown)} (configured: {', '.join(sorted(known))})")
        out[cfg.strategy_id] = item
    return out
