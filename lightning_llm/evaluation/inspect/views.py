"""Interactive pages of the attention maps and the logit lens: one self-contained HTML file each (inline CSS and
script, the numbers as JSON inside, nothing fetched; opens from file://), the text as tokens.

attention.html: pick a layer and a head (or all heads, averaged), hover or click a token and the earlier tokens are
shaded by its attention over them; each head's entropy in a table. logit_lens.html: a table of layers x positions,
the top guess's text in each cell shaded by its probability, its top-k on hover, the true next token marked where
a layer gets it right. A window of positions and a range of layers keep a real model (30 layers, 49k vocabulary)
fast and readable.
"""

from __future__ import annotations

import html
import json

import torch

from lightning_llm.evaluation.inspect.attention import attention_entropy

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #111; background: #fff; }
h1 { font-size: 1.15em; } p.note { color: #555; font-size: 0.9em; } .ctl { margin: 0.6em 0; }
#text { font-family: ui-monospace, Menlo, Consolas, monospace; line-height: 1.9; white-space: pre-wrap; }
.tok { border-radius: 2px; padding: 1px 0; cursor: pointer; } .tok.sel { outline: 2px solid #d33; }
table { border-collapse: collapse; font-size: 0.8em; } td, th { border: 1px solid #ddd; padding: 2px 4px; }
th { background: #f6f6f6; font-weight: normal; } td.num { text-align: right; }
table.lens td { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; max-width: 7em;
                overflow: hidden; text-overflow: ellipsis; cursor: default; }
table.lens td.hit { outline: 2px solid #1a7f37; outline-offset: -2px; font-weight: bold; }
table.lens th.in { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; }
#tip { display: none; position: fixed; background: #222; color: #eee; padding: 6px 8px; border-radius: 4px;
       font: 0.8em ui-monospace, Menlo, Consolas, monospace; white-space: pre; z-index: 9; pointer-events: none; }
"""

_ATTENTION_JS = """
const D = JSON.parse(document.getElementById('data').textContent);
const text = document.getElementById('text'), layerSel = document.getElementById('layer'),
      headSel = document.getElementById('head');
let selected = D.tokens.length - 1;
D.layers.forEach((l, i) => layerSel.add(new Option('layer ' + l, i)));
headSel.add(new Option('all heads (mean)', -1));
for (let h = 0; h < D.heads; h++) headSel.add(new Option('head ' + h, h));
D.tokens.forEach((t, i) => {
  const s = document.createElement('span');
  s.className = 'tok'; s.dataset.pos = i; s.textContent = t.replace(/\\n/g, '\\u21b5\\n');
  s.addEventListener('mouseover', () => { selected = i; shade(); });
  s.addEventListener('click', () => { selected = i; shade(); });
  text.appendChild(s);
});
function row(layer, head, q) {  // attention of query q over positions 0..q
  if (head >= 0) return D.attention[layer][head][q];
  const out = new Array(q + 1).fill(0);
  for (let h = 0; h < D.heads; h++) D.attention[layer][h][q].forEach((v, k) => out[k] += v / D.heads);
  return out;
}
function shade() {
  const w = row(+layerSel.value, +headSel.value, selected), top = Math.max(...w.slice(0, selected + 1));
  text.querySelectorAll('.tok').forEach((s, i) => {
    const x = i <= selected ? w[i] / (top || 1) : 0;
    s.style.background = i <= selected ? `rgba(31,119,180,${(0.08 + 0.85 * x).toFixed(3)})` : 'transparent';
    s.classList.toggle('sel', i === selected);
    s.title = i <= selected ?
      (100 * w[i]).toFixed(1) + '% of the attention of ' + JSON.stringify(D.tokens[selected]) : '';
  });
  document.getElementById('who').textContent = JSON.stringify(D.tokens[selected]);
}
layerSel.addEventListener('change', shade); headSel.addEventListener('change', shade);
layerSel.value = D.layers.length - 1; shade();
"""

_LENS_JS = """
const D = JSON.parse(document.getElementById('data').textContent), tip = document.getElementById('tip');
document.querySelectorAll('table.lens td').forEach(td => {
  td.addEventListener('mouseover', e => {
    const c = D.cells[+td.dataset.l][+td.dataset.p];
    tip.textContent = 'layer ' + D.layers[+td.dataset.l] + ', after ' + JSON.stringify(D.tokens[+td.dataset.p]) +
      (D.next[+td.dataset.p] === null ? '' : ' (true next: ' + JSON.stringify(D.next[+td.dataset.p]) + ')') + '\\n' +
      c.map(([t, p]) => (100 * p).toFixed(1).padStart(5) + '%  ' + JSON.stringify(t)).join('\\n');
    tip.style.display = 'block'; tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
  });
  td.addEventListener('mouseout', () => { tip.style.display = 'none'; });
});
"""


def window(n_tokens: int, max_tokens: int) -> tuple[int, int]:
    """The positions shown: the last `max_tokens` (the end of a text is where the model has the most context)."""
    return max(0, n_tokens - max_tokens), n_tokens


def layer_range(n_layers: int, layers: list[int] | None) -> list[int]:
    if not layers:
        return list(range(n_layers))
    bad = [i for i in layers if not -n_layers <= i < n_layers]
    if bad:
        from lightning_llm.errors import UserError

        raise UserError(f"views.layers={layers}: the model has layers 0..{n_layers - 1}")
    return sorted({i % n_layers for i in layers})


def attention_data(maps: torch.Tensor, tokens: list[str], max_tokens: int = 64,
                   layers: list[int] | None = None) -> dict:
    """What attention.html shows: for each chosen layer and head, each shown query's attention over the shown
    positions up to itself (the attention to tokens before the window is left out and named in `before`)."""
    start, end = window(len(tokens), max_tokens)
    chosen = layer_range(maps.shape[0], layers)
    entropy = attention_entropy(maps)
    return {
        "tokens": tokens[start:end], "offset": start, "layers": chosen, "heads": maps.shape[1],
        "attention": [[[[round(float(v), 6) for v in maps[layer, h, q, start:q + 1]] for q in range(start, end)]
                       for h in range(maps.shape[1])] for layer in chosen],
        "before": [[[round(float(maps[layer, h, q, :start].sum()), 6) for q in range(start, end)]
                    for h in range(maps.shape[1])] for layer in chosen],
        "entropy_bits": [[round(float(x), 6) for x in entropy[layer]] for layer in chosen],
    }


def attention_page(data: dict, title: str = "Attention") -> str:
    cut = (f" Showing tokens {data['offset']}..{data['offset'] + len(data['tokens']) - 1} of the text (the window);"
           " the attention to earlier tokens is not shaded." if data["offset"] else "")
    heads = "".join(f"<th>head {h}</th>" for h in range(data["heads"]))
    rows = "".join(f"<tr><th>layer {layer}</th>" + "".join(f'<td class="num">{b:.2f}</td>' for b in bits) + "</tr>"
                   for layer, bits in zip(data["layers"], data["entropy_bits"], strict=True))
    body = (f'<p class="note">Hover or click a token: the tokens before it are shaded by its attention over them '
            f'(darkest: the most attended).{cut}</p>'
            '<div class="ctl"><select id="layer"></select> <select id="head"></select> '
            'attention of <b id="who"></b></div><div id="text"></div>'
            f"<h2 style=\"font-size:1em\">Mean attention entropy (bits) of each head</h2>"
            f"<table><tr><th></th>{heads}</tr>{rows}</table>")
    return _page(title, body, data, _ATTENTION_JS)


def lens_data(lens: torch.Tensor, tokenizer, ids: list[int], top_k: int = 5, max_tokens: int = 64,
              layers: list[int] | None = None) -> dict:
    """What logit_lens.html shows: each chosen layer's top-k next-token guesses (text, probability) at each shown
    position, the true next token, and whether the top guess is it."""
    start, end = window(len(ids), max_tokens)
    chosen = layer_range(lens.shape[0], layers)
    probs, top = lens[chosen, start:end].exp().topk(top_k, dim=-1)
    decode = {}

    def text(i: int) -> str:
        if i not in decode:
            decode[i] = tokenizer.decode([i])
        return decode[i]

    nxt = [ids[p + 1] if p + 1 < len(ids) else None for p in range(start, end)]
    return {
        "tokens": [text(i) for i in ids[start:end]], "offset": start, "layers": chosen,
        "next": [None if i is None else text(i) for i in nxt],
        "cells": [[[[text(int(t)), round(float(p), 6)] for t, p in zip(top[li, pi], probs[li, pi], strict=True)]
                   for pi in range(end - start)] for li in range(len(chosen))],
        "hit": [[nxt[pi] is not None and int(top[li, pi, 0]) == nxt[pi] for pi in range(end - start)]
                for li in range(len(chosen))],
    }


def lens_page(data: dict, title: str = "Logit lens") -> str:
    cut = (f" Showing positions {data['offset']}..{data['offset'] + len(data['tokens']) - 1} (the window)."
           if data["offset"] else "")
    head = "".join(f'<th class="in">{html.escape(_show(t))}</th>' for t in data["tokens"])
    rows = []
    for li, layer in enumerate(data["layers"]):
        cells = []
        for pi, cell in enumerate(data["cells"][li]):
            word, p = cell[0]
            hit = ' class="hit"' if data["hit"][li][pi] else ""
            color = f"rgba(31,119,180,{0.05 + 0.9 * p:.3f})"
            fg = "#fff" if p > 0.55 else "#111"
            cells.append(f'<td{hit} data-l="{li}" data-p="{pi}" style="background:{color};color:{fg}">'
                         f"{html.escape(_show(word))}</td>")
        rows.append(f"<tr><th>layer {layer}</th>{''.join(cells)}</tr>")
    body = (f'<p class="note">Each cell: the top next-token guess after that layer (read through the final norm and '
            f'the head), shaded by its probability; hover for the top {len(data["cells"][0][0])}; outlined where it '
            f"is the true next token.{cut}</p><div style=\"overflow-x:auto\"><table class=\"lens\">"
            f"<tr><th>after</th>{head}</tr>{''.join(rows)}</table></div>")
    return _page(title, body, data, _LENS_JS)


def _show(token: str) -> str:
    """A token's text as a cell shows it: a newline as an arrow, a token of spaces as visible spaces."""
    token = token.replace("\n", "\u21b5")
    return token if token.strip() else token.replace(" ", "\u2423")


def _page(title: str, body: str, data: dict, script: str) -> str:
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")  # no early end of the script element
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}<div id=\"tip\"></div>"
            f'<script id="data" type="application/json">{payload}</script><script>{script}</script></body></html>\n')
