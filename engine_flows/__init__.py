"""engine_flows — see ARCHITECTURE.md; filled by a later issue."""
