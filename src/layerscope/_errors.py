"""The one error type for bad input.

:class:`InputError` is raised by every reader and command when a file, a study/strategy entry or
a user-given value cannot be used as it is. It is a :class:`ValueError`, so code that already
catches ``ValueError`` keeps working; the command line prints its message (no traceback) and
exits with status 2.

The message names the file, the place in it (line, record, dataset, key) and what was expected::

    raise InputError("expected 'BANK' record", path="x.gsa", where="line 3")
    # -> "x.gsa, line 3: expected 'BANK' record"
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "MissingFile"]


class InputError(ValueError):
    """Bad input: a file, a record in it, or a user-given value that cannot be used.

    Parameters
    ----------
    message : str
        What was found and what was expected.
    path : str or Path, optional
        The file.
    where : str, optional
        The place in the file: ``"line 12"``, ``"dataset /data/frames"``, ``"key [refine].tol"``.
    """

    def __init__(self, message: str, *, path=None, where: str | None = None):
        self.path = None if path is None else Path(path)
        self.where = where
        self.detail = message
        prefix = ", ".join(str(p) for p in (path, where) if p is not None)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MissingFile(InputError, FileNotFoundError):
    """A file named inside an input file (a manifest row, a study key) does not exist.

    Both an :class:`InputError` (bad input: exit 2 with the message) and a ``FileNotFoundError``.
    """


def reader(func):
    """Decorate a reader ``func(path, ...)`` so that every bad-input failure is an :class:`InputError`.

    A ``ValueError`` (which includes ``UnicodeDecodeError``) raised inside becomes an InputError with
    the same message, prefixed by the file when the message does not name it already; an
    ``OverflowError`` (a number beyond what a float holds) becomes one too. Anything else
    propagates unchanged: fuzzing (``tests/test_fuzz.py``) treats it as a bug of the reader.
    """
    import functools

    @functools.wraps(func)
    def wrapper(path, *args, **kwargs):
        try:
            return func(path, *args, **kwargs)
        except InputError:
            raise
        except OverflowError as exc:
            raise InputError(f"a number is too large to be used ({exc})", path=path) from None
        except ValueError as exc:
            msg = str(exc)
            name = Path(path).name if isinstance(path, (str, Path)) else None
            if name and name not in msg:
                raise InputError(msg, path=path) from None
            raise InputError(msg) from None

    return wrapper
