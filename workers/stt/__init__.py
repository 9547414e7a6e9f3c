"""STT engines, one module per engine."""
