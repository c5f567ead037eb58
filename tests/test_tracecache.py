"""Traced kernels kept on disk (layerscope._tracecache) and the host-to-device copy (_device).

The on-disk artefact must give the same numbers as a plain ``jax.jit`` call, be used only for
the same static arguments and shapes, survive a damaged file, and be skipped for a static
argument it cannot digest. The operando check runs a refinement in two fresh processes (the
second one loads every kernel from disk) and compares its values with a process that has the
caches off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from layerscope import _tracecache
from layerscope._device import to_device


@dataclass(frozen=True)
class _Cfg:
    power: int
    name: str


def _kernel(cfg, x, y, *, shift=0.0):
    return jnp.sum(x ** cfg.power) * y + shift, {"grad": jax.grad(lambda u: jnp.sum(jnp.sin(u) * y))(x)}


@pytest.fixture
def trace_dir(tmp_path):
    _tracecache.enable(tmp_path)
    yield tmp_path / "traced"
    _tracecache.enable(None)


def _fresh():
    # a new wrapper has an empty memory, as a new process would
    return _tracecache.persistent_jit(_kernel, name="toy", static_argnums=(0,))


def test_artefact_written_then_loaded_and_equal(trace_dir):
    x, y = np.linspace(0.1, 2.0, 7), 1.5
    plain = jax.jit(_kernel, static_argnums=(0,))(_Cfg(3, "a"), x, y, shift=0.25)
    out = _fresh()(_Cfg(3, "a"), x, y, shift=0.25)
    files = sorted(trace_dir.glob("toy-*.jaxexp"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again = _fresh()(_Cfg(3, "a"), x + 1.0, y, shift=0.25)  # same shapes: the file is read, not rewritten
    assert sorted(trace_dir.glob("toy-*.jaxexp")) == files
    assert files[0].stat().st_mtime_ns >= mtime
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(plain[0]))
    np.testing.assert_array_equal(np.asarray(out[1]["grad"]), np.asarray(plain[1]["grad"]))
    ref = jax.jit(_kernel, static_argnums=(0,))(_Cfg(3, "a"), x + 1.0, y, shift=0.25)
    np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(ref[0]))


def test_static_arguments_and_shapes_key_the_artefact(trace_dir):
    x = np.linspace(0.1, 2.0, 7)
    a = _fresh()(_Cfg(3, "a"), x, 2.0)
    b = _fresh()(_Cfg(2, "a"), x, 2.0)  # another static value: another program
    c = _fresh()(_Cfg(3, "a"), np.linspace(0.1, 2.0, 9), 2.0)  # another shape
    assert len(list(trace_dir.glob("toy-*.jaxexp"))) == 3
    plain = jax.jit(_kernel, static_argnums=(0,))
    assert float(a[0]) == float(plain(_Cfg(3, "a"), x, 2.0)[0])
    assert float(b[0]) == float(plain(_Cfg(2, "a"), x, 2.0)[0])
    assert float(c[0]) == float(plain(_Cfg(3, "a"), np.linspace(0.1, 2.0, 9), 2.0)[0])
    assert float(a[0]) != float(b[0])


def test_damaged_artefact_is_rewritten(trace_dir):
    x = np.linspace(0.1, 2.0, 5)
    want = float(_fresh()(_Cfg(3, "a"), x, 1.0)[0])
    (f,) = trace_dir.glob("toy-*.jaxexp")
    f.write_bytes(b"not an artefact")
    assert float(_fresh()(_Cfg(3, "a"), x, 1.0)[0]) == want
    assert f.stat().st_size > 100


def test_undigestable_static_falls_back_to_jit(trace_dir):
    class Opaque:  # no content digest: must not be keyed by its (per-process) identity
        power = 2

        def __hash__(self):
            return 1

        def __eq__(self, other):
            return isinstance(other, Opaque)

    out = _fresh()(Opaque(), np.ones(3), 1.0)
    assert float(out[0]) == 3.0
    assert not list(trace_dir.glob("*.jaxexp"))


def test_off_writes_nothing(tmp_path):
    _tracecache.enable(None)
    _fresh()(_Cfg(3, "a"), np.ones(3), 1.0)
    assert not (tmp_path / "traced").exists()


def test_to_device_copies_without_compiling():
    a = np.arange(12.0).reshape(4, 3)
    d = to_device(a)
    # the dtype jnp.asarray gives (float64 where layerscope has switched 64-bit mode on)
    assert isinstance(d, jax.Array) and d.dtype == jnp.asarray(a).dtype and d.shape == (4, 3)
    np.testing.assert_array_equal(np.asarray(d), a.astype(d.dtype))
    assert to_device(d) is d
    assert to_device(2.5).dtype == jnp.asarray(2.5).dtype
    assert to_device([1, 2], dtype=float).dtype == jnp.asarray([1.0, 2.0]).dtype
    seen = []
    with jax.log_compiles(True):
        import logging

        class H(logging.Handler):
            def emit(self, record):
                seen.append(record.getMessage())

        h = H()
        logging.getLogger("jax").addHandler(h)
        try:
            to_device(np.ones((5, 17, 3)))
        finally:
            logging.getLogger("jax").removeHandler(h)
    assert not [m for m in seen if "Compiling" in m], seen


_CHILD = r"""
import json, sys
import numpy as np
from pathlib import Path
from layerscope._jaxcache import enable_compilation_cache
enable_compilation_cache()
from layerscope.crystal import preset
from layerscope.diffraction.instrument import read_instprm
from layerscope.echem.io import read_cycler
from layerscope.operando.align import align_to_cycler
from layerscope.operando.series import read_manifest, read_series_patterns
from layerscope.operando.sequential import refine_series
d = Path(sys.argv[1])
entries = read_manifest(d / "series")[:2]
m = preset("lrm-pouch")
records, _, _ = refine_series(read_series_patterns(entries), list(m.phases), read_instprm(d / "series" / "gppd_like.instprm"),
                              times=align_to_cycler(entries, read_cycler(d / "cycler.csv")), start_fractions=m.fractions)
