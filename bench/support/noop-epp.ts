// The transport ceiling for ext_proc benchmarks: a grpc-js EPP that does nothing but answer as an EPP must
// in FULL_DUPLEX_STREAMED mode — once the request body is complete, the header response with the destination
// header, then the body echoed back — and ends the call when the client half-closes. No parsing, no
// tokenizing, no scheduling: what kvpick costs beyond this is kvpick's own work.
// Run as a process: node dist/bench/support/noop-epp.js <port> [destination]; prints "listening <port>".
import * as grpc from "@grpc/grpc-js";
import {
  EXT_PROC_SERVICE,
  loadProtos,
  type ProcessingRequest,
  serviceOf,
} from "../../src/ext-proc/protos.js";
import { routedHeadersResponse, streamedBodyResponses } from "../../src/ext-proc/responses.js";

export async function startNoopEpp(
  port: number,
  destination: string,
): Promise<{ port: number; stop(): void }> {
  const server = new grpc.Server();
  const service = serviceOf(loadProtos(), EXT_PROC_SERVICE).service;
  server.addService(service, {
    Process(call: grpc.ServerDuplexStream<ProcessingRequest, unknown>) {
      const chunks: Buffer[] = [];
      call.on("data", (m: ProcessingRequest) => {
        const body = m.request_body;
        if (body == null) return; // request headers: answered once the body is complete
        chunks.push(Buffer.from(body.body ?? []));
        if (!body.end_of_stream) return;
        call.write(routedHeadersResponse({ endpoint: destination }));
        for (const r of streamedBodyResponses("request", Buffer.concat(chunks), true)) call.write(r);
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port: bound, stop: () => server.forceShutdown() };
}

if (process.argv[1]?.endsWith("noop-epp.js")) {
  const epp = await startNoopEpp(Number(process.argv[2] ?? 0), process.argv[3] ?? "10.0.0.1:8000");
  console.log(`listening ${epp.port}`);
  process.on("SIGTERM", () => {
    epp.stop();
    process.exit(0);
  });
}
