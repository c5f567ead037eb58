"""``report.html``: one self-contained page that mirrors the paper's figures and tables.

Figures are embedded as PNG data URIs, so the page can be mailed or archived alone. Each
section is a figure or table of the paper (Figs. 1–4; Supp. Figs. 2–5, 10, 14–19; tables
S1–S4) filled from the analyses of the study that belong to it (by kind, mode, table and
state); an analysis that fits no section is shown under "Further analyses", and a section
without data says so. Every number with a ground truth (simulated datasets) is listed with
its tolerance in "Checks against ground truth".

The page carries a few lines of JavaScript that count the figures that decoded and any script
error into ``data-`` attributes of ``<body>``; the headless-browser test reads them.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

from layerscope._io import write_text

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1.5em 2em;max-width:1200px;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #8e44ad;padding-bottom:.15em;margin-top:2em}
h3{margin:.8em 0 .3em}.cap{color:#444;font-size:.92em;max-width:70em}
figure{display:inline-block;vertical-align:top;margin:.4em .6em .8em 0;max-width:100%}
figure img{max-width:560px;width:100%;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555;max-width:560px}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0 1em}
td,th{border:1px solid #ccc;padding:2px 7px;text-align:right}th{background:#f4f0f7}
td.l,th.l{text-align:left}.ok{color:#17803d;font-weight:600}.bad{color:#b3261e;font-weight:600}
.none{color:#888;font-style:italic}nav a{margin-right:.8em;font-size:.9em}
"""

_SCRIPT = """
(function(){var errs=0;window.addEventListener('error',function(){errs++;document.body.dataset.errors=errs;},true);
window.addEventListener('load',function(){var imgs=document.querySelectorAll('img'),ok=0;
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
document.body.dataset.figures=imgs.length;document.body.dataset.figuresRendered=ok;
document.body.dataset.errors=errs;});})();
"""


def _is(rec, kind, **kw) -> bool:
    if rec["kind"] != kind:
        return False
    opts = rec["provenance"]["parameters"]
    for k, v in kw.items():
        val = (rec.get("state") or "") if k == "state" else opts.get(k)
        if isinstance(v, (tuple, list)):
            if not any(_match(val, x) for x in v):
                return False
        elif not _match(val, v):
            return False
    return True


def _match(val, pattern) -> bool:
    if val is None:
        return False
    return str(pattern).lower() in str(val).lower()


