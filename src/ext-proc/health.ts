// grpc.health.v1.Health with the EPP's semantics (reference epp-contract.md §1.6, §4): `liveness` is
// SERVING while the process runs; `readiness`, `""`, the ExternalProcessor service name and Helm's
// `inference-extension` are SERVING iff kvpick is ready (and not draining); any other name is
// SERVICE_UNKNOWN. Watch sends the status at once and again whenever it changes.
import type {
  ServerUnaryCall,
  ServerWritableStream,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { EXT_PROC_SERVICE } from "./protos.js";

export type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

const READINESS_NAMES = new Set(["readiness", "", EXT_PROC_SERVICE, "inference-extension"]);
/** How often a Watch re-evaluates readiness (readiness flips rarely; Helm probes every 2 s). */
const WATCH_POLL_MS = 500;

export function servingStatus(service: string, ready: boolean): ServingStatus {
  if (service === "liveness") return "SERVING";
  if (READINESS_NAMES.has(service)) return ready ? "SERVING" : "NOT_SERVING";
  return "SERVICE_UNKNOWN";
}

interface HealthRequest {
  service?: string;
}
interface HealthResponse {
  status: ServingStatus;
}

/**
 * `isReady` may answer asynchronously: on the ext_proc serving thread readiness lives on the main thread and
 * is asked for each check, so a check answers what the main thread says now, never a cached value.
 */
export function healthImplementation(
  isReady: () => boolean | Promise<boolean>,
): UntypedServiceImplementation {
  return {
    Check(call: ServerUnaryCall<HealthRequest, HealthResponse>, callback: sendUnaryData<HealthResponse>) {
      const service = call.request.service ?? "";
      const ready = isReady();
      if (typeof ready === "boolean") callback(null, { status: servingStatus(service, ready) });
      else
        ready.then(
          (r) => callback(null, { status: servingStatus(service, r) }),
          () => callback(null, { status: servingStatus(service, false) }),
        );
    },
    Watch(call: ServerWritableStream<HealthRequest, HealthResponse>) {
      const service = call.request.service ?? "";
      let last: ServingStatus | null = null;
      let ended = false;
      const report = (ready: boolean) => {
        const status = servingStatus(service, ready);
        if (status !== last && !ended) {
          last = status;
          call.write({ status });
        }
      };
      const push = () => {
        const ready = isReady();
        if (typeof ready === "boolean") report(ready);
        else ready.then(report, () => report(false));
      };
      push();
      const timer = setInterval(push, WATCH_POLL_MS);
      timer.unref();
      const stop = () => {
        ended = true;
        clearInterval(timer);
      };
      call.on("cancelled", stop);
      call.on("error", stop);
      call.on("close", stop);
    },
  };
}