rows = [{k: v for k, v in r.row.items() if isinstance(v, float)} for r in records]
print(json.dumps({"full": [list(map(float, r.full)) for r in records], "rows": rows}))
"""


_SMALL = r"""
import json, sys
import numpy as np
from layerscope._jaxcache import enable_compilation_cache
enable_compilation_cache()
from layerscope.crystal import preset_phase
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.refine import Evaluator, free_set, least_squares, make_layout
tof = np.geomspace(16000, 60000, 800)
model = build_model([preset_phase("Al"), preset_phase("Cu")], tof, gppd_like(), n_background=3)
lay = make_layout(model)
truth = lay.flatten(initial_params(model, scales={"Al": 1e4, "Cu": 5e3}, background=[400.0, 0.0, 0.0]))
ev = Evaluator(model, lay)
y = ev.calc(truth)[0]
sigma = np.sqrt(np.maximum(y, 1.0))
start = truth.copy()
start[lay.index("Al.a")] *= 1.002
fr = least_squares(ev, free_set(lay, start, ["background", "Al.scale", "Cu.scale", "Al.cell", "Cu.biso"]), y, sigma)
print(json.dumps({"y": list(map(float, y)), "full": list(map(float, fr.full)), "esd": list(map(float, fr.esd_full))}))
"""


def _run_child(code, arg, cache):
    env = {**os.environ, "LAYERSCOPE_JAX_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-c", code, *([str(arg)] if arg else [])], env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_refinement_from_traced_kernels_equals_plain(tmp_path):
    """A two-phase TOF refinement in fresh processes: caches cold (kernels traced, exported and
    compiled), warm (every kernel read from disk), and off: the same pattern, refined vector and
    esds to the last bit."""
    cold = _run_child(_SMALL, None, tmp_path / "cache")
    traced = sorted(p.name for p in (tmp_path / "cache" / "traced").glob("*.jaxexp"))
    assert {n.split("-")[0] for n in traced} == {"tof_calc", "tof_jacobian"}
    warm = _run_child(_SMALL, None, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache" / "traced").glob("*.jaxexp")) == traced
    plain = _run_child(_SMALL, None, "off")
    assert cold == plain and warm == plain


@pytest.mark.extended
def test_operando_from_traced_kernels_equals_plain(tmp_path):
    """Reference + one pattern of the simulated pouch cell: the second process with the caches
    warm (every kernel read from disk) gives the same refined vectors and reported values, to the
    last bit, as a process with the caches off."""
    from layerscope.simulate.operando import simulate_operando

    simulate_operando(tmp_path / "s", seed=3, every=2, n_points=1500)
    env = {**os.environ, "LAYERSCOPE_JAX_CACHE": str(tmp_path / "cache")}

    def run(e):
        r = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "s")], env=e, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    cold = run(env)
    traced = sorted(p.name for p in (tmp_path / "cache" / "traced").glob("*.jaxexp"))
    assert {n.split("-")[0] for n in traced} == {"tof_calc", "tof_jacobian", "operando_observables"}
    warm = run(env)
    assert sorted(p.name for p in (tmp_path / "cache" / "traced").glob("*.jaxexp")) == traced  # all read back
    plain = run({**os.environ, "LAYERSCOPE_JAX_CACHE": "off"})
    for got in (cold, warm):
        assert got["full"] == plain["full"]
        for a, b in zip(got["rows"], plain["rows"]):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])), k
