// Prometheus metrics at GET /metrics (no key, like /healthz): process metrics and, per route
// pattern (never a concrete id), request counts and durations.
//
// The two per-request families are kept here and written out at scrape time, in the exposition
// format prom-client writes: prom-client's inc/observe validate and hash their label object on
// every call, about 20 µs a request on this hardware, where a Map lookup and a few additions do.
import client from 'prom-client';
import type { FastifyInstance } from 'fastify';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

interface RouteStats {
  labels: string; // method="GET",route="/v1/users/:id", escaped once
  statuses: Map<number, number>;
  count: number;
  sum: number;
  perBucket: number[]; // not cumulative: the request counted in its first bucket only
}

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function exposition(stats: Iterable<RouteStats>): string {
  const all = [...stats];
  const lines = [
    '# HELP kyclo_http_requests_total HTTP requests answered',
    '# TYPE kyclo_http_requests_total counter',
  ];
  for (const s of all) for (const [status, n] of s.statuses) lines.push(`kyclo_http_requests_total{${s.labels},status="${status}"} ${n}`);
  lines.push('# HELP kyclo_http_request_duration_seconds Time to answer an HTTP request', '# TYPE kyclo_http_request_duration_seconds histogram');
  for (const s of all) {
    let cumulative = 0;
    BUCKETS.forEach((le, i) => {
      cumulative += s.perBucket[i]!;
      lines.push(`kyclo_http_request_duration_seconds_bucket{le="${le}",${s.labels}} ${cumulative}`);
    });
    lines.push(
      `kyclo_http_request_duration_seconds_bucket{le="+Inf",${s.labels}} ${s.count}`,
      `kyclo_http_request_duration_seconds_sum{${s.labels}} ${s.sum}`,
      `kyclo_http_request_duration_seconds_count{${s.labels}} ${s.count}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `more` adds the domain's own metrics (the audit backlog) to the same registry. */
export function registerMetrics(app: FastifyInstance, more?: (registry: client.Registry) => void): void {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'kyclo_' });
  more?.(registry);
  const stats = new Map<string, RouteStats>();

  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const key = `${req.method} ${route}`;
    let s = stats.get(key);
    if (!s) {
      s = { labels: `method="${escape(req.method)}",route="${escape(route)}"`, statuses: new Map(), count: 0, sum: 0, perBucket: BUCKETS.map(() => 0) };
      stats.set(key, s);
    }
    const seconds = reply.elapsedTime / 1000;
    s.count += 1;
    s.sum += seconds;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]!) {
        s.perBucket[i]! += 1;
        break;
      }
    }
    s.statuses.set(reply.statusCode, (s.statuses.get(reply.statusCode) ?? 0) + 1);
    done();
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.type(registry.contentType);
    return (await registry.metrics()) + exposition(stats.values());
  });
}
