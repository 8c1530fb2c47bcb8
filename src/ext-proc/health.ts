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

export function healthImplementation(isReady: () => boolean): UntypedServiceImplementation {
  return {
    Check(call: ServerUnaryCall<HealthRequest, HealthResponse>, callback: sendUnaryData<HealthResponse>) {
      callback(null, { status: servingStatus(call.request.service ?? "", isReady()) });
    },
    Watch(call: ServerWritableStream<HealthRequest, HealthResponse>) {
      const service = call.request.service ?? "";
      let last: ServingStatus | null = null;
      const push = () => {
        const status = servingStatus(service, isReady());
        if (status !== last) {
          last = status;
          call.write({ status });
        }
      };
      push();
      const timer = setInterval(push, WATCH_POLL_MS);
      timer.unref();
      const stop = () => clearInterval(timer);
      call.on("cancelled", stop);
      call.on("error", stop);
      call.on("close", stop);
    },
  };
}
