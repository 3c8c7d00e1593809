"""engine_forms — see ARCHITECTURE.md; filled by a later issue."""
