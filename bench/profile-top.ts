// Where a V8 CPU profile (node --cpu-prof) spent its time: self time summed per function (name and
// source location) and per file or package. Usable alone: tsx bench/profile-top.ts file.cpuprofile [n]
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface TopEntry {
  name: string;
  where: string;
  selfMs: number;
  share: number;
}

const ROOT = process.cwd();

/** A short place: project-relative path, or the npm package, or the V8/Node category. */
function placeOf(url: string): string {
  if (!url) return '(native)';
  let p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + 'node_modules/'.length).split('/');
    return `${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]} (${rest.slice(rest[0]!.startsWith('@') ? 2 : 1).join('/')})`;
  }
  if (p.startsWith(ROOT)) p = path.relative(ROOT, p);
  return p;
}

function pkgOf(url: string): string {
  if (!url) return '(native / V8 / GC)';
  const p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (p.startsWith('node:')) return 'node (core)';
  if (p.startsWith(ROOT)) return path.relative(ROOT, p).split('/').slice(0, 2).join('/');
  return p;
}

export interface Summary {
  totalMs: number;
  idleMs: number;
  /** Whether only the samples inside the requested window were counted. */
  windowed: boolean;
  functions: TopEntry[];
  packages: TopEntry[];
}

/**
 * Self time per function and per package. `window` (microseconds of CLOCK_MONOTONIC, the clock of
 * V8's profile timestamps and of process.hrtime) keeps only the samples taken inside it, e.g. the
 * measured load without start-up and warm-up.
 */
export async function summarise(file: string, top = 25, window?: { fromUs: number; toUs: number }): Promise<Summary> {
  const profile = JSON.parse(await fs.readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const windowed = Boolean(window && window.fromUs < profile.endTime && window.toUs > profile.startTime);
  // timeDeltas[i] is the time since the previous sample; it is charged to sample i.
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    at += delta;
    if (windowed && (at < window!.fromUs || at > window!.toUs)) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const fns = new Map<string, TopEntry>();
  const pkgs = new Map<string, TopEntry>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    total += us;
    if (f.functionName === '(idle)') idle += us;
    const name = f.functionName || '(anonymous)';
    const where = f.url ? `${placeOf(f.url)}:${f.lineNumber + 1}` : '';
    const k = `${name}@${where}`;
    const e = fns.get(k) ?? { name, where, selfMs: 0, share: 0 };
    e.selfMs += us / 1000;
    fns.set(k, e);
    const pk = f.functionName === '(idle)' ? '(idle)' : f.functionName === '(garbage collector)' ? '(garbage collector)' : pkgOf(f.url);
    const p = pkgs.get(pk) ?? { name: pk, where: '', selfMs: 0, share: 0 };
    p.selfMs += us / 1000;
    pkgs.set(pk, p);
  }
  // Shares are of the busy time: idle is when the process waited (on PostgreSQL, on the network).
  const busy = (total - idle) / 1000;
  const rank = (m: Map<string, TopEntry>) =>
    [...m.values()]
      .filter((e) => e.name !== '(idle)')
      .map((e) => ({ ...e, share: busy > 0 ? e.selfMs / busy : 0 }))
      .sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: total / 1000, idleMs: idle / 1000, windowed, functions: rank(fns).slice(0, top), packages: rank(pkgs).slice(0, 15) };
}

/** The summary as text; with `requests`, also the main thread's CPU per request (µs). */
export function formatSummary(s: Summary, requests?: number): string {
  const busyMs = s.totalMs - s.idleMs;
  const per = (ms: number) => (requests ? `${((ms * 1000) / requests).toFixed(1).padStart(7)}` : '');
  const lines = [
    `${s.windowed ? 'measured window' : 'whole profile (start-up included)'}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(busyMs / 1000).toFixed(1)} s busy ` +
      `(${((busyMs / s.totalMs) * 100).toFixed(0)}% of one core)${requests ? `, ${requests.toLocaleString('en')} requests: ${((busyMs * 1000) / requests).toFixed(0)} µs of main-thread CPU per request` : ''}`,
    '',
    `  self ms   share${requests ? '  µs/req' : ''}  function                                   where`,
  ];
  for (const e of s.functions) {
    lines.push(`  ${e.selfMs.toFixed(0).padStart(7)}  ${(e.share * 100).toFixed(1).padStart(5)}%${requests ? ` ${per(e.selfMs)}` : ''}  ${e.name.slice(0, 42).padEnd(42)} ${e.where}`);
  }
  lines.push('', '  by package / folder:');
  for (const e of s.packages) lines.push(`  ${e.selfMs.toFixed(0).padStart(7)}  ${(e.share * 100).toFixed(1).padStart(5)}%${requests ? ` ${per(e.selfMs)}` : ''}  ${e.name}`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: tsx bench/profile-top.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(formatSummary(await summarise(file, n ? Number(n) : 25)) + '\n');
}