# (section id, title, caption, [(selector, figure keys)])
SECTIONS = [
    ("fig1a", "Fig. 1a: neutron powder diffraction and Rietveld refinement of the pristine LRM",
     "Observed, calculated and difference TOF patterns of the pristine powder with the refined weight "
     "fractions (the paper's inset pie).",
     [(lambda r: _is(r, "neutron", table="S1") or _is(r, "neutron", state="pristine"), ("fit", "fractions"))]),
    ("sfig3", "Supp. Fig. 3: difference Fourier map of the pristine O3' phase",
     "Observed minus calculated scattering-length density of the main layered phase, section through "
     "the TM layer; missing Li (b < 0) shows as negative density.",
     [(lambda r: _is(r, "neutron", table="S1") or _is(r, "neutron", state="pristine"), ("fourier",))]),
    ("fig1b", "Fig. 1b: 4D-STEM of a pristine particle",
     "Virtual bright field, phase map and orientation map from template matching.",
     [(lambda r: _is(r, "fourd", state="pristine"), ("vbf", "phase_map", "orientation_map"))]),
    ("fig1cd", "Fig. 1c, d: HAADF-STEM of the pristine particle; O3' domains A/B/C",
     "Low-magnification image with particles and defects, and the <210> image with its domains.",
     [(lambda r: _is(r, "haadf", mode="lowmag", state="pristine"), ("defects",)),
      (lambda r: _is(r, "haadf", mode="domains", state="pristine"), ("domains",))]),
    ("fig2", "Fig. 2a–d: operando neutron diffraction of the first cycle",
     "(a) contour of the patterns with the voltage profile, (b) phase fractions, (c) d_inter and d_intra "
     "of O3' and O3, (d) DoO, DoD and O vacancy (eq. 1–3). Truth of a simulated experiment dashed.",
     [(lambda r: _is(r, "operando"), ("fig2a", "fig2b", "fig2c", "fig2d"))]),
    ("sfig10", "Supp. Fig. 10: refined patterns of the pouch cell before and after the first charge",
     "Observed, calculated and difference patterns with the reflection positions of every component of the "
     "cell (cathode phases, Al and Cu foils, graphite and the lithiated graphites).",
     [(lambda r: _is(r, "operando"), ("supp_fig10",))]),
    ("fig3", "Fig. 3: in-plane orientation maps along <100>_O3",
     "Orientation maps of a pristine particle, after the first charge to 4.5 V and after 100 cycles.",
     [(lambda r: _is(r, "fourd"), ("orientation_map",))]),
    ("fig4", "Fig. 4: twin-like variants after charge and after cycling",
     "m/n of every unit cell, the variant map and, after 100 cycles, particles with their defects.",
     [(lambda r: _is(r, "haadf", mode="atomic"), ("m_over_n", "variants")),
      (lambda r: _is(r, "haadf", mode="lowmag", state="100"), ("defects",))]),
    ("sfig2", "Supp. Fig. 2: half-cell electrochemistry",
     "Charge/discharge curves, capacity and Coulombic efficiency per cycle, dQ/dV.",
     [(lambda r: _is(r, "cycler", role="half-cell"), ("gcd", "cycling", "dqdv"))]),
    ("sfig4", "Supp. Figs. 4 and 13: EELS Mn L2,3 and O-K",
     "Mn L3/L2 white-line ratio and the valence it implies along the line scan.",
     [(lambda r: _is(r, "eels"), ("eels",))]),
    ("sfig5", "Supp. Figs. 5 and 18: simulated zone-axis diffraction and twin variants",
     "Kinematic electron diffraction of O3', O3 and spinel along the zone axes of the paper and the "
     "(001) and {012} twins overlaid (orange).",
     [(lambda r: _is(r, "kinematic"), None)]),
    ("sfig14", "Supp. Fig. 14: O-K sXAS",
     "Normalised O-K spectra of each state and their integrated intensity between 525 and 535 eV.",
     [(lambda r: _is(r, "xas"), ("xas",))]),
    ("sfig15", "Supp. Fig. 15: long-term cycling and the structure after 100 cycles",
     "Capacity retention of the cell and the Rietveld refinement after 100 cycles.",
     [(lambda r: _is(r, "cycler", role="cycling"), ("cycling",)),
      (lambda r: _is(r, "neutron", table="S3") or _is(r, "neutron", state="100"), ("fit", "fractions"))]),
    ("sfig16", "Supp. Figs. 11, 12 and 16: phase maps after charge, discharge and 100 cycles",
     "4D-STEM phase maps and <210> images of the cycled states.",
     [(lambda r: _is(r, "fourd", state=("charged", "discharged", "100")), ("phase_map",)),
      (lambda r: _is(r, "haadf", mode="domains", state=("charged", "discharged", "100")), ("domains",))]),
    ("sfig17", "Supp. Figs. 1, 17 and 19: spinel shell, lattice values and GPA strain",
     "Spinel shell at the particle edge, and the geometric-phase strain maps (ε_xx, ε_yy) of the "
     "atomic-resolution images.",
     [(lambda r: _is(r, "haadf", mode="shell"), ("shell",)),
      (lambda r: _is(r, "haadf", mode="atomic"), ("strain",))]),
]


