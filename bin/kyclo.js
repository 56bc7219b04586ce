#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npx kyclo` works from a checkout.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
