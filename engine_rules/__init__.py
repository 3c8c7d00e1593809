"""engine_rules — see ARCHITECTURE.md; filled by a later issue."""
