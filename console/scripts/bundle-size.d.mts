export const BUDGET_GZIP_BYTES: number;
export function bundleSize(dist: string): { js: { raw: number; gzip: number }; css: { raw: number; gzip: number } };
export function precompress(dist: string): void;
