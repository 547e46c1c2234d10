// Hand-drawn SVG: the budget gauge and horizontal bar charts. Widths are percentages, so text keeps its size at
// any screen width; every figure is also written out as text, so nothing depends on colour.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const pct = (part, whole) => (whole > 0 ? Math.min(100, Math.max(0, (part / whole) * 100)) : 0);

/** Usd strings ("1.500000") to a display amount; the exact string stays in the text. */
export const usd = (s) => (s === null || s === undefined ? 'none' : `$${s}`);

/**
 * The budget gauge: spent (solid), held (hatched) and remaining (empty) along one bar, with a text legend.
 * Returns the sentence that describes it.
 */
export function drawGauge(container, t) {
  container.replaceChildren();
  const budget = t.monthlyBudgetUsd === null ? null : Number(t.monthlyBudgetUsd);
  const spent = Number(t.spentThisMonthUsd);
  const held = Number(t.heldUsd);
  const text =
    budget === null
      ? `No monthly budget. Spent ${usd(t.spentThisMonthUsd)}, held ${usd(t.heldUsd)} by running requests.`
      : `Spent ${usd(t.spentThisMonthUsd)} (${pct(spent, budget).toFixed(1)}%), held ${usd(t.heldUsd)}, ` +
        `remaining ${usd(t.remainingThisMonthUsd)} of a ${usd(t.monthlyBudgetUsd)} budget.`;
  if (budget === null) return text;

  const g = svg('svg', { width: '100%', height: 28, role: 'img', 'aria-label': text, class: 'gauge' });
  const defs = svg('defs');
  const hatch = svg('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
  hatch.append(svg('rect', { width: 6, height: 6, class: 'held-bg' }), svg('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'held-line' }));
  defs.append(hatch);
  const spentW = pct(spent, budget);
  const heldW = Math.min(100 - spentW, pct(held, budget));
  g.append(
    defs,
    svg('rect', { x: 0, y: 2, width: '100%', height: 24, class: 'remaining' }),
    svg('rect', { x: 0, y: 2, width: `${spentW}%`, height: 24, class: 'spent', 'data-part': 'spent' }),
    svg('rect', { x: `${spentW}%`, y: 2, width: `${heldW}%`, height: 24, fill: 'url(#hatch)', class: 'held', 'data-part': 'held' }),
  );
  container.append(g);
  return text;
}

/**
 * A horizontal bar chart: one row per { key, value, label } (label is the text after the key, e.g. the cost),
 * the longest bar spanning the width. Each row is a <g data-key> with a <title>.
 */
export function drawBars(container, title, rows) {
  container.replaceChildren();
  if (!rows.length) {
    container.append(Object.assign(document.createElement('p'), { className: 'hint', textContent: 'Nothing spent yet this month.' }));
    return;
  }
  const max = Math.max(...rows.map((r) => r.value));
  const rowH = 40;
  const chart = svg('svg', {
    width: '100%',
    height: rows.length * rowH,
    role: 'img',
    'aria-label': `${title}: ${rows.map((r) => `${r.key} ${r.label}`).join('; ')}`,
  });
  rows.forEach((r, i) => {
    const y = i * rowH;
    const row = svg('g', { 'data-key': r.key });
    row.append(
      svg('title', {}, `${r.key}: ${r.label}`),
      svg('text', { x: 0, y: y + 14, class: 'bar-label' }, `${r.key} — ${r.label}`),
      svg('rect', { x: 0, y: y + 20, width: `${Math.max(0.5, pct(r.value, max))}%`, height: 14, class: 'bar' }),
    );
    chart.append(row);
  });
  container.append(chart);
}
