"""Parley's shared core: config, telemetry, rpc helpers, audio, database, CLI."""

__version__ = "0.1.0"
