"""The LLM configuration: files, defaults, fallbacks, prices, the environment, errors, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from rich.pretty import pretty_repr

from agents.config import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    Config,
    ConfigError,
    EndpointConfig,
    FallbackConfig,
    LLMConfig,
    ModelPrice,
    RetryPolicy,
    Secret,
    load_config,
)
from bus import HivebusError

KEY = "sk-test-4f9a2c81d7e3b605"

MINIMAL_JSON = json.dumps(
    {
        "llm": {
            "provider": "openai",
            "model": "gpt-4o",
            "api_key": KEY,
            "temperature": 0.2,
            "max_tokens": 1024,
        }
    }
)
MINIMAL_TOML = f"""\
[llm]
provider = "openai"
model = "gpt-4o"
api_key = "{KEY}"
temperature = 0.2
max_tokens = 1024
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load_toml(directory: Path, text: str, **env: str) -> Config:
    return load_config(write(directory, "hivebus.toml", text), env=env)


def error_of_toml(directory: Path, text: str, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_toml(directory, text, **env)
    return info.value


def error_of_env(**env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    return info.value


# -- the file as is -----------------------------------------------------------------------


def test_the_minimal_json_file_works_as_is(tmp_path: Path) -> None:
    llm = load_config(write(tmp_path, "hivebus.json", MINIMAL_JSON), env={}).llm
    assert (llm.provider, llm.model, llm.temperature, llm.max_tokens) == (
        "openai",
        "gpt-4o",
        0.2,
        1024,
    )
    assert llm.api_key == Secret(KEY)


def test_the_minimal_toml_file_works_as_is(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, MINIMAL_TOML).llm
    assert (llm.provider, llm.model, llm.temperature, llm.max_tokens) == (
        "openai",
        "gpt-4o",
        0.2,
        1024,
    )
    assert llm.api_key is not None and llm.api_key.reveal() == KEY


def test_json_and_toml_give_the_same_config(tmp_path: Path) -> None:
    from_json = load_config(write(tmp_path, "c.json", MINIMAL_JSON), env={})
    assert from_json == load_config(write(tmp_path, "c.toml", MINIMAL_TOML), env={})


def test_the_extension_is_read_case_insensitively(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "HIVEBUS.TOML", MINIMAL_TOML), env={}).llm.model == "gpt-4o"


def test_no_file_and_no_environment_give_the_defaults() -> None:
    assert load_config(env={}) == Config()


def test_an_empty_toml_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_toml(tmp_path, "") == Config()


def test_the_file_named_by_HIVEBUS_CONFIG_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "hivebus.toml", MINIMAL_TOML)
    assert load_config(env={"HIVEBUS_CONFIG": str(path)}).llm.model == "gpt-4o"


def test_an_explicit_path_wins_over_HIVEBUS_CONFIG(tmp_path: Path) -> None:
    other = write(tmp_path, "other.toml", '[llm]\nmodel = "other"\n')
    path = write(tmp_path, "hivebus.toml", MINIMAL_TOML)
    assert load_config(path, env={"HIVEBUS_CONFIG": str(other)}).llm.model == "gpt-4o"


def test_the_path_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "hivebus.toml", MINIMAL_TOML)
    assert load_config(str(path), env={}).llm.model == "gpt-4o"


def test_the_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEBUS_MODEL", "from-os-environ")
    monkeypatch.delenv("HIVEBUS_CONFIG", raising=False)
    assert load_config().llm.model == "from-os-environ"


# -- defaults -----------------------------------------------------------------------------


def test_the_endpoint_defaults() -> None:
    llm = LLMConfig()
    assert (llm.name, llm.provider, llm.model) == ("primary", "openai", DEFAULT_MODEL)
    assert (llm.base_url, llm.api_key, llm.organization) == (None, None, None)
    assert (llm.temperature, llm.max_tokens) == (None, None)
    assert llm.max_concurrency == 64
    assert (llm.rpm, llm.tpm) == (None, None)
    assert (llm.request_timeout, llm.connect_timeout) == (60.0, 10.0)


