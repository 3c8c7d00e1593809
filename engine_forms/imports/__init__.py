"""Spreadsheet import at scale (issue 21): reading, coercion and mapping (``reading``,
``coerce``, ``mapping``, ``problems_file``); batches, the background runner, modes and
revert (``service``, ``runner``, ``chunks``, ``revert``); the API (``api``) and the
``qiao import`` commands (``cli``). See docs/importing.md."""
