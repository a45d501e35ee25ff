"""Settings from EDGESCRIBE_* variables, checked at start-up, and `edgescribe serve`'s flags over them."""

from __future__ import annotations

import dataclasses

import pytest

from edgescribe.cli import main
from model.audio import RATES
from service import healthcheck
from service.settings import Settings, SettingsError, env_name, get_settings


def test_every_setting_has_an_env_variable_a_flag_and_help():
    for f in dataclasses.fields(Settings):
        assert env_name(f.name) == "EDGESCRIBE_" + f.name.upper()
        assert len(f.metadata["help"]) > 15, f.name


def test_values_come_from_the_environment_and_overrides_win():
    env = {"EDGESCRIBE_PORT": "9000", "EDGESCRIBE_MAX_STREAMS": " 3 ", "EDGESCRIBE_IDLE_TIMEOUT": "2",
           "EDGESCRIBE_MODEL": "", "EDGESCRIBE_API_KEY": "k", "UNRELATED": "x"}
    s = Settings.from_env(env)
    assert (s.port, s.max_streams, s.idle_timeout, s.model, s.api_key) == (9000, 3, 2.0, None, "k")
    assert Settings.from_env(env, port=9100, model=None).port == 9100
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("env, named", [
    ({"EDGESCRIBE_PORT": "eighty"}, "EDGESCRIBE_PORT must be an integer, got 'eighty'"),
    ({"EDGESCRIBE_IDLE_TIMEOUT": "soon"}, "EDGESCRIBE_IDLE_TIMEOUT must be a number, got 'soon'"),
    ({"EDGESCRIBE_PORT": "70000"}, "EDGESCRIBE_PORT"),
    ({"EDGESCRIBE_MAX_REQUESTS": "0"}, "EDGESCRIBE_MAX_REQUESTS"),
    ({"EDGESCRIBE_IDLE_TIMEOUT": "-1"}, "EDGESCRIBE_IDLE_TIMEOUT"),
    ({"EDGESCRIBE_WORKERS": ""}, "EDGESCRIBE_WORKERS"),
])
def test_bad_values_are_refused_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_wrong_types_are_refused_even_in_code():
    with pytest.raises(SettingsError, match="EDGESCRIBE_THREADS must be an integer"):
        Settings(threads="4")
    with pytest.raises(SettingsError, match="EDGESCRIBE_MAX_STREAMS"):
        Settings(max_streams=True)
    assert Settings(idle_timeout=5).idle_timeout == 5.0
    with pytest.raises(SettingsError, match="EDGESCRIBE_API_KEY"):
        Settings(api_key="  ")
    assert Settings.from_env({"EDGESCRIBE_API_KEY": ""}).api_key is None  # `-e EDGESCRIBE_API_KEY=` is off
    with pytest.raises(SettingsError, match="EDGESCRIBE_API_KEY must be printable ASCII"):
        Settings(api_key="schlüssel")  # a header could never carry it, so no request would ever match


def test_allowed_names_are_lists():
    s = Settings(allowed_origins=" https://ha.example:8123/ , HTTP://Other ", allowed_hosts="pi.lan")
    assert s.origins() == {"https://ha.example:8123", "http://other"} and s.hosts() == {"pi.lan"}
    assert Settings().origins() == frozenset()


def test_get_settings_reads_once(monkeypatch):
    get_settings.cache_clear()
    monkeypatch.setenv("EDGESCRIBE_PORT", "8123")
    first = get_settings()
    monkeypatch.setenv("EDGESCRIBE_PORT", "8124")
    assert get_settings() is first and first.port == 8123
    get_settings.cache_clear()


@pytest.fixture()
def fake_uvicorn(monkeypatch):
    """Record what `edgescribe serve` would run: (the app, uvicorn's configuration as a dict)."""
    calls = []
    monkeypatch.setattr("service.server.Server.run", lambda self: calls.append((self.app, vars(self.config))))
    return calls


def test_an_apps_own_settings_reach_handlers_without_dependency_overrides():
    # With any entry in app.dependency_overrides, FastAPI rebuilds every dependency's signature on every
    # request (6% of the server's time on small uploads): the app's settings live on app.state.
    from fastapi.testclient import TestClient
    from test_service_support import app_for

    app = app_for(Settings(max_hotwords=7, api_key="k"))
    with TestClient(app) as client:
        assert client.get("/v1/models").status_code == 401  # the app's own key, not the environment's (none)
        assert client.get("/v1/models", headers={"authorization": "Bearer k"}).status_code == 200
    assert app.state.settings.max_hotwords == 7
    assert not app.dependency_overrides


def test_serve_flags_override_the_environment(monkeypatch, fake_uvicorn):
    monkeypatch.setenv("EDGESCRIBE_PORT", "9001")
    monkeypatch.setenv("EDGESCRIBE_MAX_STREAMS", "5")
    assert main(["serve", "--host", "127.0.0.1", "--max-streams", "6", "--shutdown-timeout", "3"]) == 0
    (app, kw), = fake_uvicorn
    assert (kw["host"], kw["port"], kw["timeout_graceful_shutdown"]) == ("127.0.0.1", 9001, 3.0)
    settings = app.state.settings
    assert settings.max_streams == 6 and settings.port == 9001


def test_serve_defaults_to_all_interfaces_port_8000(monkeypatch, fake_uvicorn):
    for f in dataclasses.fields(Settings):
        monkeypatch.delenv(env_name(f.name), raising=False)
    assert main(["serve"]) == 0
    assert (fake_uvicorn[0][1]["host"], fake_uvicorn[0][1]["port"]) == ("0.0.0.0", 8000)


def test_serve_reports_bad_settings_and_models_in_one_line(monkeypatch, fake_uvicorn, tmp_path, capsys):
    monkeypatch.setenv("EDGESCRIBE_MAX_REQUESTS", "none")
    assert main(["serve"]) == 2
    assert "EDGESCRIBE_MAX_REQUESTS" in capsys.readouterr().err
    monkeypatch.delenv("EDGESCRIBE_MAX_REQUESTS")
    broken = tmp_path / "broken.esm"
    broken.write_bytes(b"not a model")
    assert main(["serve", "--model", str(broken)]) == 2
    assert "broken.esm" in capsys.readouterr().err
    assert not fake_uvicorn  # nothing was started
    with pytest.raises(SystemExit):
        main(["serve", "--port", "eighty"])  # argparse's own check of the flag's type


def test_healthcheck_names_a_bad_port_in_words(monkeypatch, capsys):
    monkeypatch.setenv("EDGESCRIBE_PORT", "80a")
    assert healthcheck.main() == 1
    assert capsys.readouterr().err.strip() == "healthcheck: EDGESCRIBE_PORT must be an integer, got '80a'"


def test_stream_sample_rate_takes_the_rates_a_stream_may_have():
    assert Settings().stream_sample_rate == 16000  # the model's rate and the page's, not vosk-server's 8000
    assert Settings(stream_sample_rate=RATES[0]).stream_sample_rate == 8000
    assert Settings(stream_sample_rate=RATES[1]).stream_sample_rate == RATES[1]
    for rate in (RATES[0] - 1, RATES[1] + 1):
        with pytest.raises(SettingsError, match="EDGESCRIBE_STREAM_SAMPLE_RATE"):
            Settings(stream_sample_rate=rate)
