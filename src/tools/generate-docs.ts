// `npm run docs`: regenerate the reference pages that are derived from code.
import { writeFileSync } from 'node:fs';
import { buildProgram } from '../cli/main.js';
import { renderCliReference } from '../cli/reference.js';

writeFileSync(new URL('../../docs/cli.md', import.meta.url), renderCliReference(buildProgram()));
process.stdout.write('wrote docs/cli.md\n');
