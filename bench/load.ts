// Load generation: wrk (bench/load.lua) when it is installed, autocannon otherwise, always in its own
// process so the load generator never shares an event loop with the runner. Both report requests,
// duration and latency percentiles as one JSON line.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Mode = 'get' | 'patch' | 'post' | 'static';

export interface LoadSpec {
  base: string;
  mode: Mode;
  /** GET/PATCH: prefix + id + suffix; POST and static: the path itself. */
  prefix: string;
  suffix?: string;
  apiKey?: string;
  idsLua: string;
  idsJson: string;
  connections: number;
  threads: number;
  seconds: number;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
  /** Answers outside 2xx/3xx, and socket errors and timeouts. */
  bad: number;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

export function wrkPath(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

interface Raw {
  requests: number;
  duration_us: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  non2xx: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
}

function toResult(raw: Raw): LoadResult {
  const seconds = raw.duration_us / 1e6;
  return {
    requests: raw.requests, seconds, rps: raw.requests / seconds, p50ms: raw.p50_us / 1000, p99ms: raw.p99_us / 1000, maxMs: raw.max_us / 1000,
    bad: raw.non2xx + raw.connect + raw.read + raw.write + raw.timeout,
  };
}

function runChild(cmd: string, args: string[]): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (!line) return reject(new Error(`${path.basename(cmd)} exited ${code}: ${err.trim() || out.trim()}`));
      resolve(toResult(JSON.parse(line.slice('BENCH_JSON '.length)) as Raw));
    });
  });
}

export function runLoad(spec: LoadSpec, wrk: string | null): Promise<LoadResult> {
  if (wrk) {
    return runChild(wrk, [
      `-t${spec.threads}`, `-c${spec.connections}`, `-d${spec.seconds}s`, '--timeout', '10s', '-s', path.join(HERE, 'load.lua'), spec.base,
      '--', spec.mode, spec.idsLua, spec.prefix, spec.suffix ?? '', spec.apiKey ?? '-', String(Date.now()),
    ]);
  }
  return runChild(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify(spec)]);
}

/** The autocannon fallback, run as `node --import tsx bench/load.ts '<spec json>'`: the same requests as load.lua. */
async function autocannonMain(spec: LoadSpec): Promise<void> {
  const { default: autocannon } = await import('autocannon');
  const fs = await import('node:fs/promises');
  const ids = JSON.parse(await fs.readFile(spec.idsJson, 'utf8')) as string[];
  const nonce = Date.now();
  let n = 0;
  const headers: Record<string, string> = {};
  if (spec.apiKey) headers.authorization = `Bearer ${spec.apiKey}`;
  if (spec.mode === 'patch') headers['content-type'] = 'application/merge-patch+json';
  if (spec.mode === 'post') headers['content-type'] = 'application/json';
  const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
  const setupRequest = (req: Record<string, unknown>) => {
    n++;
    switch (spec.mode) {
      case 'get':
        return { ...req, method: 'GET', path: `${spec.prefix}${pick()}${spec.suffix ?? ''}`, headers };
      case 'patch':
        return { ...req, method: 'PATCH', path: `${spec.prefix}${pick()}${spec.suffix ?? ''}`, headers, body: `{"metadata":{"bench":"${nonce}-${n}"}}` };
      case 'post':
        return {
          ...req, method: 'POST', path: spec.prefix, headers,
          body: `{"type":"individual","first_name":"Bench","last_name":"Runner","country":"FR","email":"bench.${nonce}.${n}@example.com","phone":"+33612345678"}`,
        };
      default:
        return { ...req, method: 'GET', path: spec.prefix, headers };
    }
  };
  const r = await autocannon({ url: spec.base, connections: spec.connections, duration: spec.seconds, timeout: 10, requests: [{ setupRequest }] });
  const total = r.requests.total ?? Math.round(r.requests.average * r.duration);
  const raw: Raw = {
    requests: total, duration_us: r.duration * 1e6, p50_us: r.latency.p50 * 1000, p99_us: r.latency.p99 * 1000, max_us: r.latency.max * 1000,
    non2xx: r.non2xx, connect: r.errors, read: 0, write: 0, timeout: r.timeouts,
  };
  process.stdout.write(`BENCH_JSON ${JSON.stringify(raw)}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && process.argv[2]) {
  await autocannonMain(JSON.parse(process.argv[2]) as LoadSpec);
}
