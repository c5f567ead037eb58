"""Atomic file output shared by every command.

Every file layerscope writes appears whole or not at all: it is written to a temporary file in
the same folder and moved into place with :func:`os.replace` (atomic on POSIX and Windows), so a
run killed part way (``kill -9``, a full disk) leaves either the previous file or none — never a
truncated one that a resumed run would trust. The temporary name is unique (``tempfile``), so two
processes writing the same folder do not collide; on an error it is removed.

:func:`write_csv` is the one CSV writer of the package: rows as dicts (column order from the
first row or ``columns``) or as sequences under a header, floats as ``%.8g`` unless told
otherwise, NumPy scalars treated like Python numbers.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from layerscope._errors import InputError

__all__ = ["atomic_path", "remove_partial", "save_figure", "save_image", "write_csv", "write_text"]

#: the temporary file of an unfinished write: .NAME.<8 random chars from mkstemp>.part[.EXT]
_PARTIAL = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(\.[A-Za-z0-9]+)?$")


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no read-only call)."""
    m = os.umask(0o022)
    os.umask(m)
    return m


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit move it onto ``path``.

    The caller writes the temporary file by any means (``open``, ``h5py.File``, ``np.savetxt``).
    The suffix keeps the extension-sensitive writers happy (``suffix=".h5"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; a finished output gets the mode any other program's file gets
        # (0666 less the umask), so a group on a shared cluster can read it
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partial(out_dir) -> list[Path]:
    """Remove the temporary files that killed writers left in ``out_dir`` (recursively); return them.

    Only names :func:`atomic_path` makes are touched (and staging folders named like them). Call it
    only while holding the folder's lock (no other writer can be half way through a file then).
    """
    out = Path(out_dir)
    if not out.is_dir():
        return []
    gone = []
    for p in sorted(out.rglob(".*.part*")):
        if _PARTIAL.match(p.name) and p.exists():
            if p.is_dir():  # a staging folder (tempfile.mkdtemp(prefix=".NAME.", suffix=".part"))
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def readable_axes(fig) -> None:
    """No axis of ``fig`` shows an offset (Matplotlib's "1e−7+9.95e1" above the ticks).

    Every linear axis with a scalar formatter writes its ticks in full. An axis whose data span
    less than one part per million of its value (a constant up to rounding, e.g. a Coulombic
    efficiency of 0.995 for every cycle) is widened to ±0.1 % about its centre, so that a flat
    line reads as one value instead of ticks differing in the ninth digit.
    """
    from matplotlib.ticker import ScalarFormatter

    for ax in fig.axes:
        for axis, get, set_ in ((ax.xaxis, ax.get_xlim, ax.set_xlim), (ax.yaxis, ax.get_ylim, ax.set_ylim)):
            fmt = axis.get_major_formatter()
            if axis.get_scale() != "linear" or not isinstance(fmt, ScalarFormatter):
                continue
            fmt.set_useOffset(False)
            lo, hi = get()
            mid, span = 0.5 * (lo + hi), abs(hi - lo)
            if np.isfinite(mid) and mid != 0 and span < 1e-6 * abs(mid):
                w = 1e-3 * abs(mid) * (1 if hi >= lo else -1)   # (an inverted axis stays inverted)
                set_(mid - w, mid + w)


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)``, atomically (the format from ``path``'s extension), with
    :func:`readable_axes` (no axis offsets)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    readable_axes(fig)
    with atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, **kwargs)
    return path


def save_image(path, array, **kwargs) -> Path:
    """``matplotlib.image.imsave(path, array, **kwargs)``, atomically (no pyplot, no backend chosen)."""
    from matplotlib.image import imsave

    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_path(path, path.suffix) as tmp:
        imsave(tmp, array, **kwargs)
    return path


def write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def _cell(v, fmt: str):
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if fmt is None else format(float(v), fmt)
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_csv(path, rows: Iterable, columns: Sequence[str] | None = None, *, fmt: str | None = ".8g",
              extra: str = "raise") -> Path:
    """Write a CSV table atomically.

    rows : dicts (keys not in ``columns`` are ignored, missing ones left empty; without
        ``columns`` the first row's keys are the header) or sequences (``columns`` required).
    fmt : format spec of floating-point cells (``".8g"``: 8 significant digits; None: the
        shortest text that reads back to the same float).
    extra : what a dict row with a key outside the columns does: ``"raise"`` (a ValueError
        naming the file and key) or ``"ignore"`` (the caller chose the columns on purpose).
    """
    path = Path(path)
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        cols = list(columns) if columns is not None else list(rows[0])
        if extra == "raise":
            known = set(cols)
            for i, r in enumerate(rows):
                unknown = [k for k in r if k not in known]
                if unknown:
                    raise ValueError(f"{path}: row {i} has values for {unknown}, not among the columns {cols}")
        body = ([_cell(r.get(k, ""), fmt) for k in cols] for r in rows)
    elif not rows:
        cols = list(columns or [])
        body = []
    else:
        if columns is None:
            raise ValueError(f"{path}: rows given as sequences need the column names")
        cols = list(columns)
        for i, r in enumerate(rows):
            if len(r) != len(cols):
                raise ValueError(f"{path}: row {i} has {len(r)} values for {len(cols)} columns")
        body = ([_cell(v, fmt) for v in r] for r in rows)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(body)
    return path


_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def safe_name(name: str) -> str:
    """A file name made from a name found in an input or study file (a phase, a dataset).

    Path separators (``/``, ``\\``), NUL and control characters become ``_``, and so does a leading
    ``.`` (no ``..``, no hidden file); every other name is kept as it is.
    """
    s = _UNSAFE.sub("_", str(name))
    if not s or s.startswith("."):
        s = "_" + s
    return s


def file_in(out_dir, name: str, suffix: str = "") -> Path:
    """``out_dir / (safe_name(name) + suffix)``: a name from an input file never leads outside ``out_dir``."""
    out = Path(out_dir)
    path = out / (safe_name(name) + suffix)
    if os.path.dirname(os.path.normpath(path)) != os.path.normpath(out):  # pragma: no cover
        raise InputError(f"name {name!r} would place an output outside {out}")
    return path
