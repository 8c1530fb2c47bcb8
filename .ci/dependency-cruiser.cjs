// The layer check (`npm run layers`, step of .ci/run): the layering the file headers state, enforced.
// A module may import its own layer and the layers below it, never a layer above. Bottom to top:
//
//   0 base            errors.ts, service-group.ts (the lifecycle contract), format-issue.ts,
//                     observability/logger.ts and observability/label-bounds.ts (bounded log fields/labels)
//   1 kv-index        the block index, vLLM's block hashes and hash-algo vocabulary
//   2 leaves          tokenization/, endpoints/ (the pool and its load readings)
//   3 domain          kv-events/, cache-view/ (the read model), scheduling/, shared-index/, flow-control/
//   4 routing         routing/ (implements ext-proc's Router structurally, never imports ext-proc)
//   5 ext-proc        the inbound transport (Envoy → kvpick); declares the Router contract it consumes
//   6 observability   metrics recorders and collectors, tracing, the admin server: each recorder implements
//                     the contract its consumer declares (kv-events-recorder.ts, routing/route-recorder.ts,
//                     …), so it sits above them; nothing below imports it
//   7 config          the schema, the loader and translators/ of other EPPs' configs (these read the plugin
//                     registry, so config sits above the domain; the composition root hands each component
//                     its own settings, the domain never imports config)
//   8 app             app.ts, the composition root, and app/ (its setup sections and contract)
//   9 sim             the simulated vLLM pods (test and demo tooling; kvpick itself never imports them)
//  10 demo            the one-process demo stack and the Envoy stand-in
//  11 cli             flag parsing and the commands
//  12 main            main.ts
//
// Plus: no import cycles anywhere (src/, test/, bench/); the scheduling core (scheduling/*.ts) imports no
// plugin (plugins are registered by name, the core only knows the contracts); production code in src/
// never imports test/ or bench/. Tests (`*.test.ts`) and fixtures (`*.fixture.ts`) may import any layer:
// a test of layer N often starts the layers above it.
const LAYERS = [
  {
    name: "base",
    path: "^src/(errors|service-group|format-issue|observability/logger|observability/label-bounds)\\.ts$",
  },
  { name: "kv-index", path: "^src/kv-index/" },
  { name: "leaves", path: "^src/(tokenization|endpoints)/" },
  { name: "domain", path: "^src/(kv-events|cache-view|scheduling|shared-index|flow-control)/" },
  { name: "routing", path: "^src/routing/" },
  { name: "ext-proc", path: "^src/ext-proc/" },
  { name: "observability", path: "^src/observability/" },
  { name: "config", path: "^src/config/" },
  { name: "app", path: "^src/(app\\.ts$|app/)" },
  { name: "sim", path: "^src/sim/" },
  { name: "demo", path: "^src/demo/" },
  { name: "cli", path: "^src/cli/" },
  { name: "main", path: "^src/main\\.ts$" },
];

// Test code is exempt from the layer order (not from cycles).
const TEST_CODE = "\\.(test|fixture)\\.ts$";

// "base" is matched before "observability" (logger.ts and label-bounds.ts are in both paths): a file belongs to the first layer
// whose path it matches.
const ownPath = (i) => ({
  path: LAYERS[i].path,
  pathNot: [TEST_CODE, ...LAYERS.slice(0, i).map((l) => l.path)],
});

const upward = LAYERS.flatMap((layer, i) =>
  LAYERS.slice(i + 1).map((above) => ({
    name: `no-upward:${layer.name}->${above.name}`,
    comment: `layer "${layer.name}" must not import layer "${above.name}" (order in .ci/dependency-cruiser.cjs)`,
    severity: "error",
    from: ownPath(i),
    to: { path: above.path, pathNot: LAYERS.slice(0, i + 1).map((l) => l.path) },
  })),
);

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      comment: "an import cycle: split the shared part into a module both sides import",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "scheduling-core-imports-no-plugin",
      comment: "the scheduling core (scheduling/*.ts) knows plugins only through types.ts and the registry",
      severity: "error",
      from: { path: "^src/scheduling/[^/]+\\.ts$", pathNot: TEST_CODE },
      to: { path: "^src/scheduling/plugins/" },
    },
    {
      name: "src-never-imports-test-or-bench",
      comment: "production code never depends on test support or benchmarks",
      severity: "error",
      from: { path: "^src/", pathNot: TEST_CODE },
      to: { path: "^(test|bench)/" },
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
    // Type-only imports couple layers as much as value imports do.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      extensions: [".ts", ".js", ".json"],
      extensionAlias: { ".js": [".ts", ".js"] },
    },
  },
};
