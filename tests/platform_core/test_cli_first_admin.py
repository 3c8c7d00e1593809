"""``QIAO_ADMIN_PASSWORD`` that the password policy refuses: ``qiao serve --demo`` (and
``qiao init``) stop with one clear line and a non-zero exit, not a traceback, and nothing
is left half made (the next start creates the admin)."""

from __future__ import annotations

from tests.platform_core.test_cli import _env, _free_port, fresh_url, qiao

__all__ = ["fresh_url"]  # the fixture, used below


def test_a_refused_admin_password_is_one_line_and_no_admin(tmp_path, fresh_url):
    env = _env(tmp_path, fresh_url, QIAO_ADMIN_PASSWORD="my-admin-Passw0rd-2031",
               QIAO_PORT=str(_free_port()))
    for command in (["serve", "--demo"], ["init"]):
        result = qiao(*command, env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            "qiao: QIAO_ADMIN_PASSWORD cannot be the first admin's password: password: "
            "不能包含用户名 / must not contain the username"]
        assert "serving on" not in result.stdout
    env.pop("QIAO_ADMIN_PASSWORD")
    fixed = qiao("init", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "created user admin with the one-time password" in fixed.stdout
