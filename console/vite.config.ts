// The console is served by `kyclo serve` at /console (src/http/console.ts), so every asset URL starts
// there. @kyclo/client is compiled from its sources: the console never needs the client's own build.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  resolve: { alias: { '@kyclo/client': fileURLToPath(new URL('../clients/typescript/src/index.ts', import.meta.url)) } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Under the strict CSP nothing may be inlined: every asset is a file of this origin.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
  },
  oxc: { jsx: { runtime: 'automatic' } },
  // `npm run dev -w @kyclo/console`: the API of a local `npm start` behind the dev server's origin,
  // as /console has it in production (KYCLO_API to point elsewhere).
  server: { proxy: Object.fromEntries(['/v1', '/readyz'].map((p) => [p, process.env.KYCLO_API ?? 'http://127.0.0.1:3000'])) },
});