def test_the_call_defaults() -> None:
    llm = LLMConfig()
    assert llm.deadline == 300.0
    assert (llm.fallbacks, llm.prices) == ((), {})
    assert (llm.mode, llm.cassette) == ("live", None)


def test_the_retry_policy_defaults() -> None:
    retry = LLMConfig().retry
    assert retry == RetryPolicy(
        max_attempts=4, backoff_base=0.5, backoff_max=30.0, cooldown=30.0, cooldown_after=5
    )


def test_the_retry_policy_is_read_from_its_own_table(tmp_path: Path) -> None:
    retry = load_toml(tmp_path, "[llm.retry]\nmax_attempts = 2\ncooldown = 5\n").llm.retry
    assert (retry.max_attempts, retry.cooldown, retry.backoff_base) == (2, 5.0, 0.5)


def test_an_integer_is_accepted_where_a_float_is_expected(tmp_path: Path) -> None:
    assert load_toml(tmp_path, "[llm]\nrequest_timeout = 5\n").llm.request_timeout == 5.0


def test_every_optional_field_can_be_set_from_the_file(tmp_path: Path) -> None:
    llm = load_toml(
        tmp_path,
        """\
[llm]
name = "main"
base_url = "http://127.0.0.1:8000/v1"
organization = "org-1"
max_concurrency = 8
rpm = 500
tpm = 90000
request_timeout = 20
connect_timeout = 2
deadline = 120
mode = "record"
cassette = "/tmp/run.jsonl"
""",
    ).llm
    assert (llm.name, llm.base_url, llm.organization) == (
        "main",
        "http://127.0.0.1:8000/v1",
        "org-1",
    )
    assert (llm.max_concurrency, llm.rpm, llm.tpm) == (8, 500, 90000)
    assert (llm.request_timeout, llm.connect_timeout, llm.deadline) == (20.0, 2.0, 120.0)
    assert (llm.mode, llm.cassette) == ("record", "/tmp/run.jsonl")


def test_config_objects_are_frozen() -> None:
    llm = LLMConfig()
    with pytest.raises(AttributeError):
        llm.model = "other"  # type: ignore[misc]


# -- fallbacks ----------------------------------------------------------------------------

FALLBACKS = f"""\
[llm]
model = "gpt-4o"
api_key = "{KEY}"
temperature = 0.2
max_concurrency = 16

[[llm.fallbacks]]
model = "gpt-4o-mini"
max_concurrency = 4

[[llm.fallbacks]]
name = "local"
model = "llama3"
base_url = "http://127.0.0.1:11434/v1"
"""


def test_endpoints_start_with_the_primary(tmp_path: Path) -> None:
    endpoints = load_toml(tmp_path, FALLBACKS).llm.endpoints()
    assert [e.model for e in endpoints] == ["gpt-4o", "gpt-4o-mini", "llama3"]
    assert all(type(e) is EndpointConfig for e in endpoints)


def test_a_fallback_inherits_what_it_leaves_out(tmp_path: Path) -> None:
    fallback = load_toml(tmp_path, FALLBACKS).llm.endpoints()[1]
    assert fallback.temperature == 0.2
    assert fallback.base_url == DEFAULT_BASE_URL
    assert fallback.api_key == Secret(KEY)


def test_a_fallback_overrides_what_it_sets(tmp_path: Path) -> None:
    primary, fallback, _ = load_toml(tmp_path, FALLBACKS).llm.endpoints()
    assert (primary.max_concurrency, fallback.max_concurrency) == (16, 4)


def test_unnamed_fallbacks_are_numbered_and_named_ones_keep_their_name(tmp_path: Path) -> None:
    names = [e.name for e in load_toml(tmp_path, FALLBACKS).llm.endpoints()]
    assert names == ["primary", "fallback-1", "local"]


def test_a_fallback_at_another_host_does_not_inherit_the_key(tmp_path: Path) -> None:
    local = load_toml(tmp_path, FALLBACKS).llm.endpoints()[2]
    assert (local.base_url, local.api_key) == ("http://127.0.0.1:11434/v1", None)


