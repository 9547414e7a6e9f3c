"""TTS engines, one module per engine."""
