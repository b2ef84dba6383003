// `npm run docs`: regenerate the reference pages that are derived from code.
import { writeFileSync } from 'node:fs';
import { buildProgram } from '../cli/main.js';
import { renderCliReference } from '../cli/reference.js';
import { renderConfigReference } from '../config/reference.js';

writeFileSync(new URL('../../docs/cli.md', import.meta.url), renderCliReference(await buildProgram()));
process.stdout.write('wrote docs/cli.md\n');
writeFileSync(new URL('../../docs/configuration.md', import.meta.url), renderConfigReference());
process.stdout.write('wrote docs/configuration.md\n');
