"""The line reader of FullProf ``.pcr`` files (:mod:`layerscope.refine.pcr`): non-comment lines
in order with their numbers and the ``!`` header above each, read as numbers or as values named by
that header. Moved out of ``pcr.py`` unchanged.
"""

from __future__ import annotations

from pathlib import Path

from layerscope._errors import InputError


class _Lines:
    """Non-comment lines with their numbers and the comment header above each, consumed in order."""

    def __init__(self, path: Path):
        self.path = path
        raw = path.read_text(errors="replace").splitlines()
        self.comments = [s for s in raw if s.startswith("!")]
        self.items = []
        header = ""
        for i, s in enumerate(raw):
            if s.lstrip().startswith("!"):
                if s.strip("! \t"):
                    header = s.lstrip()[1:]
                continue
            if s.strip():
                self.items.append((i + 1, s.rstrip(), header))
                header = ""
        self.pos = 0

    def error(self, message: str, no: int | None = None) -> InputError:
        return InputError(message, path=self.path, where=None if no is None else f"line {no}")

    def _finite(self, vals, what: str, no: int) -> None:
        """Control values are finite and of a size a float64 and an int64 hold."""
        for v in vals:
            if not (abs(v) < 1e15):  # also False for NaN
                raise self.error(f"expected finite numbers of a sensible size ({what}), found {v!r}", no)

    def peek(self) -> tuple[int, str, str] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self, what: str) -> tuple[int, str]:
        if self.pos >= len(self.items):
            raise self.error(f"file ends where {what} was expected (truncated .pcr?)")
        no, s, _ = self.items[self.pos]
        self.pos += 1
        return no, s

    def numbers(self, what: str, n: int, *, at_most: int | None = None) -> list[float]:
        """The first ``n`` (up to ``at_most``) numbers of the next line; stops at the first non-number."""
        no, s = self.next(what)
        vals = []
        for t in s.split():
            try:
                vals.append(float(t))
            except ValueError:
                break
            if len(vals) == (at_most or n):
                break
        if len(vals) < n:
            raise self.error(f"expected {n} numbers ({what}), got {s.strip()[:70]!r}", no)
        self._finite(vals, what, no)
        self.last_no = no
        return vals

    def named(self, what: str, names: tuple[str, ...], fallback: tuple[str, ...] | None = None) -> tuple[dict, int]:
        """The next line as {name: value}, names taken from its ``!`` header when that header has as
        many names as the line has numbers, else ``names`` (or ``fallback`` for a shorter line)."""
        item = self.peek()
        if item is None:
            raise self.error(f"file ends where {what} was expected (truncated .pcr?)")
        no, s, header = item
        toks = []
        for t in s.split():
            try:
                toks.append(float(t))
            except ValueError:
                break
        self._finite(toks, what, no)
        hnames = [h for h in header.replace("/Codes", "").split() if not h.startswith(("<", "-", "#", "("))]
        if len(hnames) >= len(toks) and len(toks) >= len(fallback or names):
            keys = hnames[:len(toks)]
        elif len(toks) >= len(names):
            keys = list(names)
        elif fallback and len(toks) >= len(fallback):
            keys = list(fallback)
        else:
            raise self.error(f"expected {len(fallback or names)} numbers ({what}), got {s.strip()[:70]!r}", no)
        self.pos += 1
        seen: dict = {}
        out = _Named(self, what, no)
        for key, v in zip(keys, toks):
            seen[key] = seen.get(key, 0) + 1
            out[key if seen[key] == 1 else f"{key}#{seen[key]}"] = v
        return out, no


class _Named(dict):
    """Values of a ``.pcr`` line by name; a name the line's ``!`` header does not give is an InputError."""

    def __init__(self, lines, what: str, no: int):
        super().__init__()
        self._at = (lines, what, no)

    def __missing__(self, key):
        lines, what, no = self._at
        raise lines.error(f"expected a value named {key!r} ({what}); the line's '!' header names "
                          f"{', '.join(self) or 'nothing'}", no)
