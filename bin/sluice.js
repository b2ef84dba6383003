#!/usr/bin/env node
// Runs the compiled CLI (npm run build writes dist/).
import { buildProgram } from '../dist/cli/main.js';

await buildProgram().parseAsync(process.argv);
