// The layers of src/, lowest first: a module may import its own layer and the ones below, never a
// higher one, and nothing may form a cycle. `npm run check` (and so CI) runs this; the layers are
// drawn in docs/architecture.md.
const LAYERS = [
  ['config', 'dns', 'logging', 'native', 'match', 'files', 'bytes'], // ground floor: pure matching, wire format, config schema and paths, atomic file writes, byte copies
  ['lists', 'upstream'], // list files and formats; the upstream pool
  ['policy'], // decisions over networks, profiles, policies
  ['rules', 'rpz'], // config + lists + shared edits compiled into a RuleSet (pure), and its loader; RPZ zones built from it
  ['pipeline'], // the request pipeline
  ['querylog'], // events, stores, reports
  ['shared', 'admin'], // Redis state; the admin HTTP API and dashboard
  ['server'], // composition: listeners, reload, the observability root
  ['cli', 'tools'], // commands
];

const dir = (names) => `^src/(${names.join('|')})/`;
const higher = LAYERS.map((_, i) => LAYERS.slice(i + 1).flat());

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'an import cycle', from: {}, to: { circular: true } },
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `layer-${layer.join('-')}`,
      severity: 'error',
      comment: `${layer.join(', ')} may not import a higher layer (${higher[i].join(', ')})`,
      from: { path: dir(layer) },
      to: { path: dir(higher[i]) },
    })),
    { name: 'no-unknown-folder', severity: 'error', comment: 'every folder of src/ has a layer in .dependency-cruiser.cjs', from: { path: '^src/', pathNot: dir(LAYERS.flat()) }, to: {} },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
