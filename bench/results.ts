// The report: medians of the rounds, the ratios against the baselines, each target's PASS/MISS, the
// printed table, and bench/RESULTS.md (the latest run in full, one history line per run kept).
import fs from 'node:fs/promises';
import type { LoadResult } from './load.js';

export interface Figures {
  rps: number;
  p50ms: number;
  p99ms: number;
  bad: number;
}

export interface Row {
  endpoint: string;
  kyclo: Figures | null;
  baselineName: string;
  baseline: Figures | null;
  /** Median of the per-round ratios (each from runs made back to back). */
  ratio: number | null;
  /** Shown instead of the ratio where the target is an absolute figure (e.g. "212 MB"). */
  measured?: string;
  target: string;
  pass: boolean | null;
  /** The short name in the history line. */
  short?: string;
}

export const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function figuresOf(runs: LoadResult[]): Figures | null {
  if (runs.length === 0) return null;
  return {
    rps: median(runs.map((r) => r.rps)),
    p50ms: median(runs.map((r) => r.p50ms)),
    p99ms: median(runs.map((r) => r.p99ms)),
    bad: runs.reduce((s, r) => s + r.bad, 0),
  };
}

const num = (v: number | undefined | null, digits = 0) => (v === undefined || v === null || Number.isNaN(v) ? '–' : v.toFixed(digits));
const ms = (v: number | undefined) => (v === undefined ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const verdict = (r: Row) => {
  const bad = (r.kyclo?.bad ?? 0) + (r.baseline?.bad ?? 0);
  const base = r.pass === null ? 'info' : r.pass ? 'PASS' : 'MISS';
  return bad ? `${base} (${bad} non-2xx/errors!)` : base;
};

export function markdownTable(rows: Row[]): string {
  const out = [
    '| Kyclo endpoint | req/s | p50 ms | p99 ms | against | req/s | p50 ms | p99 ms | ratio | target | result |',
    '|---|--:|--:|--:|---|--:|--:|--:|--:|---|---|',
  ];
  for (const r of rows) {
    out.push(
      `| ${r.endpoint} | ${num(r.kyclo?.rps)} | ${ms(r.kyclo?.p50ms)} | ${ms(r.kyclo?.p99ms)} | ${r.baselineName} | ${num(r.baseline?.rps)} | ` +
        `${ms(r.baseline?.p50ms)} | ${ms(r.baseline?.p99ms)} | ${r.measured ?? num(r.ratio, 2)} | ${r.target} | ${verdict(r)} |`,
    );
  }
  return out.join('\n');
}

/** A fixed-width table for the terminal. */
export function textTable(rows: Row[]): string {
  const head = ['Kyclo endpoint', 'req/s', 'p50 ms', 'p99 ms', 'against', 'req/s', 'p50 ms', 'p99 ms', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [
    r.endpoint, num(r.kyclo?.rps), ms(r.kyclo?.p50ms), ms(r.kyclo?.p99ms), r.baselineName, num(r.baseline?.rps), ms(r.baseline?.p50ms),
    ms(r.baseline?.p99ms), r.measured ?? num(r.ratio, 2), r.target, verdict(r),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([1, 2, 3, 5, 6, 7, 8]);
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export interface RunInfo {
  date: string;
  machine: string;
  command: string;
  commit: string;
  settings: string[];
  seeding: string;
  durationS: number;
}

const HISTORY_HEADER = '| date | commit | GET | caps | PATCH | POST | list | deep p50× | q p99 ms | RSS MB | misses | run s |';

export function historyLine(info: RunInfo, rows: Row[]): string {
  const by = (s: string) => rows.find((r) => r.short === s);
  const ratio = (s: string) => num(by(s)?.ratio, 2);
  const misses = rows.filter((r) => r.pass === false).map((r) => r.short ?? r.endpoint);
  return (
    `| ${info.date.slice(0, 16).replace('T', ' ')} | ${info.commit} | ${ratio('get')} | ${ratio('caps')} | ${ratio('patch')} | ${ratio('post')} | ` +
    `${ratio('list')} | ${ratio('deep')} | ${ms(by('q')?.kyclo?.p99ms)} | ${by('rss')?.measured ?? '–'} | ${misses.join(', ') || 'none'} | ${num(info.durationS)} |`
  );
}

export async function writeResults(file: string, info: RunInfo, rows: Row[]): Promise<void> {
  const old = await fs.readFile(file, 'utf8').catch(() => '');
  const at = old.indexOf('## History');
  const kept = at >= 0 ? old.slice(at).split('\n').filter((l) => l.startsWith('| 2')) : [];
  const text = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts). The table is the latest run; the history keeps one line per run, so a',
    'regression shows as a falling ratio. Ratios are Kyclo ÷ its bare baseline, each the median of three per-round ratios',
    'from runs made back to back; see bench/README.md for what each figure means.',
    '',
    '## Latest run',
    '',
    `- Date: ${info.date}`,
    `- Machine: ${info.machine}`,
    `- Command: \`${info.command}\``,
    `- Commit: ${info.commit}`,
    `- Seeding: ${info.seeding}`,
    ...info.settings.map((s) => `- ${s}`),
    `- Whole run: ${num(info.durationS)} s`,
    '',
    markdownTable(rows),
    '',
    '## History',
    '',
    HISTORY_HEADER,
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|',
    ...kept,
    historyLine(info, rows),
    '',
  ].join('\n');
  await fs.writeFile(file, text);
}
