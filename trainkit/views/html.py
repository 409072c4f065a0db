"""Building blocks of trainkit's one-file HTML pages: escaping, tables, SVG line charts, pixel heatmaps.

Everything is inline: charts are SVG written here, heatmaps are PNG data URIs
(one pixel per cell, scaled up by CSS), behaviour is a few lines of vanilla
JavaScript (:data:`SCRIPT`) that reads one JSON block of the page. Nothing is
fetched from the network; user text (names, config values, class names) goes
through :func:`esc` or :func:`json_for_script`.
"""
from __future__ import annotations

import base64
import html
import json
import math
import shutil
import struct
import subprocess
import zlib

import numpy as np

__all__ = ["esc", "json_for_script", "table", "line_chart", "heatmap_png", "color_scale", "dot_svg", "CSS",
           "SCRIPT", "nice_ticks"]


def esc(text) -> str:
    """HTML-escape any value (quotes included, for attributes)."""
    return html.escape("" if text is None else str(text), quote=True)


def json_for_script(data) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left to close the tag."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def table(headers: list[str], rows: list[list], cls: str = "", numeric_from: int = 1) -> str:
    """A ``<table>``; cells are escaped unless given as ``("html", markup)``."""
    def cell(v, tag, i):
        align = ' class="num"' if i >= numeric_from and tag == "td" else ""
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "html":
            return f"<{tag}{align}>{v[1]}</{tag}>"
        return f"<{tag}{align}>{esc(v)}</{tag}>"
    head = "".join(cell(h, "th", i) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(v, "td", i) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9 and len(out) < 50:
        out.append(round(v, 12))
        v += step
    return out


def _fmt_tick(v: float) -> str:
    return f"{v:.4g}"


def line_chart(chart_id: str, title: str, epochs: list[int], series: list[dict], percent: bool = False,
               width: int = 520, height: int = 280) -> str:
    """An SVG line chart over epochs with a hover cursor (see :data:`SCRIPT`).

    Args:
        series: ``{"name", "values" (one per epoch, None for gaps), "color", "dashed"}``.
        percent: values are shares shown as percentages on the axis.
    """
    ml, mr, mt, mb = 56, 12, 28, 36
    pw, ph = width - ml - mr, height - mt - mb
    pts = [v for s in series for v in s["values"] if isinstance(v, (int, float)) and math.isfinite(v)]
    if not epochs or not pts:
        return f'<p class="muted">{esc(title)}: no values</p>'
    lo, hi = min(pts), max(pts)
    ticks = nice_ticks(lo, hi)
    lo, hi = min(ticks[0], lo), max(ticks[-1], hi)
    e0, e1 = epochs[0], epochs[-1]

    def x(e):
        return ml + (pw * (e - e0) / (e1 - e0) if e1 > e0 else pw / 2)

    def y(v):
        return mt + ph * (1 - (v - lo) / (hi - lo if hi > lo else 1))

    parts = [f'<svg class="tk-chart" id="{esc(chart_id)}" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title)}" data-ml="{ml}" data-pw="{pw}" '
             f'data-mt="{mt}" data-ph="{ph}">',
             f'<text x="{ml}" y="16" class="ct">{esc(title)}</text>']
    for t in ticks:
        yy = y(t)
        label = f"{100 * t:.0f}%" if percent else _fmt_tick(t)
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>'
                     f'<text x="{ml - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">{esc(label)}</text>')
    for e in nice_ticks(e0, e1, 8) if e1 > e0 else [e0]:
        if e0 <= e <= e1 and float(e).is_integer():
            parts.append(f'<text x="{x(e):.1f}" y="{mt + ph + 16}" class="tick" text-anchor="middle">{int(e)}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 4}" class="tick" text-anchor="middle">epoch</text>')
    for s in series:
        run: list[str] = []
        segments = []
        for e, v in zip(epochs, s["values"]):
            if isinstance(v, (int, float)) and math.isfinite(v):
                run.append(f"{x(e):.1f},{y(v):.1f}")
            elif run:
                segments.append(run)
                run = []
        if run:
            segments.append(run)
        dash = ' stroke-dasharray="5 4"' if s.get("dashed") else ""
        for seg in segments:
            parts.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{esc(s["color"])}" '
                         f'stroke-width="2"{dash}/>')
            if len(seg) == 1 or not s.get("dashed"):
                for p in seg:
                    cx, cy = p.split(",")
                    parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{esc(s["color"])}"/>')
    lx = ml + 8
    for s in series:
        dash = ' stroke-dasharray="5 4"' if s.get("dashed") else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{mt + 8}" y2="{mt + 8}" stroke="{esc(s["color"])}" '
                     f'stroke-width="2"{dash}/><text x="{lx + 22}" y="{mt + 12}" class="tick">{esc(s["name"])}</text>')
        lx += 30 + 7 * len(s["name"])
    parts.append(f'<line class="cursor" x1="0" x2="0" y1="{mt}" y2="{mt + ph}" visibility="hidden"/>'
                 f'<rect class="hit" x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="transparent"/></svg>')
    return "".join(parts)


