"""The status page's inline stylesheet and refresh script, and the CSP that allows just them.

Apart from page.py so that the daemon can send the header without importing
the page's renderer, which is loaded only when the page is first asked for
(idle RSS).
"""

from __future__ import annotations

import base64
import hashlib

REFRESH_SECONDS = 5

STYLE = """
:root{--bg:#0f1419;--panel:#171d24;--line:#2a323c;--fg:#d8dee6;--dim:#8a96a3;--ok:#3fb950;--warn:#d29922;
--bad:#f85149;--accent:#58a6ff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif}
header{display:flex;flex-wrap:wrap;align-items:center;gap:16px;padding:12px 20px;border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
header nav a{color:var(--accent);margin-right:12px;text-decoration:none}
.dim{color:var(--dim)}
main{padding:12px 20px;display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
section{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px 12px;overflow-x:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{padding:3px 8px;text-align:right;white-space:nowrap;border-bottom:1px solid var(--line)}
th{color:var(--dim);font-weight:500}
th:first-child,td:first-child{text-align:left}
td:first-child{white-space:normal;overflow-wrap:break-word;min-width:7em;max-width:360px}
td.err{text-align:left;white-space:normal;max-width:420px;color:var(--bad)}
.score{font-size:28px;font-weight:700;padding:2px 12px;border-radius:6px;border:2px solid}
.good{color:var(--ok);border-color:var(--ok)}.fair{color:var(--warn);border-color:var(--warn)}
.poor{color:var(--bad);border-color:var(--bad)}
.up{color:var(--ok);font-weight:600}.down{color:var(--bad);font-weight:700}
ul.reasons{margin:0;padding-left:18px}
svg.spark{width:96px;height:20px;vertical-align:middle}
svg.spark path{fill:none;stroke:var(--accent);stroke-width:1.5}
svg.spark.p99 path{stroke:var(--warn)}
svg.spark.bad path{stroke:var(--bad)}
svg.bars{width:100%;height:auto}
svg.bars text{fill:var(--fg);font-size:11px}
svg.bars .before{fill:#6e7681}svg.bars .after{fill:var(--accent)}svg.bars .worse{fill:var(--bad)}
#refresh{font-size:12px}
""".strip()

SCRIPT = """
(function(){
  var note = document.getElementById("refresh");
  function swap(html){
    var doc = new DOMParser().parseFromString(html, "text/html");
    ["main", "header"].forEach(function(tag){
      var fresh = doc.querySelector(tag), old = document.querySelector(tag);
      if (fresh && old) { old.replaceWith(fresh); }
    });
    note = document.getElementById("refresh");
  }
  function tick(){
    if (document.visibilityState === "hidden") { return; }
    fetch(location.href, {headers: {"Accept": "text/html"}, cache: "no-store"})
      .then(function(r){ if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
      .then(swap)
      .catch(function(e){ if (note) { note.textContent = "refresh failed: " + e.message; } });
  }
  setInterval(tick, REFRESH_MS);
})();
""".strip().replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing but this page's own style, script and same-origin fetches; images only as data: (none today).
META_CSP = (f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; "
            "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'")
CSP = META_CSP + "; frame-ancestors 'none'"  # the header only: a meta tag cannot carry frame-ancestors
