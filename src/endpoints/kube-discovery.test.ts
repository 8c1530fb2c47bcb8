// Discovery against a fake API server speaking the real list/watch protocol (test/support/fake-kube-api.ts).
import { afterEach, describe, expect, it } from "vitest";
import {
  FakeKubeApi,
  POOLS_V1,
  POOLS_V1ALPHA2,
  podObject,
  poolV1,
  poolV1alpha2,
} from "../../test/support/fake-kube-api.js";
import { until } from "../../test/support/until.js";
import { createLogger } from "../observability/logger.js";
import { EndpointStore } from "./endpoint-store.js";
import { KubeApi } from "./kube-api.js";
import { KubeDiscovery, type KubeDiscoveryOptions } from "./kube-discovery.js";

const logs: Record<string, unknown>[] = [];
const logger = createLogger({
  level: "debug",
  destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
});

let api: FakeKubeApi | null = null;
let discovery: KubeDiscovery | null = null;

afterEach(async () => {
  await discovery?.stop();
  await api?.stop();
  discovery = null;
  api = null;
  logs.length = 0;
});

function startDiscovery(
  server: FakeKubeApi,
  extra: Partial<KubeDiscoveryOptions> = {},
): { d: KubeDiscovery; store: EndpointStore } {
  const store = new EndpointStore();
  const d = new KubeDiscovery({
    api: new KubeApi(server.kubeConfig(), { requestTimeoutMs: 2000, watchIdleMs: 10_000 }),
    store,
    logger,
    namespace: "default",
    poolName: "qwen",
    initialBackoffMs: 10,
    maxBackoffMs: 100,
    ...extra,
  });
  d.start();
  discovery = d;
  return { d, store };
}

const addresses = (store: EndpointStore) =>
  store
    .specs()
    .map((s) => s.address)
    .sort();
const candidates = (store: EndpointStore) =>
  store
    .candidates()
    .map((e) => e.address)
    .sort();

