"""The standing crash test (issue 22): a mixed workload against real ``qiao serve`` and
``qiao worker`` processes on PostgreSQL, SIGKILLing them at random moments, then checking
that nothing was lost or doubled (``docs/deployment.md``, "The crash test").

- ``cluster``: the processes (two web servers, one worker) and their data directory;
- ``receiver``: the loopback HTTP server the webhooks and the rules' calls go to;
- ``workload``: the driver, its retrying client and its ledger of what it was told;
- ``checks``: what must hold after recovery;
- ``run``: one whole run (``python -m tests.chaos.run --kills 20``);
- ``test_crash``: the short run in the test suite (``QIAO_CHAOS_KILLS`` for more).
"""
