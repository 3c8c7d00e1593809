"""``python -m platform_core`` is the ``qiao`` command."""

from platform_core.cli import main

main()