def test_a_fallback_at_another_host_keeps_its_own_key() -> None:
    llm = LLMConfig(
        api_key=Secret(KEY),
        fallbacks=(
            FallbackConfig(model="m", base_url="https://other.example/v1", api_key=Secret("k2")),
        ),
    )
    assert llm.endpoints()[1].api_key == Secret("k2")


def test_a_fallback_naming_the_primary_host_inherits_the_key() -> None:
    llm = LLMConfig(
        api_key=Secret(KEY),
        organization="org-1",
        fallbacks=(FallbackConfig(model="m", base_url=DEFAULT_BASE_URL),),
    )
    fallback = llm.endpoints()[1]
    assert (fallback.api_key, fallback.organization) == (Secret(KEY), "org-1")


def test_the_environment_reaches_fallbacks_through_inheritance(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, FALLBACKS, HIVEBUS_TEMPERATURE="0.7").llm
    assert [e.temperature for e in llm.endpoints()] == [0.7, 0.7, 0.7]


def test_a_missing_base_url_resolves_to_openai_when_a_key_is_set() -> None:
    assert LLMConfig(api_key=Secret(KEY)).endpoints()[0].base_url == DEFAULT_BASE_URL


def test_in_mock_mode_endpoints_have_no_base_url_until_one_is_given() -> None:
    llm = LLMConfig(fallbacks=(FallbackConfig(model="m"),))
    assert [e.base_url for e in llm.endpoints()] == [None, None]
    url = "http://127.0.0.1:50123/v1"
    assert [e.base_url for e in llm.with_base_url(url).endpoints()] == [url, url]


