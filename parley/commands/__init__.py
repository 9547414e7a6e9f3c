"""The CLI's commands that compose several roles (up, demo, edge, models, bench)."""
