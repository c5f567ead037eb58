"""User-defined derived quantities of an operando series (GSAS-II's sequential "pseudo-variables").

A derived quantity is a formula of the reported quantities — e.g. ``O3p_a * O3p_b`` or
``(O3_c - 14.2) / 14.2`` or ``frac_O3 / (frac_O3 + frac_S)`` — given in the protocol
(``[[series.derived]]`` tables: ``name = "…"``, ``expr = "…"``) or to ``refine_series(derived=…)``.
Each becomes one more observable, a JAX-differentiable function of the full parameter vector, so
its value and esd come from the same covariance as every other column (esd = √(gᵀ C g), NaN where
the pattern did not refine what it depends on) — as GSAS-II propagates the covariance through a
pseudo-variable's expression.

The formula may use: the observables' names (``frac_<p>``, ``<p>_a``, ``d_inter_<p>``, ``DoO``,
``DoD``, ``O_vacancy`` …) and earlier derived names; any model parameter as ``p("O3p.occ[M2b:Li]")``;
numbers; ``+ - * / **``, unary minus; and ``sqrt exp log log10 sin cos tan arcsin arccos arctan
deg2rad rad2deg abs`` and ``pi``. Nothing else is evaluated (the formula is parsed, not run by
Python's ``eval``). Written by hand: the expression language is this small, and a general
expression library would not give JAX-traceable functions.

Each may carry a ``unit`` (a string, e.g. ``"Å^3"``), written wherever the other columns' units
are (the ``units`` attribute of its variable and ``_esd`` in ``operando.h5``, the provenance). A
unit is never inferred from the formula (``O3p_a * O3p_b`` need not be Å²: a formula may hold
numbers with units of their own): without one the quantity's unit is recorded as
``"unspecified"`` and the run prints one note naming such quantities.
"""

from __future__ import annotations

import ast
import operator

import jax.numpy as jnp

__all__ = ["parse_derived", "add_derived", "check_unit", "split_derived", "derived_units", "UNSPECIFIED"]

#: the unit recorded for a derived quantity given without one
UNSPECIFIED = "unspecified"

_FUNCS = {n: getattr(jnp, n) for n in ("sqrt", "exp", "log", "log10", "sin", "cos", "tan", "arcsin", "arccos",
                                       "arctan", "deg2rad", "rad2deg", "abs")}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}


def parse_derived(name: str, expr: str, known, params=(), source: str = "derived quantity"):
    """Check ``expr`` and return (its AST, the names it uses, the parameters it uses).

    ``known``: observable names it may use; ``params``: the model's parameter names (for ``p("…")``).
    Raises ``ValueError`` naming ``source``, the quantity and what is wrong."""
    where = f"{source}: {name!r}"
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"{where}: a derived quantity's name must be an identifier (letters, digits, _)")
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"{where}: expr must be a formula string")
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"{where}: {expr!r} is not a formula ({exc.msg})") from None
    names, used_params = set(), set()

    def check(node):
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            check(node.operand)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value,
                                                                                                       bool):
            pass
        elif isinstance(node, ast.Name):
            if node.id == "pi":
                return
            if node.id not in known:
                raise ValueError(f"{where}: unknown name {node.id!r} in {expr!r} (known: "
                                 f"{', '.join(sorted(known))}; a model parameter: p(\"NAME\"))")
            names.add(node.id)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
              and len(node.args) == 1):
            f = node.func.id
            if f == "p":
                a = node.args[0]
                if not (isinstance(a, ast.Constant) and isinstance(a.value, str)):
                    raise ValueError(f"{where}: p(...) takes a parameter name in quotes, e.g. p(\"O3p.a\")")
                if a.value not in params:
                    raise ValueError(f"{where}: p({a.value!r}): not a parameter of this model")
                used_params.add(a.value)
            elif f in _FUNCS:
                check(node.args[0])
            else:
                raise ValueError(f"{where}: function {f!r} is not allowed (allowed: {', '.join(sorted(_FUNCS))}, p)")
        else:
            raise ValueError(f"{where}: {ast.unparse(node)!r} is not allowed in a formula (numbers, names, "
                             "+ - * / **, and the listed functions)")

    check(tree)
    return tree, names, used_params