def test_two_endpoints_with_one_name_are_an_error(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[llm]\n[[llm.fallbacks]]\nname = "primary"\nmodel = "m"\n')
    assert error.field == "llm"
    assert "endpoint name 'primary' is used more than once" in str(error)


def test_a_fallback_without_a_model_is_an_error(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[[llm.fallbacks]]\nname = "x"\n')
    assert error.field == "llm.fallbacks[0].model"
    assert str(error).endswith("llm.fallbacks[0].model: required field is missing")


def test_a_fallback_is_validated_like_the_primary(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[[llm.fallbacks]]\nmodel = "m"\ntemperature = 9\n')
    assert str(error).endswith("llm.fallbacks[0].temperature: expected float <= 2.0")


# -- prices -------------------------------------------------------------------------------

PRICES = """\
[llm.prices]
gpt-4o = { input = 2.5, output = 10.0 }
"gpt-3.5-turbo" = { input = 0.5, output = 1.5 }
"""


def test_prices_are_read_per_model(tmp_path: Path) -> None:
    prices = load_toml(tmp_path, PRICES).llm.prices
    assert prices == {
        "gpt-4o": ModelPrice(input=2.5, output=10.0),
        "gpt-3.5-turbo": ModelPrice(input=0.5, output=1.5),
    }


def test_the_cost_is_the_price_per_million_tokens(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, PRICES).llm
    cost = llm.cost("gpt-4o", prompt_tokens=1_000_000, completion_tokens=500_000)
    assert cost == pytest.approx(2.5 + 5.0)


def test_the_cost_of_a_small_call(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, PRICES).llm
    cost = llm.cost("gpt-3.5-turbo", prompt_tokens=1200, completion_tokens=300)
    assert cost == pytest.approx((1200 * 0.5 + 300 * 1.5) / 1e6)


def test_the_cost_is_none_for_a_model_without_a_price(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, PRICES).llm
    assert llm.cost("llama3", prompt_tokens=10, completion_tokens=10) is None


def test_a_dated_model_name_uses_the_undated_price(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, PRICES).llm
    assert llm.price_of("gpt-4o-2024-08-06") == ModelPrice(input=2.5, output=10.0)
    assert llm.price_of("gpt-3.5-turbo-0125") == ModelPrice(input=0.5, output=1.5)


def test_a_dated_price_is_preferred_to_the_undated_one() -> None:
    dated = ModelPrice(input=1.0, output=1.0)
    llm = LLMConfig(prices={"gpt-4o": ModelPrice(input=2.5, output=10), "gpt-4o-2024-05-13": dated})
    assert llm.price_of("gpt-4o-2024-05-13") == dated


def test_another_model_sharing_a_prefix_gets_no_price(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, PRICES).llm
    assert llm.price_of("gpt-4o-mini") is None
    assert llm.price_of("gpt-4o-mini-2024-07-18") is None


def test_a_negative_price_names_the_model(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, PRICES + '"gpt-4.1" = { input = -2.0, output = 8.0 }\n')
    assert error.field == 'llm.prices["gpt-4.1"].input'
    assert str(error).endswith('llm.prices["gpt-4.1"].input: expected float >= 0.0')


def test_a_price_needs_both_input_and_output(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm.prices]\ngpt-4o = { input = 2.5 }\n")
    assert error.field == 'llm.prices["gpt-4o"].output'


# -- the environment ----------------------------------------------------------------------


def test_OPENAI_API_KEY_sets_the_key() -> None:
    assert load_config(env={"OPENAI_API_KEY": KEY}).llm.api_key == Secret(KEY)


def test_OPENAI_BASE_URL_sets_the_base_url() -> None:
    llm = load_config(env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}).llm
    assert llm.base_url == "http://127.0.0.1:8000/v1"


def test_OPENAI_API_BASE_is_an_alias_of_OPENAI_BASE_URL() -> None:
    llm = load_config(env={"OPENAI_API_BASE": "http://127.0.0.1:8000/v1"}).llm
    assert llm.base_url == "http://127.0.0.1:8000/v1"


def test_OPENAI_BASE_URL_wins_over_OPENAI_API_BASE() -> None:
    env = {"OPENAI_API_BASE": "http://old.example/v1", "OPENAI_BASE_URL": "http://new.example/v1"}
    assert load_config(env=env).llm.base_url == "http://new.example/v1"


def test_OPENAI_ORG_ID_sets_the_organization() -> None:
    assert load_config(env={"OPENAI_ORG_ID": "org-7"}).llm.organization == "org-7"


@pytest.mark.parametrize(
    ("hivebus", "openai", "field"),
    [
        ("HIVEBUS_API_KEY", "OPENAI_API_KEY", "api_key"),
        ("HIVEBUS_BASE_URL", "OPENAI_BASE_URL", "base_url"),
        ("HIVEBUS_ORGANIZATION", "OPENAI_ORG_ID", "organization"),
    ],
)
def test_a_HIVEBUS_variable_wins_over_the_OPENAI_one(hivebus: str, openai: str, field: str) -> None:
    llm = load_config(env={openai: "http://openai.example", hivebus: "http://hivebus.example"}).llm
    value = getattr(llm, field)
    assert (value.reveal() if isinstance(value, Secret) else value) == "http://hivebus.example"


@pytest.mark.parametrize(
    ("variable", "text", "field", "value"),
    [
        ("HIVEBUS_PROVIDER", "vllm", "provider", "vllm"),
        ("HIVEBUS_MODEL", "gpt-4.1", "model", "gpt-4.1"),
        ("HIVEBUS_BASE_URL", "http://127.0.0.1:9/v1", "base_url", "http://127.0.0.1:9/v1"),
        ("HIVEBUS_TEMPERATURE", "0.7", "temperature", 0.7),
        ("HIVEBUS_MAX_TOKENS", "256", "max_tokens", 256),
        ("HIVEBUS_MAX_CONCURRENCY", "1000", "max_concurrency", 1000),
        ("HIVEBUS_RPM", "60", "rpm", 60),
        ("HIVEBUS_TPM", "150000", "tpm", 150000),
        ("HIVEBUS_REQUEST_TIMEOUT", "2.5", "request_timeout", 2.5),
        ("HIVEBUS_CONNECT_TIMEOUT", "1", "connect_timeout", 1.0),
        ("HIVEBUS_DEADLINE", "30", "deadline", 30.0),
        ("HIVEBUS_CASSETTE", "run.jsonl", "cassette", "run.jsonl"),
    ],
)
def test_a_HIVEBUS_variable_sets_its_field(
    variable: str, text: str, field: str, value: object
) -> None:
    assert getattr(load_config(env={variable: text}).llm, field) == value


def test_HIVEBUS_API_KEY_sets_the_key() -> None:
    assert load_config(env={"HIVEBUS_API_KEY": KEY}).llm.api_key == Secret(KEY)


def test_HIVEBUS_MODE_and_HIVEBUS_CASSETTE_select_replay() -> None:
    llm = load_config(env={"HIVEBUS_MODE": "replay", "HIVEBUS_CASSETTE": "run.jsonl"}).llm
    assert (llm.mode, llm.cassette) == ("replay", "run.jsonl")


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    llm = load_toml(
        tmp_path,
        MINIMAL_TOML,
        OPENAI_API_KEY="sk-from-env",
        HIVEBUS_MODEL="gpt-4.1",
        HIVEBUS_TEMPERATURE="0",
        HIVEBUS_MAX_TOKENS="64",
    ).llm
    assert llm.api_key == Secret("sk-from-env")
    assert (llm.model, llm.temperature, llm.max_tokens) == ("gpt-4.1", 0.0, 64)
    assert llm.provider == "openai"


def test_the_environment_fills_in_a_file_without_an_llm_table(tmp_path: Path) -> None:
    assert load_toml(tmp_path, "", HIVEBUS_MODEL="gpt-4.1").llm.model == "gpt-4.1"


def test_the_environment_supplies_the_cassette_a_file_in_replay_mode_lacks(
    tmp_path: Path,
) -> None:
    llm = load_toml(tmp_path, '[llm]\nmode = "replay"\n', HIVEBUS_CASSETTE="/tmp/x.jsonl").llm
    assert llm.cassette == "/tmp/x.jsonl"


def test_null_in_the_environment_lifts_a_rate_limit_set_in_the_file(tmp_path: Path) -> None:
    assert load_toml(tmp_path, "[llm]\nrpm = 10\n", HIVEBUS_RPM="null").llm.rpm is None


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, MINIMAL_TOML, OPENAI_API_KEY="", HIVEBUS_MAX_TOKENS="").llm
    assert (llm.api_key, llm.max_tokens) == (Secret(KEY), 1024)


def test_surrounding_whitespace_in_a_variable_is_ignored() -> None:
    llm = load_config(env={"OPENAI_API_KEY": f"{KEY}\n", "HIVEBUS_RPM": " 5 "}).llm
    assert (llm.api_key, llm.rpm) == (Secret(KEY), 5)


def test_variables_outside_hivebus_and_openai_are_ignored() -> None:
    assert load_config(env={"MODEL": "x", "HIVEBUS_NOPE": "1"}) == Config()


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        (
            "HIVEBUS_TEMPERATURE",
            "hot",
            "HIVEBUS_TEMPERATURE: llm.temperature: expected float, got 'hot'",
        ),
        (
            "HIVEBUS_MAX_TOKENS",
            "lots",
            "HIVEBUS_MAX_TOKENS: llm.max_tokens: expected int, got 'lots'",
        ),
        ("HIVEBUS_RPM", "many", "HIVEBUS_RPM: llm.rpm: expected int, got 'many'"),
        (
            "HIVEBUS_MODE",
            "play",
            "HIVEBUS_MODE: llm.mode: expected one of 'live', 'record', 'replay', got 'play'",
        ),
        (
            "OPENAI_BASE_URL",
            "localhost:8000",
            "OPENAI_BASE_URL: llm.base_url: "
            "expected an http:// or https:// URL, got 'localhost:8000'",
        ),
    ],
)
def test_a_malformed_variable_is_named_with_its_field(
    variable: str, text: str, message: str
) -> None:
    error = error_of_env(**{variable: text})
    assert str(error) == message
    assert (error.source, error.field) == (variable, message.split(": ")[1])


