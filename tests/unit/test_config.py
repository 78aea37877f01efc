from pathlib import Path

import pytest
from pydantic import Field

from prometheus_dagster.core.config import (
    VersionedConfig,
    load_config,
    load_engine_config,
    register_config_model,
    validate_config,
)
from prometheus_dagster.core.errors import ConfigError


@register_config_model("toy_engine")
class ToyConfig(VersionedConfig):
    window_days: int = Field(63, gt=0)
    weights: dict[str, float] = {}
    label: str = "x"


def write(tmp_path: Path, text: str, name: str = "toy_engine.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_config_gets_a_stable_content_id(tmp_path):
    a = load_config(write(tmp_path, "engine: toy_engine\nversion: '2'\nwindow_days: 21\n"))
    text = "version: '2'\nwindow_days: 21\nengine: toy_engine\n"
    b = load_config(write(tmp_path, text, "b.yaml"))
    assert a.config_id == b.config_id
    assert a.config_id.startswith("toy_engine@2-")
    assert a.config.window_days == 21


def test_changed_content_changes_the_id(tmp_path):
    a = load_config(write(tmp_path, "engine: toy_engine\nversion: '2'\nwindow_days: 21\n"))
    text = "engine: toy_engine\nversion: '2'\nwindow_days: 22\n"
    b = load_config(write(tmp_path, text, "b.yaml"))
    assert a.config_id != b.config_id


def test_invalid_yaml_names_file_and_line(tmp_path):
    p = write(tmp_path, "engine: toy_engine\nversion: '1'\nwindow_days: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert str(p) in msg and "line 4" in msg and "invalid YAML" in msg


def test_bad_value_names_file_field_and_value(tmp_path):
    p = write(tmp_path, "engine: toy_engine\nversion: '1'\nwindow_days: -5\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert str(p) in msg and "window_days" in msg and "-5" in msg and "greater than 0" in msg


def test_wrong_type_names_field_and_value(tmp_path):
    p = write(tmp_path, "engine: toy_engine\nversion: '1'\nweights: {a: lots}\n")
    with pytest.raises(ConfigError, match=r"field 'weights\.a' = 'lots'"):
        load_config(p)


def test_unknown_field_is_rejected(tmp_path):
    p = write(tmp_path, "engine: toy_engine\nversion: '1'\nwindow_dayz: 5\n")
    with pytest.raises(ConfigError, match="field 'window_dayz' is not a known setting"):
        load_config(p)


def test_missing_required_field(tmp_path):
    p = write(tmp_path, "engine: toy_engine\nwindow_days: 5\n")
    with pytest.raises(ConfigError, match="field 'version' is required but missing"):
        load_config(p)


def test_unknown_engine_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown engine"):
        load_config(write(tmp_path, "engine: nope\nversion: '1'\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_config(write(tmp_path, "", "empty.yaml"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_engine_config_file_must_match_engine(tmp_path):
    (tmp_path / "engines").mkdir()
    path = write(tmp_path / "engines", "engine: markets\nversion: '1'\n", "toy_engine.yaml")
    with pytest.raises(ConfigError) as err:
        load_engine_config("toy_engine", tmp_path)
    msg = str(err.value)
    assert str(path) in msg
    assert "declares engine 'markets'" in msg and "as the 'toy_engine' config" in msg
    assert "not a known setting" not in msg


def test_a_file_for_another_engine_is_refused_by_an_explicit_model(tmp_path):
    path = write(tmp_path, "engine: markets\nversion: '1'\nhistory_start: 2024-01-02\n")
    with pytest.raises(ConfigError, match="declares engine 'markets' but was loaded as the "
                                          "'toy_engine' config"):
        load_config(path, ToyConfig)


def test_unknown_engine_lists_the_engines_a_file_may_declare(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "engine: nope\nversion: '1'\n"))
    assert "ingestion" in str(err.value) and "markets" in str(err.value)


def test_configs_are_immutable():
    loaded = validate_config({"engine": "toy_engine", "version": "1"})
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen
        loaded.config.window_days = 3  # type: ignore[misc]


def test_shipped_markets_config_loads():
    from prometheus_dagster.core.calendars import load_markets

    markets = load_markets()
    assert {"US_EQ", "US_FUT", "EU_EQ", "JP_EQ", "ASIA_EQ", "FX_GLOB"} <= set(markets.markets)
