"""Errors shared by every role."""


class ParleyError(Exception):
    """Base class for errors that are reported to the user as one clear line."""


class ConfigError(ParleyError):
    """The configuration (TOML file, environment, command line) is invalid."""
