// Runs the layer check (.ci/dependency-cruiser.cjs) through dependency-cruiser's API: its CLI refuses
// Node 20 (engines ^22), the API it wraps runs on it. Exit 1 with one line per violation.
import { createRequire } from "node:module";
import { cruise } from "dependency-cruiser";
import extractTSConfig from "dependency-cruiser/config-utl/extract-ts-config";

const require = createRequire(import.meta.url);
const { forbidden, options } = require("./dependency-cruiser.cjs");
const { tsConfig, ...rest } = options;
const result = await cruise(
  ["src", "test", "bench"],
  { ...rest, ruleSet: { forbidden }, validate: true, outputType: "err" },
  undefined,
  { tsConfig: extractTSConfig(tsConfig.fileName) },
);
process.stdout.write(result.output);
process.exitCode = result.exitCode === 0 ? 0 : 1;
