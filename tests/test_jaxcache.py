"""The command line's persistent JAX compilation cache (layerscope._jaxcache)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from layerscope._jaxcache import cache_dir


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERSCOPE_JAX_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    for off in ("off", "0", "", " OFF "):
        monkeypatch.setenv("LAYERSCOPE_JAX_CACHE", off)
        assert cache_dir() is None
    monkeypatch.delenv("LAYERSCOPE_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "layerscope" / "jax"


@pytest.mark.parametrize("setting", ["on", "off"])
def test_cli_fills_the_cache_only_when_asked_and_library_import_leaves_jax_alone(tmp_path, setting):
    """A `layerscope pattern` run compiles the TOF kernel: with the cache on, entries
    appear in the folder; with it off, nothing is written; importing layerscope alone never sets
    JAX's cache folder."""
    d = tmp_path / "cache"
    env_value = str(d) if setting == "on" else "off"
    code = ("import os, jax, layerscope.diffraction.pattern, layerscope.refine.engine;"
            "assert not jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_dir;"
            "from layerscope.cli import main;"
            f"raise SystemExit(main(['pattern', 'lrm-pristine', '--points', '800', '--out', {str(tmp_path / 'p.csv')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], env={"LAYERSCOPE_JAX_CACHE": env_value, "PATH": "/usr/bin:/bin",
                       "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    entries = list(d.rglob("*")) if d.exists() else []
    if setting == "on":
        assert entries, "no compiled kernel was cached"
    else:
        assert not entries
