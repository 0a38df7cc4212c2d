/**
 * Markdown tables for benchmark reports (stdout, docs/performance.md).
 * Cells are strings or numbers; numbers are right-aligned by default, text
 * left-aligned. Pipes in cells are escaped; columns are padded so the table
 * also reads well in a terminal.
 */

export type Cell = string | number | null | undefined;
export type Align = 'l' | 'r' | 'c';

function text(c: Cell): string {
  if (c === null || c === undefined) return '';
  return String(c).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownTable(headers: readonly string[], rows: readonly (readonly Cell[])[], align?: readonly Align[]): string {
  const cols = headers.length;
  const al: Align[] = headers.map((_, i) => align?.[i] ?? (rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined) ? 'r' : 'l'));
  const body = rows.map((r) => Array.from({ length: cols }, (_, i) => text(r[i])));
  const head = headers.map(text);
  const width = head.map((h, i) => Math.max(3, h.length, ...body.map((r) => r[i]!.length)));
  const pad = (s: string, i: number): string => {
    const w = width[i]!;
    if (al[i] === 'r') return s.padStart(w);
    if (al[i] === 'c') return s.padStart(Math.floor((w + s.length) / 2)).padEnd(w);
    return s.padEnd(w);
  };
  const line = (cells: string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const rule = `|${width.map((w, i) => {
    const dashes = '-'.repeat(w);
    if (al[i] === 'r') return ` ${dashes.slice(1)}: `;
    if (al[i] === 'c') return ` :${dashes.slice(2)}: `;
    return ` ${dashes} `;
  }).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

/** "met" / "MISSED" / "n/a" for a target check (capitals so a miss stands out). */
export function verdict(met: boolean | null): string {
  return met === null ? 'n/a' : met ? 'met' : 'MISSED';
}
