// `kvpick demo` (what `npm start` runs). Until the vLLM simulator exists this starts the EPP alone, on an
// embedded default: bundled Qwen3 tokenizer, hash seed 42, plaintext gRPC, KV events bound on 5557 and an
// empty pool — so requests are answered 503 — and says so.
import { parseConfig } from "../config/load.js";
import { serve } from "./serve-command.js";

export async function runDemoCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(
      "usage: kvpick demo\n\nStarts kvpick on an embedded default configuration (see README).\n",
    );
    return 0;
  }
  const config = parseConfig({
    tokenizer: { hashSeed: "42" },
    server: { secureServing: false },
  });
  return serve(config, (ports) => {
    process.stderr.write(
      `\nkvpick demo: the EPP is running with the bundled Qwen3 tokenizer and an EMPTY pool (no simulated vLLM\n` +
        `pods yet), so every request is answered 503 "no ready endpoint". Ports: ${JSON.stringify(ports)}.\n` +
        `Point vLLM pods at tcp://<this host>:5557 and run \`kvpick serve --hash-seed 42 --endpoints ip:port,…\`\n` +
        `for real routing. Ctrl-C stops.\n\n`,
    );
  });
}
