'use strict';
// Turns the suite's rows into one plain-text table, and summarises a cell's runs.

/** Median, min and max of the values; NaN-free input. */
function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length };
}

/** Rates get k/M suffixes; other metrics their fixed number of decimals. */
function formatValue(value, metric) {
  if (!Number.isFinite(value)) return '?';
  if (metric.digits === undefined) {
    if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
    if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
    return value.toFixed(0);
  }
  return value.toLocaleString('en-US', { minimumFractionDigits: metric.digits, maximumFractionDigits: metric.digits });
}

/** "2.31× native better" style text for native's median over a peer's. */
function formatRatio(native, peer, better, peerName = 'peer') {
  if (!Number.isFinite(native) || !Number.isFinite(peer) || peer === 0) return '';
  const ratio = native / peer;
  const nativeAhead = better === 'higher' ? ratio > 1 : ratio < 1;
  const text = ratio >= 100 ? ratio.toFixed(0) : ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2);
  return `${text}× (${nativeAhead ? 'native' : peerName} better)`;
}

/** Pads the columns of `rows` (arrays of strings) under `header`; blank rows stay blank lines. */
function render(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.filter(Boolean).map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('-|-');
  return [line(header), rule, ...rows.map((r) => (r ? line(r) : ''))].join('\n');
}

module.exports = { summarize, formatValue, formatRatio, render };
