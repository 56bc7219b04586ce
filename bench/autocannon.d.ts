// The part of autocannon's programmatic API the fallback load generator uses (it ships no types).
declare module 'autocannon' {
  interface Histogram {
    average: number;
    total?: number;
    p50: number;
    p99: number;
    max: number;
  }
  interface Result {
    requests: Histogram;
    latency: Histogram;
    duration: number;
    non2xx: number;
    errors: number;
    timeouts: number;
  }
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    timeout?: number;
    requests?: Array<{ setupRequest?: (req: Record<string, unknown>) => Record<string, unknown> }>;
  }
  export default function autocannon(opts: Options): Promise<Result>;
}