def _viridis(values: np.ndarray) -> np.ndarray:
    """RGB (uint8) of values in [0, 1] on matplotlib's viridis map."""
    from matplotlib import colormaps

    return (colormaps["viridis"](values)[..., :3] * 255).round().astype(np.uint8)


def color_scale(vmin: float, vmax: float) -> str:
    """A small horizontal viridis bar, as a PNG data URI."""
    ramp = np.linspace(0, 1, 64)[None, :]
    return _png_uri(_viridis(ramp))


def heatmap_png(matrix: np.ndarray, vmin: float, vmax: float) -> str:
    """One pixel per cell (viridis between ``vmin`` and ``vmax``, NaN light grey), as a PNG data URI."""
    m = np.asarray(matrix, dtype=np.float64)
    scaled = np.clip((m - vmin) / (vmax - vmin if vmax > vmin else 1.0), 0, 1)
    rgb = _viridis(np.nan_to_num(scaled))
    rgb[~np.isfinite(m)] = (235, 235, 235)
    return _png_uri(rgb)


def _png_uri(rgb: np.ndarray) -> str:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def dot_svg(dot_text: str, timeout: float = 60) -> str | None:
    """The DOT text rendered to inline SVG by Graphviz, or None when ``dot`` is missing or fails.

    The XML prolog and doctype are dropped (not allowed inside HTML); Graphviz
    escapes label text itself, and the output refers to nothing outside.
    """
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    svg = proc.stdout.decode("utf-8", errors="replace")
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:18px 24px 60px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
h3{font-size:14px;margin:14px 0 6px}
.muted{color:#6b7280}.card{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:12px 16px;margin:10px 0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;font-size:13px}
.kv div:nth-child(odd){color:#6b7280}
.headline{font-size:18px;font-weight:600}
table{border-collapse:collapse;font-size:12.5px;background:#fff}
th,td{border:1px solid #e2e5ea;padding:3px 7px;text-align:left}th{background:#f0f2f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:420px;overflow:auto;display:inline-block;max-width:100%}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.tk-chart{background:#fff;border:1px solid #e2e5ea;border-radius:8px}
.tk-chart .grid{stroke:#eceff3}.tk-chart .tick{font-size:11px;fill:#4b5563}.tk-chart .ct{font-size:13px;font-weight:600;fill:#1d2330}
.tk-chart .cursor{stroke:#9aa3af;stroke-width:1}
#tip{position:fixed;pointer-events:none;background:#1d2330;color:#fff;font-size:12px;padding:6px 8px;border-radius:5px;
white-space:pre;display:none;z-index:10;line-height:1.35}
.warn{border-left:4px solid #e0a100;background:#fff8e6;padding:8px 12px;margin:8px 0;font-size:13px}
.warn b{text-transform:uppercase;font-size:11px;letter-spacing:.04em;color:#8a6100}
.ok{border-left:4px solid #2f9e44;background:#ebfbee;padding:8px 12px;font-size:13px}
.heats{display:flex;flex-wrap:wrap;gap:18px}
.heat{display:grid;grid-template-columns:max-content auto;gap:0 6px;align-items:start}
.heat .yl{font-size:11px;color:#4b5563;text-align:right;display:flex;flex-direction:column}
.heat .yl span{display:block;overflow:hidden;white-space:nowrap}
.heat-fig{margin:0}.heat img{image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid #d6dae0;display:block}
.heat .xl{grid-column:2;font-size:11px;color:#4b5563;display:flex;justify-content:space-between}
.heat .scale{grid-column:2;font-size:11px;color:#4b5563;display:flex;align-items:center;gap:4px;margin-top:3px}
.heat .scale img{height:8px;width:90px;border:0}
pre{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:10px 12px;font-size:12px;overflow:auto;max-height:480px}
.graph svg{max-width:100%;height:auto}
nav a{margin-right:12px;font-size:13px;color:#2563eb;text-decoration:none}
"""

#: Hover behaviour: a cursor and the epoch's values on the curves, the cell's value on heatmaps.
SCRIPT = r"""
(function(){
  var node=document.getElementById('tk-data'); if(!node){return;}
  var data=JSON.parse(node.textContent); var tip=document.getElementById('tip');
  function show(ev,text){tip.textContent=text;tip.style.display='block';
    var x=ev.clientX+14,y=ev.clientY+14; if(x+tip.offsetWidth>window.innerWidth){x=ev.clientX-tip.offsetWidth-10;}
    if(y+tip.offsetHeight>window.innerHeight){y=ev.clientY-tip.offsetHeight-10;}
    tip.style.left=x+'px';tip.style.top=y+'px';}
  function hide(){tip.style.display='none';}
  function fmt(k,v){if(v===null||v===undefined){return '-';}
    if(/_acc$/.test(k)){return (100*v).toFixed(2)+'%';} if(typeof v==='number'){return Number(v.toPrecision(5)).toString();}
    return String(v);}
  var rows=data.rows||[];
  Array.prototype.forEach.call(document.querySelectorAll('svg.tk-chart'),function(svg){
    var ml=+svg.dataset.ml,pw=+svg.dataset.pw,cur=svg.querySelector('.cursor'),hit=svg.querySelector('.hit');
    if(!hit||!rows.length){return;}
    var e0=rows[0].epoch,e1=rows[rows.length-1].epoch;
    hit.addEventListener('mousemove',function(ev){
      var box=svg.getBoundingClientRect(),scale=box.width/svg.viewBox.baseVal.width;
      var ux=(ev.clientX-box.left)/scale,f=(ux-ml)/pw,target=e0+f*(e1-e0),best=rows[0];
      rows.forEach(function(r){if(Math.abs(r.epoch-target)<Math.abs(best.epoch-target)){best=r;}});
      var cx=e1>e0?ml+pw*(best.epoch-e0)/(e1-e0):ml+pw/2; cur.setAttribute('x1',cx);cur.setAttribute('x2',cx);
      cur.setAttribute('visibility','visible');
      var lines=['epoch '+best.epoch]; (data.columns||[]).forEach(function(c){if(c!=='epoch'){lines.push(c+': '+fmt(c,best[c]));}});
      show(ev,lines.join('\n'));});
    hit.addEventListener('mouseleave',function(){cur.setAttribute('visibility','hidden');hide();});
  });
  var heat=data.heat||{};
  Array.prototype.forEach.call(document.querySelectorAll('img.tk-heat'),function(img){
    var p=heat[img.dataset.panel]; if(!p){return;}
    img.addEventListener('mousemove',function(ev){
      var box=img.getBoundingClientRect(),j=Math.floor((ev.clientX-box.left)/box.width*p.epochs.length),
          i=Math.floor((ev.clientY-box.top)/box.height*p.labels.length);
      if(i<0||j<0||i>=p.labels.length||j>=p.epochs.length){hide();return;}
      var v=p.values[i][j]; show(ev,p.labels[i]+'\n'+(p.x||'epoch')+' '+p.epochs[j]+'\n'+p.title+': '+(v===null?'-':Number(v.toPrecision(4)).toString()));});
    img.addEventListener('mouseleave',hide);
  });
})();
"""
