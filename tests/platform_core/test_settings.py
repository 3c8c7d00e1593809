"""Settings: defaults, one-line errors naming the setting, the secret key file."""

from __future__ import annotations

import stat

import pytest

from platform_core.settings import SettingsError, ensure_secret_key, load_settings


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("QIAO_DATA_DIR", "QIAO_DATABASE_URL", "QIAO_PORT", "QIAO_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.port == 8000 and str(settings.data_dir) == "qiao-data"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'qiao-data' / 'qiao.db'}"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("QIAO_PORT", "eighty", "invalid setting QIAO_PORT: Input should be a valid integer"),
    ("QIAO_PORT", "70000", "invalid setting QIAO_PORT: Input should be less than or equal"),
    ("QIAO_DATABASE_URL", "mysql://x", "invalid setting QIAO_DATABASE_URL: Value error, "
                                       "must start with sqlite:// or postgresql+psycopg://"),
    ("QIAO_ENV", "prod", "invalid setting QIAO_ENV: Input should be 'development'"),
])
def test_a_bad_setting_is_one_line_naming_it(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_secret_key_is_created_once_with_mode_0600(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    key = ensure_secret_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert len(key) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret_key(settings) == key


def test_a_short_secret_key_file_is_refused(tmp_path):
    (tmp_path / "k").write_text("short")
    with pytest.raises(SettingsError, match="QIAO_SECRET_KEY_FILE"):
        ensure_secret_key(load_settings(secret_key_file=tmp_path / "k"))
