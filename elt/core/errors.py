"""One exception type for user errors: the CLI prints its message on one line and exits 1."""

from __future__ import annotations


class EltError(Exception):
    """A user-facing error. The message must name the file/line, model or endpoint at fault."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(EltError):
    """Bad profiles.yml, seeds.yml, model header, publications.yml ..."""


class LoadError(EltError):
    """A raw file could not be loaded."""


class ModelError(EltError):
    """A model could not be parsed, resolved or built."""


class PublishError(EltError):
    """An endpoint, credential or publication problem."""


class DatabaseLockedError(EltError):
    """Another process holds the staging database's write lock."""
