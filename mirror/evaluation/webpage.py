"""The HTML page's style sheet, heat-map colours and the thumbnail gallery.

Widths are chosen for a 1400 px window: the page is at most 1340 px wide, every table keeps its
columns within that (see tables.py), figures scale down, and the gallery and heat maps wrap onto
more lines rather than widen the page.
"""

from __future__ import annotations

import html
import itertools
from typing import Any

__all__ = ["CSS", "heat_colour", "gallery_html"]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;margin:20px auto;
max-width:1340px;padding:0 14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:30px 0 8px;border-bottom:1px solid #d8dde6}
h3{font-size:15px;margin:18px 0 6px}h4{font-size:14px;margin:8px 0 4px}.meta{color:#5b6475;margin:4px 0 8px}
table{border-collapse:collapse;margin:4px 0 14px;font-size:12.5px}
th,td{border:1px solid #dfe3ea;padding:2px 5px;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f2f4f8}td:first-child,th:first-child{text-align:left}th.det{background:#e4e9f2;text-align:center}
.sep{border-left:2px solid #9aa5b8}td small{display:block;color:#6d7688;font-size:10.5px}
tr:nth-child(even) td{background:#fafbfc}img{max-width:100%;display:block;margin:8px 0}
.top{display:flex;gap:24px;align-items:flex-start}.sum{flex:1;min-width:0}
.sum table{font-size:13px}.sum td{white-space:normal}
.headline{background:#fff6e5;border-left:4px solid #e8a33d;padding:8px 14px;margin:4px 0}
.headline ul{margin:2px 0 6px;padding-left:20px}.headline li{margin:2px 0}
.toc{flex:0 0 230px;background:#f5f7fa;border:1px solid #dfe3ea;padding:8px 12px;font-size:13px}
.toc ol{margin:6px 0 0;padding-left:20px}.toc li{margin:2px 0}a{color:#2456a6}
.maps{display:flex;flex-wrap:wrap;gap:10px 22px}.maps table{font-size:11.5px}
.gal{display:flex;flex-wrap:wrap;gap:6px 10px;margin:4px 0 10px}
figure{margin:0;width:104px;font-size:10.5px;line-height:1.25;color:#3a4252}
figure img{width:104px;height:104px;object-fit:cover;margin:0 0 2px;border:1px solid #c9cfd9}
figure.pair{width:214px}figure.pair div{display:flex;gap:6px}figure.pair img{width:104px;height:104px}
.missing{width:104px;height:104px;background:#eef0f4;color:#7a8394;display:flex;align-items:center;
justify-content:center;text-align:center;border:1px dashed #c9cfd9}
.row-title{font-weight:600;margin:6px 0 2px;font-size:13px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600;font-size:15px;margin:10px 0 6px}
"""

_STOPS = ((0.5, (214, 69, 65)), (0.75, (246, 200, 95)), (1.0, (94, 186, 125)))


def heat_colour(text: str) -> str:
    """Background colour of an AUC cell: red at 0.5 or below, amber at 0.75, green at 1 (light tints)."""
    try:
        value = float(text)
    except ValueError:
        return "#ffffff"
    value = min(max(value, _STOPS[0][0]), 1.0)
    for (lo, a), (hi, b) in itertools.pairwise(_STOPS):
        if value <= hi:
            f = (value - lo) / (hi - lo)
            rgb = [round(x + (y - x) * f) for x, y in zip(a, b, strict=True)]
            break
    tint = [round(255 - (255 - c) * 0.55) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in tint)


def _thumb(entry: dict[str, Any], thumbs: dict[str, str | None]) -> str:
    e = html.escape
    uri = thumbs.get(entry["path"] or "")
    tip = f"{entry['id']} · {entry['path']}"
    if uri is None:
        return f'<div class="missing" title="{e(tip)}">image not in DEST</div>'
    return f'<img src="{uri}" alt="{e(entry["kind"])} {e(entry["id"])}" title="{e(tip)}">'


def _figure(entry: dict[str, Any], thumbs: dict[str, str | None]) -> str:
    e = html.escape
    what = entry["generator"] or "real"
    return (f"<figure>{_thumb(entry, thumbs)}<figcaption><b>P(fake) {entry['p_fake']:.3f}</b><br>"
            f"{e(entry['perturbation'])} · {e(what)}<br>{e(entry['cell'])}</figcaption></figure>")


def gallery_html(doc: dict[str, Any], thumbs: dict[str, str | None], names: dict[str, str]) -> str:
    """Per detector: its most confident misses, then its worst condition's lineages clean vs perturbed."""
    e = html.escape
    parts = ['<p class="meta">Thumbnails of the actual files (hover for the item id). A fake with P(fake) ≤ 0.5 '
             "or a real above it is a miss at the 0.5 rule; the rows show the most confident ones, one per base "
             "image.</p>"]
    for name, r in doc["results"].items():
        g = r["gallery"]
        parts.append(f'<h3 title="{e(name)}">{e(names[name])}</h3>')
        for title, entries in (("Fakes scored most real", g["fakes_scored_real"]),
                               ("Reals scored most fake", g["reals_scored_fake"])):
            parts.append(f'<div class="row-title">{title}</div><div class="gal">'
                         + "".join(_figure(x, thumbs) for x in entries) + "</div>")
        if g["pairs"]:
            parts.append(f'<div class="row-title">Worst condition, {e(g["condition"])}: the same image clean '
                         "(left) and perturbed (right)</div><div class=\"gal\">")
            for p in g["pairs"]:
                c, q = p["clean"], p["perturbed"]
                parts.append(f'<figure class="pair"><div>{_thumb(c, thumbs)}{_thumb(q, thumbs)}</div><figcaption>'
                             f"<b>{p['kind']} · P(fake) {c['p_fake']:.3f} → {q['p_fake']:.3f} ({p['delta']:+.3f})"
                             f"</b><br>{e(q['generator'] or 'real')} · {e(q['cell'])}</figcaption></figure>")
            parts.append("</div>")
    return "".join(parts)