def _evaluate(node, env, v, index):
    if isinstance(node, ast.BinOp):
        return _BIN[type(node.op)](_evaluate(node.left, env, v, index), _evaluate(node.right, env, v, index))
    if isinstance(node, ast.UnaryOp):
        x = _evaluate(node.operand, env, v, index)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return jnp.pi if node.id == "pi" else env[node.id](v)
    if node.func.id == "p":
        return v[index[node.args[0].value]]
    return _FUNCS[node.func.id](_evaluate(node.args[0], env, v, index))


def add_derived(obs: dict, derived, layout, source: str = "derived quantity") -> dict:
    """``obs`` with one function per derived quantity ``(name, expr)`` added (in order; a
    formula may use the earlier ones). Names may not shadow an observable."""
    out = dict(obs)
    index = {n: i for i, n in enumerate(layout.names)}
    for name, expr in derived:
        if name in out:
            raise ValueError(f"{source}: {name!r} is already a reported quantity; choose another name")
        tree, _, _ = parse_derived(name, expr, set(out), index, source)
        out[name] = (lambda v, tree=tree, env=dict(out): _evaluate(tree, env, v, index))
    return out


def check_unit(unit, *, path=None, where: str = "derived quantity") -> str:
    """``unit`` (a derived quantity's ``unit`` key) checked: a non-empty one-line string of at most
    64 characters. Raises :class:`~layerscope.InputError` naming ``path`` and ``where``."""
    from layerscope._errors import InputError

    if not isinstance(unit, str):
        raise InputError(f"unit must be a string such as \"Å^3\", got {unit!r}", path=path, where=where)
    u = unit.strip()
    if not u or len(u) > 64 or any(not ch.isprintable() for ch in u):
        raise InputError(f"unit must be a non-empty printable one-line string of at most 64 characters, got {unit!r}",
                         path=path, where=where)
    return u


def split_derived(derived, source: str = "refine_series(derived=...)") -> tuple[dict, dict]:
    """({name: formula}, {name: unit or None}) of ``derived``: a mapping of name to a formula
    string or to a table ``{"expr": formula, "unit": unit}`` (``unit`` optional). An unknown key or
    a table without ``expr`` raises :class:`~layerscope.InputError` naming ``source`` and the quantity."""
    from layerscope._errors import InputError

    formulas, units = {}, {}
    for name, spec in dict(derived or {}).items():
        where = f"derived quantity {name!r}"
        if isinstance(spec, str):
            formulas[name], units[name] = spec, None
            continue
        if not isinstance(spec, dict):
            raise InputError(f"expected a formula string or a table {{expr = ..., unit = ...}}, got {spec!r}",
                             path=None, where=f"{source}: {where}")
        extra = sorted(set(spec) - {"expr", "unit"})
        if extra:
            raise InputError(f"unknown key(s) {', '.join(map(repr, extra))} (a derived quantity takes expr and unit)",
                             where=f"{source}: {where}")
        if not isinstance(spec.get("expr"), str):
            raise InputError("needs expr = \"FORMULA\"", where=f"{source}: {where}")
        formulas[name] = spec["expr"]
        units[name] = None if spec.get("unit") is None else check_unit(spec["unit"], where=f"{source}: {where}")
    return formulas, units


def derived_units(names, given: dict) -> tuple[dict, str]:
    """({name: unit} with :data:`UNSPECIFIED` where ``given`` has none, the note to print — "" when
    every derived quantity has a unit)."""
    units = {n: given.get(n) or UNSPECIFIED for n in names}
    bare = [n for n in names if not given.get(n)]
    note = (f"no unit given for {', '.join(bare)}: recorded as '{UNSPECIFIED}' (a unit is never inferred from "
            "the formula; give unit = \"...\")") if bare else ""
    return units, note
