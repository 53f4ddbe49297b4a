"""Errors of the archive agent and its reader."""

from streamlearn.exceptions import StreamlearnError


class ArchiveError(StreamlearnError):
    """The archive cannot do what was asked (a bad option, an unusable root, a file that
    is not an archive file)."""