def _img(path: Path, caption: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fmt(v, digits=5) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—" if math.isnan(v) else html.escape(str(v))
        if abs(v) < _ZERO:            # a rounding residue of a quantity that is 0 (e.g. −7.9e−20)
            return "0"
        return f"{v:.{digits}g}"
    return html.escape(str(v))


#: |value| below this is printed as 0: no quantity of the report is meaningful at 1e-12
_ZERO = 1e-12


def _value_esd(v, e) -> str:
    """``v`` with its esd in the crystallographer's notation: 0.9719(12) = 0.9719 ± 0.0012."""
    v = float(v)
    e = float(e) if e is not None else float("nan")
    if not (math.isfinite(e) and e > 0) or not math.isfinite(v):
        return _fmt(v)
    first = int(math.floor(math.log10(e)))
    lead = e / 10.0**first
    dec = -first + (1 if lead < 2 else 0)        # two esd digits when they start with 1
    if dec <= 0:
        return f"{_fmt(v)} ± {_fmt(e, 2)}"
    digits = round(e * 10.0**dec)
    if digits >= 100 or (digits >= 20 and lead < 2):  # rounding carried the esd to the next decade
        dec -= 1
        digits = round(e * 10.0**dec)
        if dec <= 0:
            return f"{_fmt(v)} ± {_fmt(e, 2)}"
    val = round(v, dec)
    return f"{0.0 if val == 0 else val:.{dec}f}({digits})"


#: units of the headline numbers by key (suffixes first); a key not listed is dimensionless
_UNIT_SUFFIX = (("_nm", "nm"), ("_px", "px"), ("_mAh", "mAh"), ("_eV", "eV"), ("_keV", "keV"), ("_deg", "°"),
                ("_percent", "%"), ("_angstrom", "Å"), ("_A2", "Å²"), ("_s", "s"), ("_h", "h"), ("_V", "V"))
_UNIT_KEY = {"rwp": "%", "rp": "%", "rwp_median": "%", "d_inter": "Å", "d_intra": "Å", "a": "Å", "b": "Å", "c": "Å",
             "integrals": "arb. units"}


def _unit(key: str) -> str:
    if key in _UNIT_KEY:
        return _UNIT_KEY[key]
    base = key[:-len("_mean")] if key.endswith("_mean") else key
    base = base[:-len("_first")] if base.endswith("_first") else base[:-len("_last")] if base.endswith("_last") else base
    return next((u for suf, u in _UNIT_SUFFIX if base.endswith(suf)), "")


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {html.escape(unit)}" if unit and text not in ("", "—") else text


def _rel(v: str, out: Path) -> str:
    """A path in a summary, relative to the output folder (the report travels with it)."""
    p = Path(v)
    if p.is_absolute():
        try:
            return Path(os.path.relpath(p, out)).as_posix()
        except ValueError:  # another drive (Windows)
            return v
    return v


def _headline(key, v, esd, out: Path) -> str:
    """One headline value: numbers with esd and unit, dicts as 'name value' lists, paths relative."""
    unit = _unit(key)
    if isinstance(v, dict):
        esd = esd if isinstance(esd, dict) else {}
        parts = []
        for k, x in v.items():
            if k == "phase" or str(k).endswith("_esd"):
                continue
            if isinstance(x, dict):        # e.g. the descriptors of each phase
                parts.append(f"<b>{html.escape(str(k))}</b>: " + _headline(k, x, esd.get(k), out))
            else:
                e = esd.get(k, v.get(f"{k}_esd"))
                parts.append(f"{html.escape(str(k))} {_headline(k if not unit else key, x, e, out)}")
        return "; ".join(parts) if parts else '<span class="none">none</span>'
    if isinstance(v, (list, tuple)):
        if not v:
            return '<span class="none">none</span>'
        if all(isinstance(x, str) for x in v):
            return "<br>".join(html.escape(x) for x in v)
        return _with_unit(", ".join(_fmt(float(x)) if isinstance(x, (int, float)) and not isinstance(x, bool)
                                    else html.escape(str(x)) for x in v), unit)
    if isinstance(v, bool) or v is None:
        return _fmt(v)
    if isinstance(v, (int, float)):
        return _with_unit(_value_esd(v, esd) if isinstance(v, float) else _fmt(v), unit)
    if isinstance(v, str) and ("/" in v or "\\" in v):
        return html.escape(_rel(v, out))
    return _fmt(v)


def _table(header, rows, left=1) -> str:
    h = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(c)}</th>' for i, c in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _label(rec) -> str:
    st = f" — {rec['state']}" if rec.get("state") else ""
    return f"{rec['kind']}/{rec['name']}{st}"