describe("KubeDiscovery with an InferencePool (v1)", () => {
  it("follows pods: added, NotReady, terminating, deleted, relabelled, IP-less", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    api.apply("pods", podObject("other", "10.0.0.9", { labels: { app: "other" } }));
    api.apply("pods", podObject("elsewhere", "10.0.0.8", { namespace: "team-b" }));
    const { d, store } = startDiscovery(api);
    await until(() => d.synced(), "synced");
    expect(addresses(store)).toEqual(["10.0.0.1:8000"]);
    expect(store.get("10.0.0.1:8000")?.name).toBe("default/vllm-a");

    api.apply("pods", podObject("vllm-b", "10.0.0.2"));
    api.apply("pods", podObject("vllm-pending", null, { phase: "Pending" }));
    await until(() => store.has("10.0.0.2:8000"), "vllm-b added");
    expect(addresses(store)).toEqual(["10.0.0.1:8000", "10.0.0.2:8000"]);

    // NotReady: stays a member (its cache and KV subscription survive) but is no candidate.
    api.apply("pods", podObject("vllm-b", "10.0.0.2", { ready: false }));
    await until(() => candidates(store).length === 1, "vllm-b not a candidate");
    expect(store.has("10.0.0.2:8000")).toBe(true);
    api.apply("pods", podObject("vllm-b", "10.0.0.2"));
    await until(() => candidates(store).length === 2, "vllm-b ready again");

    // Terminating → gone; deleted → gone.
    api.apply("pods", podObject("vllm-b", "10.0.0.2", { terminating: true }));
    await until(() => !store.has("10.0.0.2:8000"), "terminating vllm-b removed");
    api.delete("pods", "default", "vllm-b");

    // Relabelled out of the selector → the watch says DELETED → removed; back in → ADDED.
    api.apply("pods", podObject("vllm-a", "10.0.0.1", { labels: { app: "retired" } }));
    await until(() => store.size === 0, "relabelled vllm-a removed");
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    await until(() => store.size === 1, "vllm-a back");

    // The pending pod gets its IP and becomes Running.
    api.apply("pods", podObject("vllm-pending", "10.0.0.3"));
    await until(() => store.has("10.0.0.3:8000"), "pending pod joined");
    expect(d.synced()).toBe(true);
  });

  it("makes one endpoint per target port (data-parallel ranks) named <pod>-rank-<i>", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000, 8001]));
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    const { d, store } = startDiscovery(api);
    await until(() => d.synced() && store.size === 2, "synced");
    const specs = store.specs().sort((a, b) => a.port - b.port);
    expect(specs.map((s) => [s.address, s.name, s.rank, s.pod])).toEqual([
      ["10.0.0.1:8000", "default/vllm-a-rank-0", 0, "default/vllm-a"],
      ["10.0.0.1:8001", "default/vllm-a-rank-1", 1, "default/vllm-a"],
    ]);
    api.delete("pods", "default", "vllm-a");
    await until(() => store.size === 0, "both ranks removed");
  });

  it("follows pool changes: selector, target ports, deletion and re-creation", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm", gen: "1" }, [8000]));
    api.apply("pods", podObject("old", "10.0.0.1", { labels: { app: "vllm", gen: "1" } }));
    api.apply("pods", podObject("new", "10.0.0.2", { labels: { app: "vllm", gen: "2" } }));
    const { d, store } = startDiscovery(api);
    await until(() => d.synced(), "synced");
    expect(addresses(store)).toEqual(["10.0.0.1:8000"]);

    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm", gen: "2" }, [8000]));
    await until(() => addresses(store).join() === "10.0.0.2:8000", "selector switched to gen 2");

    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm", gen: "2" }, [9000]));
    await until(() => addresses(store).join() === "10.0.0.2:9000", "target port switched");

    // A broken edit is ignored: routing keeps the last valid spec.
    api.apply(POOLS_V1, { ...poolV1("qwen", {}, [9000]), spec: { targetPorts: [{ number: 9000 }] } });
    await until(
      () => logs.some((l) => l.msg === "discovery: invalid InferencePool ignored"),
      "invalid pool logged",
    );
    expect(addresses(store)).toEqual(["10.0.0.2:9000"]);

    api.delete(POOLS_V1, "default", "qwen");
    await until(() => store.size === 0 && !d.synced(), "pool deleted → emptied, not synced");

    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    await until(() => d.synced() && store.size === 2, "pool re-created");
  });

  it("is not synced while the pool does not exist", async () => {
    api = await new FakeKubeApi().start();
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    const { d, store } = startDiscovery(api);
    await until(() => api!.openWatches(POOLS_V1) === 1, "pool watch open");
    expect(d.synced()).toBe(false);
    expect(store.size).toBe(0);
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    await until(() => d.synced() && store.size === 1, "pool appeared");
  });

  it("falls back to inference.networking.x-k8s.io/v1alpha2 when v1 is not served", async () => {
    api = await new FakeKubeApi().start();
    api.served.delete(POOLS_V1);
    api.apply(POOLS_V1ALPHA2, poolV1alpha2("qwen", { app: "vllm" }, 8000));
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    const { d, store } = startDiscovery(api);
    await until(() => d.synced(), "synced via v1alpha2");
    expect(addresses(store)).toEqual(["10.0.0.1:8000"]);
  });
});

