"""engine_reports — see ARCHITECTURE.md; filled by a later issue."""
