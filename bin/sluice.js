#!/usr/bin/env -S node --max-semi-space-size=4
// (node flags: see src/server/node-flags.ts)
// Runs the compiled CLI (npm run build writes dist/).
import { buildProgram } from '../dist/cli/main.js';
import { closeOpened } from '../dist/cli/output.js';

try {
  await (await buildProgram(process.argv)).parseAsync(process.argv);
} finally {
  await closeOpened();
}
