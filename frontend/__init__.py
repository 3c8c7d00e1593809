"""Qiao front end: server-rendered Jinja2 pages (htmx), plugged in via qiao.plugins."""
