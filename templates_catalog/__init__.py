"""templates_catalog — see ARCHITECTURE.md; filled by a later issue."""
