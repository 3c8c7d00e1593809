"""templates_catalog — app bundles shipped with Qiao (``bank_intermediary_crm/`` first) and
what installs, exports and lists them: ``bundle`` (the folder format), ``install``
(through each engine's own checks, one transaction), ``demo`` (demo data played through
the engines), ``cli`` (``qiao template …`` and ``qiao serve --demo``)."""