describe("KubeDiscovery on a misbehaving API server", () => {
  it("keeps the last known pool while the API server is down and catches up after its restart", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    api.apply("pods", podObject("vllm-b", "10.0.0.2"));
    const { d, store } = startDiscovery(api);
    await until(() => d.synced() && store.size === 2, "synced");

    await api.stop();
    // Changes while the server is away (they are in its store and history, as etcd keeps them).
    api.delete("pods", "default", "vllm-b");
    api.apply("pods", podObject("vllm-c", "10.0.0.3"));
    await until(
      () => logs.some((l) => l.msg === "kube: API server call failed; keeping the last known state"),
      "failure",
    );
    expect(addresses(store)).toEqual(["10.0.0.1:8000", "10.0.0.2:8000"]);
    expect(d.synced()).toBe(true);

    const listsBefore = api.requests.filter((r) => !r.watch && r.resource === "pods").length;
    await api.restart();
    await until(() => addresses(store).join() === "10.0.0.1:8000,10.0.0.3:8000", "caught up");
    // Resumed by re-watching from the last resourceVersion, not by re-listing.
    expect(api.requests.filter((r) => !r.watch && r.resource === "pods").length).toBe(listsBefore);
  });

  it("re-lists after 410 Gone (history compacted while down, or an ERROR event on a live watch)", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    const { d, store } = startDiscovery(api);
    await until(() => d.synced() && api!.openWatches("pods") === 1, "watching");
    const podLists = () => api!.requests.filter((r) => !r.watch && r.resource === "pods").length;
    const lists0 = podLists();

    await api.stop();
    api.delete("pods", "default", "vllm-a");
    api.apply("pods", podObject("vllm-b", "10.0.0.2"));
    api.compact();
    await api.start(api.port);
    await until(() => addresses(store).join() === "10.0.0.2:8000", "re-listed after 410");
    expect(podLists()).toBeGreaterThan(lists0);

    await until(() => api!.openWatches("pods") === 1, "watching again");
    const lists1 = podLists();
    api.compact();
    api.expireWatches();
    api.apply("pods", podObject("vllm-c", "10.0.0.3"));
    await until(() => store.size === 2, "re-listed after an ERROR 410 event");
    expect(podLists()).toBeGreaterThan(lists1);
  });

  it("resumes from a BOOKMARK's resourceVersion when a watch ends normally", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    const { d } = startDiscovery(api);
    await until(() => d.synced() && api!.openWatches("pods") === 1, "watching");
    api.apply("pods", podObject("unrelated", "10.0.0.7", { labels: { app: "x" } })); // bumps the version unseen
    api.bookmark();
    const bookmarkRv = api.get("pods", "default", "unrelated")!.metadata.resourceVersion;
    await until(() => logs.length > 0, "tick"); // let the bookmark line arrive
    await new Promise((r) => setImmediate(r));
    api.endWatches();
    await until(() => api!.openWatches("pods") === 1, "re-watched");
    const last = api.requests.filter((r) => r.watch && r.resource === "pods").at(-1)!;
    expect(last.resourceVersion).toBe(bookmarkRv);
  });

  it("survives an unreachable API server at startup and syncs once it appears", async () => {
    const probe = await new FakeKubeApi().start();
    const port = probe.port;
    probe.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    probe.apply("pods", podObject("vllm-a", "10.0.0.1"));
    const kc = probe.kubeConfig();
    await probe.stop();
    api = probe;
    const store = new EndpointStore();
    discovery = new KubeDiscovery({
      api: new KubeApi(kc, { requestTimeoutMs: 500 }),
      store,
      logger,
      namespace: "default",
      poolName: "qwen",
      initialBackoffMs: 10,
      maxBackoffMs: 50,
    });
    discovery.start();
    await until(
      () =>
        logs.filter((l) => l.msg === "kube: API server call failed; keeping the last known state").length >=
        3,
      "retrying",
    );
    expect(discovery.synced()).toBe(false);
    await probe.start(port);
    const d = discovery;
    await until(() => d.synced() && store.size === 1, "synced after the server appeared");
  });

  it("retries HTTP errors (500, 401) without giving up", async () => {
    api = await new FakeKubeApi().start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000]));
    api.apply("pods", podObject("vllm-a", "10.0.0.1"));
    api.failWith = 500;
    const { d, store } = startDiscovery(api);
    await until(() => api!.requests.length >= 3, "retried");
    expect(d.synced()).toBe(false);
    api.failWith = null;
    await until(() => d.synced() && store.size === 1, "recovered");
  });
});

describe("KubeDiscovery with --endpoint-selector (no CRDs)", () => {
  it("watches pods by selector on the given ports", async () => {
    api = await new FakeKubeApi().start();
    api.served.clear();
    api.served.add("pods");
    api.apply("pods", podObject("vllm-a", "10.0.0.1", { labels: { app: "vllm", model: "qwen" } }));
    api.apply("pods", podObject("vllm-b", "10.0.0.2", { labels: { app: "vllm", model: "llama" } }));
    const { d, store } = startDiscovery(api, {
      poolName: null,
      selector: "app=vllm,model in (qwen)",
      targetPorts: [8000],
    });
    await until(() => d.synced(), "synced");
    expect(addresses(store)).toEqual(["10.0.0.1:8000"]);
    api.apply("pods", podObject("vllm-b", "10.0.0.2", { labels: { app: "vllm", model: "qwen" } }));
    await until(() => store.size === 2, "vllm-b relabelled in");
  });
});
