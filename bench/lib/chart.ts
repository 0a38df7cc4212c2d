/**
 * A grouped bar chart as a standalone SVG (no dependencies): one group per
 * figure, one bar per series, a dashed reference line (e.g. 1.0 = parity with
 * stock flannel). Values that are not finite are drawn as "n/a".
 */
export interface BarChartSpec {
  title: string;
  groups: string[];
  series: Array<{ name: string; values: number[] }>;
  referenceLine?: number;
  yLabel?: string;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#1f77b4', '#2ca02c', '#d62728'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function svgBarChart(spec: BarChartSpec): string {
  const nGroups = spec.groups.length;
  const nSeries = Math.max(1, spec.series.length);
  const barW = 9;
  const groupW = nSeries * barW + 24;
  const left = 60;
  const top = 40;
  const plotH = 300;
  const legendH = 16 * Math.ceil(nSeries / 2) + 10;
  const width = Math.max(640, left + nGroups * groupW + 20);
  const height = top + plotH + 60 + legendH;
  const finite = spec.series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  const maxV = Math.max(spec.referenceLine ?? 0, ...finite, 0.1) * 1.1;
  const y = (v: number) => top + plotH - (v / maxV) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(spec.title)}</text>`);
  /* axes and ticks */
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${width - 10}" y2="${top + plotH}" stroke="#333"/>`);
  const step = maxV > 4 ? 1 : maxV > 2 ? 0.5 : 0.25;
  for (let v = 0; v <= maxV; v += step) {
    parts.push(`<line x1="${left - 4}" y1="${y(v)}" x2="${width - 10}" y2="${y(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  if (spec.yLabel) {
    parts.push(`<text transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  }
  if (spec.referenceLine !== undefined) {
    parts.push(`<line x1="${left}" y1="${y(spec.referenceLine)}" x2="${width - 10}" y2="${y(spec.referenceLine)}" stroke="#c00" stroke-dasharray="5,3"/>`);
  }
  spec.groups.forEach((g, gi) => {
    const gx = left + 12 + gi * groupW;
    spec.series.forEach((s, si) => {
      const v = s.values[gi] ?? NaN;
      const x = gx + si * barW;
      if (Number.isFinite(v)) {
        parts.push(`<rect x="${x}" y="${y(v)}" width="${barW - 1}" height="${top + plotH - y(v)}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(`${s.name} — ${g}: ${v.toFixed(2)}`)}</title></rect>`);
      } else {
        parts.push(`<text x="${x + barW / 2}" y="${top + plotH - 4}" text-anchor="middle" font-size="7" fill="#999">n/a</text>`);
      }
    });
    parts.push(`<text x="${gx + (nSeries * barW) / 2}" y="${top + plotH + 16}" text-anchor="middle">${esc(g)}</text>`);
  });
  spec.series.forEach((s, si) => {
    const lx = left + (si % 2) * ((width - left) / 2);
    const ly = top + plotH + 40 + Math.floor(si / 2) * 16;
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${PALETTE[si % PALETTE.length]}"/>`);
    parts.push(`<text x="${lx + 14}" y="${ly}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
