// The operator console (console/, a React single-page app) served at /console from its build output,
// on the API's own origin: it calls /v1 with the key the operator signs in with, so no CORS and no
// third party. Its own Content-Security-Policy allows scripts, styles and requests to this origin
// only: no inline script, no eval, no remote font or image, and nothing may frame it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';

/** console/dist from src/http (tsx, tests) and from dist/http (the compiled server) alike. */
export const CONSOLE_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../console/dist');

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Kyclo console</title>
<p>The console is not built. Run <code>npm run build</code> (or <code>npm start</code>, which builds what is stale).</p></html>`;

/** An encapsulated plugin: its onSend hook runs after the app's, so its headers win on /console only. */
export function consoleRoutes(root = CONSOLE_DIST) {
  return async (app: FastifyInstance) => {
    app.addHook('onSend', (_req, reply, payload, done) => {
      reply.header('content-security-policy', CONSOLE_CSP);
      done(null, payload);
    });
    // Hashed file names: an asset never changes under its name, so it may be kept for a year.
    await app.register(fastifyStatic, {
      root: path.join(root, 'assets'),
      prefix: '/console/assets/',
      decorateReply: false,
      index: false,
      immutable: true,
      maxAge: '365d',
      // The build keeps .br and .gz copies (console/scripts/bundle-size.mjs): sent when accepted.
      preCompressed: true,
      schemaHide: true,
    });
    // Every other path under /console is a page of the app (client-side routes): the same index.html,
    // read on each request so a rebuild under a running server is served at once; never cached.
    const page = async (_req: unknown, reply: FastifyReply) => {
      reply.type('text/html; charset=utf-8');
      reply.header('cache-control', 'no-cache');
      try {
        return await fs.promises.readFile(path.join(root, 'index.html'));
      } catch {
        reply.code(503);
        return NOT_BUILT;
      }
    };
    app.get('/console', { schema: { hide: true } }, page);
    app.get('/console/*', { schema: { hide: true } }, page);
  };
}