@pytest.mark.parametrize(
    ("variable", "text", "limit"),
    [
        ("HIVEBUS_TEMPERATURE", "2.5", "<= 2.0"),
        ("HIVEBUS_MAX_TOKENS", "0", ">= 1"),
        ("HIVEBUS_MAX_CONCURRENCY", "-3", ">= 1"),
        ("HIVEBUS_REQUEST_TIMEOUT", "0", "> 0.0"),
    ],
)
def test_an_out_of_range_variable_says_the_limit(variable: str, text: str, limit: str) -> None:
    error = error_of_env(**{variable: text})
    assert str(error).startswith(f"{variable}: llm.")
    assert f"{limit}, got {text!r}" in str(error)


def test_a_variable_error_wins_over_the_file(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, MINIMAL_TOML, HIVEBUS_RPM="x")
    assert error.source == "HIVEBUS_RPM"


# -- errors in the file -------------------------------------------------------------------


def test_a_config_error_is_a_hivebus_error_on_one_line(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[llm]\nmax_tokens = "lots"\n')
    assert isinstance(error, HivebusError)
    assert "\n" not in str(error)


def test_a_wrong_type_names_the_file_the_field_and_both_types(tmp_path: Path) -> None:
    path = write(tmp_path, "hivebus.json", '{"llm": {"max_tokens": "lots"}}')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: llm.max_tokens: expected int, got str"
    assert (info.value.source, info.value.field) == (str(path), "llm.max_tokens")
    assert info.value.reason == "expected int, got str"


def test_a_float_is_refused_where_an_integer_is_expected(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm]\nmax_tokens = 10.5\n")
    assert str(error).endswith("llm.max_tokens: expected int, got float")


@pytest.mark.parametrize(
    ("line", "field", "limit"),
    [
        ("temperature = 3", "llm.temperature", "expected float <= 2.0"),
        ("temperature = -0.1", "llm.temperature", "expected float >= 0.0"),
        ("max_tokens = 0", "llm.max_tokens", "expected int >= 1"),
        ("max_concurrency = -1", "llm.max_concurrency", "expected int >= 1"),
        ("rpm = 0", "llm.rpm", "expected int >= 1"),
        ("request_timeout = 0", "llm.request_timeout", "expected float > 0.0"),
        ("deadline = -5", "llm.deadline", "expected float > 0.0"),
        ('model = ""', "llm.model", "expected str of length >= 1"),
    ],
)
def test_an_out_of_range_value_names_the_field_and_the_limit(
    tmp_path: Path, line: str, field: str, limit: str
) -> None:
    error = error_of_toml(tmp_path, f"[llm]\n{line}\n")
    assert str(error).endswith(f"hivebus.toml: {field}: {limit}")


def test_nan_is_out_of_range(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm]\ntemperature = nan\n")
    assert error.field == "llm.temperature"


def test_an_out_of_range_retry_setting_names_its_table(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm.retry]\nmax_attempts = 0\n")
    assert str(error).endswith("llm.retry.max_attempts: expected int >= 1")


def test_a_backoff_base_above_the_backoff_max_is_an_error(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm.retry]\nbackoff_base = 60\n")
    assert str(error).endswith("llm.retry: backoff_base (60) exceeds backoff_max (30)")


def test_an_unknown_field_is_named_with_the_closest_known_one(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm]\ntempreature = 0.2\n")
    assert str(error).endswith("llm.tempreature: unknown field (did you mean 'temperature'?)")
    assert error.field == "llm.tempreature"


def test_a_retry_field_in_the_llm_table_points_to_the_retry_table(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm]\nmax_attempts = 3\n")
    assert str(error).endswith(
        "llm.max_attempts: unknown field (did you mean 'retry.max_attempts'?)"
    )


def test_an_llm_field_at_the_top_points_to_the_llm_table(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, 'model = "gpt-4o"\n')
    assert str(error).endswith("model: unknown field (did you mean 'llm.model'?)")


def test_an_unknown_field_unlike_any_other_gets_no_suggestion(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm]\nzzz = 1\n")
    assert str(error).endswith("llm.zzz: unknown field")


def test_an_unknown_field_in_a_fallback_is_named(tmp_path: Path) -> None:
    error = error_of_toml(
        tmp_path, '[[llm.fallbacks]]\nmodel = "m"\n[[llm.fallbacks]]\nmodle = "m"\n'
    )
    assert error.field == "llm.fallbacks[1].modle"


def test_an_unknown_field_in_a_price_is_named(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, "[llm.prices]\ngpt-4o = { input = 1, outptu = 2 }\n")
    assert str(error).endswith(
        "llm.prices[\"gpt-4o\"].outptu: unknown field (did you mean 'output'?)"
    )


def test_a_table_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, 'llm = "gpt-4o"\n')
    assert str(error).endswith("hivebus.toml: llm: expected object, got str")


