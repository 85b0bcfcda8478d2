"""Settings are read once from the environment and each bad value is named."""

from pathlib import Path

import pytest

from spatial.settings import SettingsError, load_settings


def test_defaults_need_no_configuration(tmp_path):
    s = load_settings({"VAR_DIR": str(tmp_path / "var")})
    assert s.database_url is None
    assert s.port == 5000 and s.host == "127.0.0.1"
    assert s.media_dir == (tmp_path / "var" / "media").resolve()
    # a generated secret is kept so sessions survive a restart
    assert len(s.secret_key) >= 32
    assert load_settings({"VAR_DIR": str(tmp_path / "var")}).secret_key == s.secret_key
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


def test_values_are_read(tmp_path):
    s = load_settings(
        {
            "DATABASE_URL": "postgres://u:p@db.example:5432/civic",
            "SECRET_KEY": "x" * 40,
            "MEDIA_DIR": str(tmp_path / "m"),
            "SMTP_URL": "smtp://127.0.0.1:2525",
            "PUBLIC_BASE_URL": "https://311.city.example/",
            "TILE_URL": "https://tiles.city.example/{z}/{x}/{y}.png",
            "PORT": "8080",
        }
    )
    assert s.database_url == "postgresql://u:p@db.example:5432/civic"
    assert s.media_dir == Path(tmp_path / "m").resolve()
    assert s.public_base_url == "https://311.city.example"
    assert s.port == 8080


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: 'mysql://x/y' is not a valid URL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY: must be at least 16 characters long"),
        ({"SMTP_URL": "localhost:25"}, "SMTP_URL: 'localhost:25' is not a valid URL"),
        ({"PUBLIC_BASE_URL": "311.city"}, "PUBLIC_BASE_URL: '311.city' is not a valid URL"),
        ({"TILE_URL": "https://t.example/tiles.png"}, "TILE_URL: must contain {z}, {x} and {y}"),
        ({"PORT": "99999"}, "PORT: 99999 is outside 1-65535"),
        ({"PORT": "eighty"}, "PORT: 'eighty' is not a port number"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: 'loud' is not one of"),
        ({"MAIL_FROM": "nobody"}, "MAIL_FROM: 'nobody' has no e-mail address"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, env, message):
    env = {"VAR_DIR": str(tmp_path), **env}
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
