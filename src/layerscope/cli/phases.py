"""``layerscope phases``: list the built-in crystal presets."""

from __future__ import annotations


def _phases(args) -> int:
    from layerscope.crystal.presets import PRESET_DESCRIPTIONS, list_presets, preset
    from layerscope.crystal.settings import d_inter_layer, d_intra_layer

    for name in list_presets():
        print(f"{name:20s} {PRESET_DESCRIPTIONS[name]}")
        if args.verbose:
            for p in preset(name).phases:
                a, b, c, al, be, ga = p.cell
                extra = ""
                if p.space_group.number in (12, 166):
                    extra = f"  d_inter {d_inter_layer(p):.4f} Å  d_intra {d_intra_layer(p):.4f} Å"
                print(f"    {p.name:9s} {p.spacegroup:12s} a={a:.4f} b={b:.4f} c={c:.4f} "
                      f"α={al:.3f} β={be:.3f} γ={ga:.3f}  ρ={p.density_g_cm3:.3f} g/cm³{extra}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("phases", help="list the built-in crystal presets")
    p.add_argument("-v", "--verbose", action="store_true", help="show each phase's cell and layer spacings")
    p.set_defaults(func=_phases)
