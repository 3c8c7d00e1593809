"""``import platform`` must stay the standard library's (our kernel is platform_core)."""

import platform
import sys


def test_platform_is_the_standard_library():
    assert callable(platform.system)
    assert platform.__file__.startswith(sys.base_prefix) or "site-packages" not in platform.__file__