def _structure_tables(records, out: Path) -> str:
    parts = []
    for r in records:
        folder = out / r["kind"] / r["name"]
        if not ("structure" in r.get("tables", {}) and "phases" in r.get("tables", {})):
            continue
        tab = r["summary"].get("table") or "—"
        import csv

        with open(folder / "phases.csv") as fh:
            ph = list(csv.DictReader(fh))
        with open(folder / "structure.csv") as fh:
            st = list(csv.DictReader(fh))
        fit = (f"Rwp {r['summary']['rwp']:.2f} %, χ² {r['summary']['chi2']:.3f}" if "rwp" in r["summary"]
               else "reference pattern of the operando series")
        parts.append(f"<h3>Table {html.escape(tab)}: {html.escape(_label(r))} ({fit})</h3>")

        def ve(row, k):
            v, e = row.get(k, ""), row.get(f"{k}_esd", "")
            return _value_esd(v, e if e not in ("", "None") else None) if v not in ("", "None") else ""

        parts.append(_table(["phase", "a (Å)", "b (Å)", "c (Å)", "β (°)", "weight fraction", "R_Bragg"],
                            [[html.escape(p["phase"]), ve(p, "a"), ve(p, "b"), ve(p, "c"), ve(p, "beta"),
                              ve(p, "weight_fraction"), _fmt(float(p["bragg_r"]) if p["bragg_r"] else None, 4)]
                             for p in ph]))
        parts.append(_table(["phase", "site", "Wyckoff", "atom", "x", "y", "z", "occupancy", "B (Å²)"],
                            [[html.escape(s["phase"]), html.escape(s["site"]), html.escape(s["wyckoff"]),
                              html.escape(s["element"])] + [f"{float(s[k]):.5f}" for k in
                                                            ("x", "y", "z", "occupancy", "biso_A2")]
                             for s in st], left=4))
        desc = r["summary"].get("descriptors") or {}
        if desc:
            keys = [k for k in ("DoO", "DoD", "O_vacancy", "d_inter", "d_intra") if any(k in d for d in desc.values())]
            parts.append(_table(["phase"] + keys,
                                [[html.escape(p)] + [_fmt(d.get(k), 5) for k in keys] for p, d in desc.items()]))
    return "".join(parts) or '<p class="none">no neutron refinement in this study</p>'


def _table_s4(records, out: Path) -> str:
    rows = []
    for r in records:
        if r["kind"] == "haadf" and r["provenance"]["parameters"].get("mode") == "lowmag":
            per = r["summary"].get("defects_per_particle", [])
            rows.append([html.escape(_label(r)), str(len(per)), html.escape(", ".join(map(str, per))),
                         _fmt(r["summary"].get("mean_defects_per_particle"), 3)])
    if not rows:
        return '<p class="none">no low-magnification HAADF image in this study</p>'
    return _table(["image", "particles", "defects per particle", "mean"], rows)


def _summary_list(rec, out: Path) -> str:
    """The headline numbers of one analysis: values with their esds (when the summary has
    ``KEY_esd``) and units, nested values as readable lists, paths relative to ``out``."""
    summ = rec["summary"]
    items = []
    for k, v in summ.items():
        if k.endswith("_esd") and k[:-4] in summ:
            continue
        label = next((k[:-len(suf)] for suf, _ in _UNIT_SUFFIX if k.endswith(suf) and len(k) > len(suf)), k)
        items.append(f"<tr><td class='l'>{html.escape(label.replace('_', ' '))}</td>"
                     f"<td class='l'>{_headline(k, v, summ.get(f'{k}_esd'), out)}</td></tr>")
    return f"<table>{''.join(items)}</table>"


