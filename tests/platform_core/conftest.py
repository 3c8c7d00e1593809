"""Fixtures of the platform-core tests: settings in a scratch data dir, its keyring."""

from __future__ import annotations

import pytest

from platform_core.security.crypto import Keyring
from platform_core.settings import load_settings


@pytest.fixture
def settings(tmp_path):
    """Settings whose data dir (and so key files) is the test's own."""
    return load_settings(data_dir=tmp_path / "data", encryption_keys="")


@pytest.fixture
def keyring(settings):
    """The field-encryption keyring of ``settings`` (its key file made on first use)."""
    return Keyring.load(settings)
