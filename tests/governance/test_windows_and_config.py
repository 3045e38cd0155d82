"""Window arithmetic (UTC, calendar months, ISO weeks) and the Budget / budgets-file configuration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tokenmeter import ConfigError
from tokenmeter.governance import Budget, load_budgets
from tokenmeter.governance._stores import to_nano
from tokenmeter.governance._windows import bounds, label


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("window", "now", "start", "end"),
    [
        ("1h", ts(2030, 1, 15, 10, 59, 59), ts(2030, 1, 15, 10), ts(2030, 1, 15, 11)),
        ("1h", ts(2030, 1, 15, 11), ts(2030, 1, 15, 11), ts(2030, 1, 15, 12)),
        ("1d", ts(2030, 12, 31, 23, 59, 59), ts(2030, 12, 31), ts(2031, 1, 1)),
        ("7d", ts(2030, 1, 13, 23, 59), ts(2030, 1, 7), ts(2030, 1, 14)),  # Sunday -> the week from Monday 7th
        ("7d", ts(2030, 1, 14), ts(2030, 1, 14), ts(2030, 1, 21)),  # Monday 00:00 starts a week
        ("30d", ts(1970, 1, 31), ts(1970, 1, 31), ts(1970, 3, 2)),  # counted from 1970-01-01
        ("month", ts(2030, 1, 31, 23, 59, 59), ts(2030, 1, 1), ts(2030, 2, 1)),
        ("month", ts(2030, 2, 1), ts(2030, 2, 1), ts(2030, 3, 1)),
        ("month", ts(2028, 2, 29, 12), ts(2028, 2, 1), ts(2028, 3, 1)),  # leap year
        ("month", ts(2030, 12, 15), ts(2030, 12, 1), ts(2031, 1, 1)),  # year rollover
    ],
)
def test_window_bounds(window: str, now: float, start: float, end: float) -> None:
    assert bounds(window, now) == (start, end)
    assert bounds(window, end - 0.001) == (start, end)
    assert bounds(window, end)[0] == end


def test_a_budget_key_changes_exactly_at_rollover() -> None:
    b = Budget("m", scope={}, limit_tokens=1, window="month")
    assert b.key(ts(2030, 1, 31, 23, 59, 59)) == b.key(ts(2030, 1, 1))
    assert b.key(ts(2030, 2, 1)) != b.key(ts(2030, 1, 31, 23, 59, 59))
    assert label(int(ts(2030, 2, 1))) == "2030-02-01T00:00Z"


def test_warn_levels_are_exact_fractions_of_each_limit() -> None:
    b = Budget("b", scope={}, limit_usd="0.57", limit_tokens=100, window="1d", warn_at=[0.8, 0.57])
    line = b.line(ts(2030, 1, 1), 0, 0, 60)
    assert b.warn_at == (0.57, 0.8)
    assert line.levels == ((to_nano(Decimal("0.3249")), 57), (to_nano(Decimal("0.456")), 80))
    assert line.limit_usd == 570_000_000 and line.enforce


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": {"team": "a"}, "window": "1d"}, "limit_usd, limit_tokens"),
        ({"scope": {"re gion": "eu"}, "limit_tokens": 1, "window": "1d"}, "scope keys"),
        ({"scope": {"team": ""}, "limit_tokens": 1, "window": "1d"}, "non-empty"),
        ({"scope": {}, "limit_tokens": 1, "window": "2d"}, "window must be"),
        ({"scope": {}, "limit_usd": -1, "window": "1d"}, "limit_usd"),
        ({"scope": {}, "limit_usd": "lots", "window": "1d"}, "limit_usd"),
        ({"scope": {}, "limit_tokens": 1.5, "window": "1d"}, "limit_tokens"),
        ({"scope": {}, "limit_tokens": 1, "window": "1d", "action": "throttle"}, "action"),
        ({"scope": {}, "limit_tokens": 1, "window": "1d", "warn_at": [1.5]}, "warn_at"),
        ({"scope": {}, "limit_tokens": 1, "window": "1d", "warn_at": ["x"]}, "warn_at"),
        ({"scope": "team=a", "limit_tokens": 1, "window": "1d"}, "scope must be a mapping"),
    ],
)
def test_budget_validation_names_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Budget("b", **kwargs)


def test_budgets_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "budgets.toml"
    toml.write_text(
        '[[budget]]\nname = "pay"\nscope = { team = "payments" }\nlimit_usd = 50\nwindow = "1d"\n'
        'warn_at = [0.9]\n\n[[budget]]\nname = "frontier"\nscope = { tier = "frontier" }\nlimit_tokens = 1000000\n'
        'window = "month"\naction = "downgrade"\ndowngrade_to = "gpt-4o"\n'
    )
    pay, frontier = load_budgets(toml)
    assert (pay.name, dict(pay.scope), pay.limit_usd, pay.window, pay.warn_at) == (
        "pay",
        {"team": "payments"},
        Decimal(50),
        "1d",
        (0.9,),
    )
    assert (frontier.limit_tokens, frontier.action, frontier.downgrade_to) == (1_000_000, "downgrade", "gpt-4o")
    js = tmp_path / "budgets.json"
    js.write_text(json.dumps({"budgets": [{"name": "all", "limit_tokens": 5, "window": "1h"}]}))
    [everything] = load_budgets(js)
    assert dict(everything.scope) == {} and everything.matches({"team": "x", "tier": "small"})
    js.write_text(json.dumps([{"name": "bad", "limit_tokens": 5, "window": "1h", "colour": "red"}]))
    with pytest.raises(ConfigError, match="colour"):
        load_budgets(js)
    js.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid"):
        load_budgets(js)
    with pytest.raises(ConfigError, match="cannot read"):
        load_budgets(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "url", ["sqlite://relative.db", "sqlite:///", "redis://127.0.0.1:1/0?timeout_s=0", "sqlite:////x.db?lease_s=x"]
)
def test_bad_store_urls_are_config_errors(url: str) -> None:
    from tokenmeter.governance import open_store

    with pytest.raises(ConfigError):
        open_store(url)