def _validation(records) -> str:
    rows = []
    for r in records:
        for v in r.get("validation", []):
            cls = "ok" if v["ok"] else "bad"
            rows.append([html.escape(_label(r)), html.escape(v["quantity"]), _fmt(v["value"]),
                         _fmt(v.get("esd")), _fmt(v["truth"]), _fmt(v["error"], 3), html.escape(v["tolerance"]),
                         f'<span class="{cls}">{"within" if v["ok"] else "OUTSIDE"}</span>',
                         html.escape(v.get("note", ""))])
    if not rows:
        return '<p class="none">no dataset of this study has a ground truth</p>'
    n_ok = sum(v["ok"] for r in records for v in r.get("validation", []))
    head = f"<p>{n_ok} of {len(rows)} checks within tolerance.</p>"
    return head + _table(["analysis", "quantity", "value", "esd", "truth", "error", "tolerance", "", "note"],
                         rows, left=2)


def write_report(study, records, out: Path) -> Path:
    """Write ``out/report.html`` (atomically) from the task records."""
    out = Path(out)
    used = set()
    sections = []
    nav = []
    for sid, title, caption, parts in SECTIONS:
        figs = []
        for sel, keys in parts:
            for r in records:
                if not sel(r):
                    continue
                used.add((r["kind"], r["name"]))
                folder = out / r["kind"] / r["name"]
                names = keys if keys is not None else list(r.get("figures", {}))
                for k in names:
                    rel = r.get("figures", {}).get(k)
                    if rel is None:
                        rel = next((v for kk, v in r.get("figures", {}).items() if kk.startswith(k)), None)
                    if rel and (folder / rel).is_file():
                        figs.append(_img(folder / rel, f"{_label(r)}: {k}"))
        body = "".join(figs) if figs else '<p class="none">no data for this figure in this study</p>'
        sections.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2><p class="cap">{html.escape(caption)}'
                        f"</p>{body}</section>")
        nav.append(f'<a href="#{sid}">{html.escape(title.split(":")[0])}</a>')
    sections.append('<section id="tables"><h2>Tables S1–S3: refined structures</h2>'
                    '<p class="cap">Cells, weight fractions, sites, occupancies and displacement parameters from '
                    "the ex-situ refinements, with esds in brackets, and the descriptors of eq. 1–3.</p>"
                    + _structure_tables(records, out) + "</section>")
    sections.append('<section id="tableS4"><h2>Table S4: defects per particle</h2>'
                    '<p class="cap">Pore/trench defects counted per particle in low-magnification images.</p>'
                    + _table_s4(records, out) + "</section>")
    nav += ['<a href="#tables">Tables S1–S3</a>', '<a href="#tableS4">Table S4</a>']
    others = [r for r in records if (r["kind"], r["name"]) not in used]
    if others:
        body = []
        for r in others:
            folder = out / r["kind"] / r["name"]
            figs = "".join(_img(folder / rel, f"{_label(r)}: {k}") for k, rel in r.get("figures", {}).items()
                           if (folder / rel).is_file())
            body.append(f"<h3>{html.escape(_label(r))}</h3>{figs}")
        sections.append('<section id="other"><h2>Further analyses</h2>' + "".join(body) + "</section>")
        nav.append('<a href="#other">Further</a>')
    # (no run times here: a resumed study gives a byte-identical report)
    summary_rows = [[html.escape(_label(r)), _summary_list(r, out)] for r in records]
    sections.append('<section id="summaries"><h2>Every analysis: headline numbers</h2>'
                    + _table(["analysis", "summary"], summary_rows, left=2) + "</section>")
    sections.append('<section id="checks"><h2>Checks against ground truth</h2><p class="cap">For simulated '
                    "datasets: each refined or measured number beside its truth and the tolerance set for that "
                    "analysis.</p>" + _validation(records) + "</section>")
    nav += ['<a href="#summaries">Summaries</a>', '<a href="#checks">Checks</a>']
    desc = f"<p>{html.escape(study.description)}</p>" if study.description else ""
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(study.title)}</title>'
            f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>"
            f"<h1>{html.escape(study.title)}</h1><p>{html.escape(study.material)} — {len(records)} analyses from "
            f"{html.escape(study.path.name)}; results in results.h5</p>{desc}<nav>{''.join(nav)}</nav>"
            + "".join(sections) + "</body></html>")
    path = out / "report.html"
    return write_text(path, page)