def test_a_top_level_array_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.json: expected object, got array$"):
        load_config(write(tmp_path, "c.json", "[]"), env={})


def test_an_invalid_mode_lists_the_choices(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[llm]\nmode = "replya"\n')
    assert str(error).endswith("llm.mode: expected one of 'live', 'record', 'replay', got 'replya'")


@pytest.mark.parametrize("mode", ["record", "replay"])
def test_record_and_replay_need_a_cassette(tmp_path: Path, mode: str) -> None:
    error = error_of_toml(tmp_path, f'[llm]\nmode = "{mode}"\n')
    assert str(error).endswith(f"hivebus.toml: llm: mode {mode!r} needs a cassette path")


def test_a_relative_cassette_is_relative_to_the_file(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, '[llm]\nmode = "record"\ncassette = "runs/a.jsonl"\n').llm
    assert llm.cassette == str(tmp_path / "runs" / "a.jsonl")


def test_an_absolute_cassette_is_kept(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, '[llm]\nmode = "record"\ncassette = "/var/a.jsonl"\n').llm
    assert llm.cassette == "/var/a.jsonl"


def test_an_empty_cassette_is_an_error(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[llm]\nmode = "record"\ncassette = ""\n')
    assert str(error).endswith("llm.cassette: expected str of length >= 1")


def test_a_base_url_must_be_http_or_https(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[llm]\nbase_url = "127.0.0.1:8000"\n')
    assert str(error).endswith("llm.base_url: expected an http:// or https:// URL")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: no such file"


def test_a_missing_file_named_by_HIVEBUS_CONFIG_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    error = error_of_env(HIVEBUS_CONFIG=str(path))
    assert str(error) == f"{path}: no such file"


def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    directory = tmp_path / "hivebus.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match=r"hivebus\.toml: cannot read: Is a directory$"):
        load_config(directory, env={})


def test_an_unknown_extension_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hivebus\.yaml: unknown format '\.yaml'"):
        load_config(write(tmp_path, "hivebus.yaml", "llm: {}"), env={})


def test_invalid_json_names_the_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "c.json", '{\n  "llm": {\n    "model": "m" "max_tokens": 1\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: line 3, column 18: invalid JSON: expected ',' or '}}'"


def test_truncated_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.json: invalid JSON: input data was truncated$"):
        load_config(write(tmp_path, "c.json", '{"llm": {'), env={})


def test_invalid_toml_names_the_line_and_column(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, '[llm]\nmodel = "m"\nmax_tokens = \n')
    assert str(error).endswith("hivebus.toml: line 3, column 14: invalid TOML: invalid value")


def test_a_toml_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "hivebus.toml"
    path.write_bytes(b'[llm]\nmodel = "\xff"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 15\)$"):
        load_config(path, env={})


def test_structs_built_in_python_are_validated_too() -> None:
    with pytest.raises(ValueError, match="needs a cassette path"):
        LLMConfig(mode="replay")


# -- the mock LLM -------------------------------------------------------------------------


def test_no_key_and_no_base_url_ask_for_the_mock() -> None:
    assert load_config(env={}).llm.uses_mock


def test_a_key_alone_does_not_ask_for_the_mock() -> None:
    assert not load_config(env={"OPENAI_API_KEY": KEY}).llm.uses_mock


def test_a_base_url_alone_does_not_ask_for_the_mock() -> None:
    assert not load_config(env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}).llm.uses_mock


def test_with_base_url_fills_in_the_mock_address_and_keeps_the_rest(tmp_path: Path) -> None:
    llm = load_toml(tmp_path, '[llm]\nmodel = "m"\nrpm = 5\n').llm
    started = llm.with_base_url("http://127.0.0.1:50123/v1")
    assert started.base_url == "http://127.0.0.1:50123/v1"
    assert not started.uses_mock
    assert started == msgspec.structs.replace(llm, base_url="http://127.0.0.1:50123/v1")
    assert llm.uses_mock


# -- secrets ------------------------------------------------------------------------------


def secret_config(tmp_path: Path) -> Config:
    return load_toml(
        tmp_path,
        MINIMAL_TOML + f'[[llm.fallbacks]]\nmodel = "m"\napi_key = "{KEY}-fallback"\n',
    )


def test_the_key_is_in_no_repr_or_str_of_a_config(tmp_path: Path) -> None:
    config = secret_config(tmp_path)
    for shown in (repr(config), str(config), repr(config.llm), str(config.llm), f"{config}"):
        assert KEY not in shown
        assert "***" in shown


def test_the_key_is_in_no_repr_of_a_resolved_endpoint(tmp_path: Path) -> None:
    endpoints = secret_config(tmp_path).llm.endpoints()
    assert KEY not in repr(endpoints)
    assert KEY not in repr(secret_config(tmp_path).llm.fallbacks)


def test_the_key_is_not_in_rich_pretty_output(tmp_path: Path) -> None:
    assert KEY not in pretty_repr(secret_config(tmp_path))


def test_redacted_is_plain_data_with_the_key_masked(tmp_path: Path) -> None:
    data = secret_config(tmp_path).redacted()
    assert data["llm"]["api_key"] == "***"
    assert data["llm"]["fallbacks"][0]["api_key"] == "***"
    assert data["llm"]["model"] == "gpt-4o"
    assert KEY not in repr(data)


def test_redacted_leaves_an_unset_key_as_none() -> None:
    assert Config().redacted()["llm"]["api_key"] is None


def test_encoding_a_config_with_a_key_fails_rather_than_leaks(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Secret is unsupported"):
        msgspec.json.encode(secret_config(tmp_path))


def test_a_secret_shows_only_when_revealed() -> None:
    secret = Secret(KEY)
    assert (repr(secret), str(secret), f"{secret}") == ("Secret('***')", "***", "***")
    assert secret.reveal() == KEY


def test_secrets_compare_and_hash_by_value() -> None:
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret("other")
    assert Secret(KEY) != KEY
    assert hash(Secret(KEY)) == hash(Secret(KEY))


def test_an_error_about_the_key_field_does_not_show_the_key(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, f'[llm]\napi_key = ["{KEY}"]\n')
    assert str(error).endswith("llm.api_key: expected str, got array")
    assert KEY not in str(error) and KEY not in repr(error)


def test_an_error_about_a_fallback_key_does_not_show_the_key(tmp_path: Path) -> None:
    error = error_of_toml(
        tmp_path, f'[[llm.fallbacks]]\nmodel = "m"\napi_key = {{ k = "{KEY}" }}\n'
    )
    assert str(error).endswith("llm.fallbacks[0].api_key: expected str, got object")
    assert KEY not in str(error)


def test_a_syntax_error_on_the_key_line_does_not_show_the_key(tmp_path: Path) -> None:
    toml = error_of_toml(tmp_path, f'[llm]\napi_key = "{KEY}\n')
    assert toml.field is None and "line 2" in str(toml)
    json_path = write(tmp_path, "c.json", f'{{"llm": {{"api_key": "{KEY}" "model": "m"}}}}')
    with pytest.raises(ConfigError) as info:
        load_config(json_path, env={})
    assert KEY not in str(toml) and KEY not in str(info.value)


def test_an_error_elsewhere_does_not_show_the_key(tmp_path: Path) -> None:
    error = error_of_toml(tmp_path, MINIMAL_TOML + "temperature_x = 1\n")
    assert KEY not in str(error)


def test_an_error_in_the_environment_does_not_show_a_key_from_it() -> None:
    error = error_of_env(OPENAI_API_KEY=KEY, HIVEBUS_TPM="x")
    assert KEY not in str(error)
    assert str(error) == "HIVEBUS_TPM: llm.tpm: expected int, got 'x'"
