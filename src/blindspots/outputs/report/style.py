"""The report's stylesheet, inlined into the page so it needs no other file."""

STYLESHEET = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --accent: #c2410c; --soft: #fff7ed; --bg: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 28px; margin: 4px 0 12px; }
h2 { font-size: 21px; margin: 36px 0 6px; }
h3 { font-size: 15px; margin: 0 0 8px; }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f1f5f9;
       padding: 1px 5px; border-radius: 4px; overflow-wrap: anywhere; }
.eyebrow { text-transform: uppercase; letter-spacing: .08em; font-size: 12px; color: var(--muted); margin: 0; }
.muted { color: var(--muted); }
.note { background: #fef9c3; border: 1px solid #fde047; padding: 8px 12px; border-radius: 8px; }
.count { background: var(--accent); color: white; border-radius: 999px; padding: 1px 10px; font-size: 14px;
         vertical-align: middle; }
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin: 8px 0; }
.fact { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; }
.fact .value { font-size: 20px; font-weight: 650; }
.fact .label { font-size: 12px; color: var(--muted); }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px; margin-top: 14px; }
.columns > div { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; padding: 4px 8px 4px 0; vertical-align: top; overflow-wrap: anywhere; }
table.kv th { font-weight: 600; white-space: nowrap; }
table.kv td.rate { white-space: nowrap; }
.facts-line { margin: 0 0 6px; color: #334155; }
table.overview { background: white; border: 1px solid var(--line); border-radius: 10px; margin-top: 8px; }
table.overview th { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
                    padding: 8px 10px; border-bottom: 1px solid var(--line); }
table.overview td { padding: 6px 10px; border-top: 1px solid var(--line); vertical-align: middle; }
table.overview th, table.overview td { overflow-wrap: normal; }
table.overview td.id, table.overview td.rate { white-space: nowrap; }
table.overview td.headline { font-weight: 600; }
table.overview a { color: inherit; }
.strip { display: flex; gap: 4px; }
.strip .cell { width: 44px; }
.strip .cell span { display: none; }
.interval { color: #334155; }
.howto { background: var(--soft); border: 1px solid #fed7aa; border-radius: 10px; padding: 8px 12px; margin: 8px 0; }
.legend { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 4px 18px;
          font-size: 12.5px; color: #334155; margin: 8px 0 4px; }
.legend dt { font-weight: 700; display: inline; }
.legend dt::after { content: ": "; }
.legend dd { display: inline; margin: 0; }
.bug { background: white; border: 1px solid var(--line); border-left: 5px solid var(--accent);
       border-radius: 12px; padding: 16px 20px; margin: 16px 0; }
.bug header { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.bug h3 { font-size: 19px; margin: 0; overflow-wrap: anywhere; }
.bug h4 { font-size: 14px; margin: 10px 0 4px; }
.bug h5 { font-size: 13px; margin: 8px 0 2px; }
.bugid { color: var(--accent); font-weight: 700; font-size: 17px; font-family: ui-monospace, Menlo, monospace; }
.top { margin-left: auto; font-size: 12.5px; color: var(--muted); }
.tag { background: #f1f5f9; border-radius: 999px; padding: 1px 10px; font-size: 12.5px; color: #334155; }
.called ul { list-style: none; padding: 0; margin: 0; font-size: 12.5px; }
.called li { display: grid; grid-template-columns: 90px 140px auto; gap: 8px; align-items: center; }
.called .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.called .bar { background: #f1f5f9; height: 10px; border-radius: 5px; overflow: hidden; }
.called .bar span { display: block; height: 100%; background: var(--accent); }
.history { border-top: 1px solid var(--line); margin-top: 12px; }
.history p { margin: 4px 0; }
.stats { display: flex; flex-wrap: wrap; gap: 6px 26px; margin: 10px 0; }
.stats dt { font-size: 11.5px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.stats dd { margin: 0; font-size: 16px; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.chart { max-width: 100%; height: auto; }
.grids { display: grid; grid-template-columns: 2fr 1fr 1.3fr; gap: 18px; margin-top: 10px; }
@media (max-width: 760px) { .grids { grid-template-columns: 1fr; } }
.grid { margin: 0; }
.grid figcaption { font-size: 13px; font-weight: 600; margin-bottom: 6px; }
.cells { display: grid; grid-template-columns: repeat(auto-fill, minmax(72px, 1fr)); gap: 6px; }
.cell { display: flex; flex-direction: column; align-items: center; font-size: 11px; color: var(--muted); }
.cell img { width: 100%; aspect-ratio: 1; object-fit: cover; border-radius: 6px; border: 2px solid transparent; }
.cell.pixels img { image-rendering: pixelated; }
.cell.fail img { border-color: var(--accent); }
.cell.fail span { color: var(--accent); }
.cell span { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.phrased { margin: 2px 0 8px; color: var(--muted); font-size: 14px; }
.cells.captioned { grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); }
.captioned-cell .caption { margin: 4px 0 0; font-size: 12px; line-height: 1.3; color: var(--muted); }
.standing.above-noise { color: var(--accent); font-weight: 600; }
table.remainder td, table.remainder th { padding: 4px 10px 4px 0; text-align: left; vertical-align: top; }
.empty { color: var(--muted); font-style: italic; }
details { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 10px 16px; }
summary { cursor: pointer; font-weight: 600; font-size: 16px; }
.scroll { overflow-x: auto; }
table.rejected, table.transfer { margin-top: 10px; }
table.rejected tr, table.transfer tr { border-top: 1px solid var(--line); }
.verdict { font-weight: 600; }
section > h3 { margin-top: 22px; }
table.transfer tr.baseline th { font-weight: 400; color: var(--muted); }
table.transfer tr.hard { border-top: 2px solid var(--ink); }
footer { margin-top: 40px; font-size: 12.5px; color: var(--muted); }
"""
