"""The surprisal page: one self-contained HTML file (inline CSS, no scripts, nothing fetched) with every token
shaded by its cost in bits, the model's top guesses on hover, and each line's total."""

from __future__ import annotations

import html

from lightning_llm.evaluation.inspect.surprisal import TokenSurprisal

_CSS = """
body { font-family: ui-monospace, Menlo, Consolas, monospace; margin: 2em; background: #fff; color: #111; }
h1 { font-family: system-ui, sans-serif; font-size: 1.2em; }
p.note { font-family: system-ui, sans-serif; color: #555; }
table { border-collapse: collapse; }
td.line { white-space: pre-wrap; padding: 2px 12px 2px 0; vertical-align: top; }
td.total { text-align: right; color: #555; font-size: 0.85em; padding: 2px 0 2px 12px; border-left: 1px solid #ddd;
           white-space: nowrap; vertical-align: top; }
span.t { position: relative; border-radius: 2px; }
span.t .tip { display: none; position: absolute; left: 0; top: 1.5em; z-index: 2; background: #222; color: #eee;
              padding: 6px 8px; border-radius: 4px; font-size: 0.8em; white-space: pre; min-width: 14em; }
span.t:hover .tip { display: block; }
.legend span { display: inline-block; width: 3em; text-align: center; font-size: 0.8em; }
"""


def _shade(bits: float | None, scale: float) -> str:
    """White (0 bits) to red (`scale` bits or more)."""
    if bits is None:
        return "#eeeeee"
    x = max(0.0, min(1.0, bits / scale))
    g = int(255 - 200 * x)
    return f"rgb(255,{g},{g})"


def surprisal_page(tokens: list[TokenSurprisal], title: str = "Surprisal", scale_bits: float = 16.0) -> str:
    """The page as a string; `scale_bits`: the cost shaded darkest."""
    lines: list[list[str]] = [[]]
    totals = [0.0]
    for t in tokens:
        start = len(lines) - 1  # a token's bits count on the line where it starts (a newline ends its line)
        for j, part in enumerate(t.text.split("\n")):
            if j:
                lines.append([])
                totals.append(0.0)
            if not part and j:
                continue
            tip = (f"{t.bits:.2f} bits\n" if t.bits is not None else "first token: not predicted\n") + "\n".join(
                f"{p:6.1%}  {alt!r}" for alt, p in t.top)
            lines[-1].append(f'<span class="t" style="background:{_shade(t.bits, scale_bits)}">{html.escape(part)}'
                             f'<span class="tip">{html.escape(tip)}</span></span>')
        if t.bits is not None:
            totals[start] += t.bits
    if len(lines) > 1 and not lines[-1]:  # the text ended with a newline
        lines.pop()
        totals.pop()
    rows = "\n".join(f'<tr><td class="line">{"".join(parts) or "&nbsp;"}</td><td class="total">{total:.1f} bits</td>'
                     f"</tr>" for parts, total in zip(lines, totals, strict=True))
    known = [t.bits for t in tokens if t.bits is not None]
    summary = (f"{len(tokens)} tokens, {sum(known):.1f} bits in all, {sum(known) / max(1, len(known)):.2f} bits per "
               "predicted token")
    legend = "".join(f'<span style="background:{_shade(b, scale_bits)}">{b:g}</span>'
                     for b in (0, scale_bits / 4, scale_bits / 2, 3 * scale_bits / 4, scale_bits))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="note">{summary}. Hover a token for its cost and the model\'s top guesses there.</p>'
            f'<p class="legend">bits: {legend}</p><table>{rows}</table></body></html>\n')
