"""TOML integers within the 64-bit range the TOML specification promises.

``tomllib`` reads an integer of any length; TOML 1.0 says integers are 64-bit signed and that one
which cannot be represented losslessly must be an error. :func:`check_ints` refuses such an integer
with an :class:`~layerscope.InputError` naming the file and the key, before any ``float()`` of it
(which would raise ``OverflowError``) or any count driven by it.
"""

from __future__ import annotations

from layerscope._errors import InputError

_LIMIT = 2**63


def check_ints(doc, source, where: str = "") -> None:
    """Raise InputError at the first integer of ``doc`` outside the signed 64-bit range."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        key = f"{where}.{k}" if isinstance(k, str) and where else f"{where}[{k}]" if not isinstance(k, str) else k
        if isinstance(v, int) and not isinstance(v, bool) and not -_LIMIT <= v < _LIMIT:
            raise InputError(f"integer of {v.bit_length()} bits is outside the TOML (64-bit signed) range",
                             path=source, where=f"key {key}")
        if isinstance(v, (dict, list)):
            check_ints(v, source, key)
