#!/usr/bin/env node
// kvpick's command line: `kvpick <command> [flags]`. Each command lives in src/cli/; this file only
// dispatches and turns failures into exit codes. A first argument that is a flag means `serve`: the upstream
// Helm charts' `args:` replace the image's CMD and carry only GIE's flags (`--pool-name … --config-file …`).
const USAGE = `usage: kvpick <command> [flags]
       kvpick --pool-name NAME [flags]   (flags alone = serve, as the GIE / llm-d charts run their EPP)

commands:
  serve   run the ext_proc endpoint picker
  hash    print the vLLM block hashes of an OpenAI request body
  demo    run kvpick with simulated vLLM pods (what \`npm start\` runs)
  sim     run simulated vLLM pods (OpenAI API, vLLM /metrics, ZeroMQ KV events)

run \`kvpick <command> --help\` for the flags of a command`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  hash: async () => (await import("./cli/hash-command.js")).runHashCommand,
  serve: async () => (await import("./cli/serve-command.js")).runServeCommand,
  demo: async () => (await import("./cli/demo-command.js")).runDemoCommand,
  sim: async () => (await import("./cli/sim-command.js")).runSimCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name?.startsWith("-") && name !== "--help" && name !== "-h") {
    return (await commands.serve!())(argv);
  }
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (load === undefined) {
    process.stderr.write(`kvpick: unknown command "${name}"\n${USAGE}\n`);
    return 2;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve/demo keep running until a signal; they resolve only when done.
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kvpick: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
