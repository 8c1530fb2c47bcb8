// deploy/ in CI: every YAML parses; the base and both overlays render (test/deploy/kustomize.ts, kustomize
// v5 semantics) to exactly the committed renderings (test/deploy/rendered/, drift check; regenerate with
// KVPICK_UPDATE_RENDERED=1); every object validates against its Kubernetes schema; every kvpick flag used
// exists in `kvpick serve`; the scheduling ConfigMap is a valid kvpick config; and the reference wiring holds
// (vLLM hashing contract, KV-event topic and endpoint, FULL_DUPLEX_STREAMED, ORIGINAL_DST). When a real
// `kubectl` is on PATH, the renderer is also compared with `kubectl kustomize`.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { needsBlockHashes } from "../../src/config/startup-checks.js";
import { configFromArgs, SERVE_FLAGS } from "../../src/cli/serve-command.js";
import { loadConfigWithNotes, parseConfig } from "../../src/config/load.js";
import { validateObject } from "./k8s-schema.js";
import { type K8sObject, kustomizeBuild, parseYamlFile } from "./kustomize.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const DEPLOY = join(repoRoot, "deploy");
const RENDERED = join(repoRoot, "test", "deploy", "rendered");
const TARGETS = {
  base: "base",
  reference: "overlays/reference",
  "connect-mode": "overlays/connect-mode",
  "bind-mode-redis": "overlays/bind-mode-redis",
  ack: "overlays/ack",
};

type Container = {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
};
const containers = (o: K8sObject) =>
  (o.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers;
const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`${kind}/${name} not rendered`);
  return o;
};

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(f) ? [p] : [];
  });
}

describe("deploy/ manifests", () => {
  it("every YAML file parses", () => {
    const files = yamlFiles(DEPLOY);
    expect(files.length).toBeGreaterThan(10);
    for (const f of files)
      for (const d of parseAllDocuments(readFileSync(f, "utf8")))
        expect(d.errors.map((e) => `${f}: ${e.message}`)).toEqual([]);
  });

  for (const [name, dir] of Object.entries(TARGETS)) {
    describe(name, () => {
      const objects = kustomizeBuild(join(DEPLOY, dir));

      it("renders to the committed rendering", () => {
        const text = objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
        const file = join(RENDERED, `${name}.yaml`);
        if (process.env.KVPICK_UPDATE_RENDERED === "1") {
          mkdirSync(RENDERED, { recursive: true });
          writeFileSync(file, text);
        }
        expect(existsSync(file), `${file} missing: run with KVPICK_UPDATE_RENDERED=1`).toBe(true);
        expect(parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS())).toEqual(
          JSON.parse(JSON.stringify(objects)),
        );
      });

      it("validates against the Kubernetes schemas", () => {
        expect(objects.flatMap(validateObject)).toEqual([]);
        const ids = objects.map((o) => `${o.kind}/${o.metadata.name}`);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it("uses only flags kvpick serve has, and a valid kvpick config", () => {
        const epp = find(objects, "Deployment", "kvpick");
        const [c] = containers(epp);
        expect(c!.args![0]).toBe("serve");
        for (const arg of c!.args!.slice(1)) {
          const flag = /^--([a-z0-9-]+)(=|$)/.exec(arg);
          expect(flag, `not a --flag: ${arg}`).not.toBeNull();
          expect(Object.keys(SERVE_FLAGS), `--${flag![1]} is not a kvpick serve flag`).toContain(flag![1]);
        }
        const sources = c!.args!.filter((a) => /^--(pool-name|endpoint-selector|endpoints)=/.test(a));
        expect(sources).toHaveLength(1);
        const cm = find(objects, "ConfigMap", "kvpick-config");
        // A kvpick config, or a foreign one kvpick reads (ACK's InferenceTrafficPolicy).
        const { config } = loadConfigWithNotes({ text: (cm.data as Record<string, string>)["config.yaml"]! });
        expect(config.tokenizer).toMatchObject({
          blockSize: 64,
          hashAlgo: "sha256_cbor_64bit",
          hashSeed: "42",
        });
      });

      if (name !== "base" && name !== "ack")
        it("wires vLLM, the pool and kvpick together", () => {
          const [vllm] = containers(find(objects, "Deployment", "vllm-qwen3-32b"));
          const args = vllm!.args!;
          expect(args).toContain("--block-size=64");
          expect(args).toContain("--prefix-caching-hash-algo=sha256_cbor_64bit");
          // sha256_cbor_64bit exists only in vLLM 0.10.0 – 0.10.1.1 (later versions reject the flag value).
          const version = /:v(\d+)\.(\d+)\.(\d+)/.exec(vllm!.image ?? "");
          expect(version?.slice(1, 3)).toEqual(["0", "10"]);
          expect(Number(version?.[3])).toBeLessThanOrEqual(1);
          expect(vllm!.env!.find((e) => e.name === "PYTHONHASHSEED")?.value).toBe("42");
          const kvConfig = JSON.parse(args[args.indexOf("--kv-events-config") + 1]!);
          expect(kvConfig).toMatchObject({
            enable_kv_cache_events: true,
            publisher: "zmq",
            topic: "kv@$(POD_IP)@Qwen3-32B",
          });
          const [epp] = containers(find(objects, "Deployment", "kvpick"));
          // Replay: vLLM binds its ROUTER on 5558, kvpick dials <pod ip>:5558 (+ DP rank).
          expect(kvConfig.replay_endpoint).toBe("tcp://*:5558");
          expect(epp!.args).toContain("--kv-events-replay-port=5558");
          if (name === "reference" || name === "bind-mode-redis") {
            expect(kvConfig.endpoint).toBe("tcp://kvpick.$(NAMESPACE).svc.cluster.local:5557");
            expect(epp!.args).toContain("--kv-events-mode=bind");
            if (name === "bind-mode-redis") {
              // Several bind-mode replicas only make sense with the shared index, pointed at its Service.
              const url = epp!.args!.find((a) => a.startsWith("--redis-url="))!.slice("--redis-url=".length);
              const redis = find(objects, "Service", "kvpick-redis");
              expect(url).toBe(`redis://${redis.metadata.name}:6379`);
              expect(parseConfig({ index: { redis: { url } } }).index.redis.url).toBe(url);
              expect(
                (find(objects, "Deployment", "kvpick").spec as { replicas: number }).replicas,
              ).toBeGreaterThan(1);
            }
          } else {
            expect(kvConfig.endpoint).toBe("tcp://*:5557");
            expect(epp!.args).toContain("--kv-events-mode=connect");
            expect(
              (find(objects, "Deployment", "kvpick").spec as { replicas: number }).replicas,
            ).toBeGreaterThan(1);
          }
          const pool = find(objects, "InferencePool", "qwen3-32b");
          const poolSpec = pool.spec as {
            selector: { matchLabels: Record<string, string> };
            endpointPickerRef: { name: string };
          };
          const vllmLabels = (
            find(objects, "Deployment", "vllm-qwen3-32b").spec as {
              template: { metadata: { labels: Record<string, string> } };
            }
          ).template.metadata.labels;
          expect(vllmLabels).toMatchObject(poolSpec.selector.matchLabels);
          expect(poolSpec.endpointPickerRef.name).toBe("kvpick");
          expect(epp!.args).toContain(`--pool-name=${pool.metadata.name}`);
          const policy = find(objects, "EnvoyExtensionPolicy", "kvpick-ext-proc");
          expect(JSON.stringify(policy.spec)).toContain('"body":"FullDuplexStreamed"');
        });

      it.runIf(hasKubectl())("matches `kubectl kustomize`", () => {
        const out = spawnSync("kubectl", ["kustomize", join(DEPLOY, dir)], { encoding: "utf8" });
        expect(out.status, out.stderr).toBe(0);
        const real = parseAllDocuments(out.stdout).map((d) => d.toJS()) as K8sObject[];
        const byId = (list: K8sObject[]) =>
          Object.fromEntries(
            list.map((o) => [`${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`, o]),
          );
        expect(byId(JSON.parse(JSON.stringify(objects)))).toEqual(byId(real));
      });
    });
  }

  it("the ACK overlay makes kvpick the v1alpha2 pool's EPP with ACK's policy as its config", () => {
    const objects = kustomizeBuild(join(DEPLOY, "overlays", "ack"));
    const pool = find(objects, "InferencePool", "qwen-inference-pool");
    expect(pool.apiVersion).toBe("inference.networking.x-k8s.io/v1alpha2");
    const spec = pool.spec as {
      selector: Record<string, string>;
      targetPortNumber: number;
      extensionRef: object;
    };
    expect(spec.extensionRef).toMatchObject({ name: "kvpick", portNumber: 9002 });
    const svc = find(objects, "Service", "kvpick");
    expect(JSON.stringify(svc.spec)).toContain('"port":9002');
    expect(
      (find(objects, "Gateway", "inference-gateway").spec as { gatewayClassName: string }).gatewayClassName,
    ).toBe("ack-gateway");
    const route = find(objects, "HTTPRoute", "inference-route");
    expect(JSON.stringify(route.spec)).toContain('"kind":"InferencePool","name":"qwen-inference-pool"');

    const vllmDeploy = find(objects, "Deployment", "qwen3");
    const [vllm] = containers(vllmDeploy);
    const podLabels = (vllmDeploy.spec as { template: { metadata: { labels: Record<string, string> } } })
      .template.metadata.labels;
    expect(podLabels).toMatchObject(spec.selector);
    expect(vllm!.args).toContain(`--port=${spec.targetPortNumber}`);
    const args = vllm!.args!;
    const kvConfig = JSON.parse(args[args.indexOf("--kv-events-config") + 1]!);
    expect(kvConfig).toEqual({
      enable_kv_cache_events: true,
      publisher: "zmq",
      endpoint: "tcp://kvpick.$(NAMESPACE).svc.cluster.local:5557",
      topic: "kv@$(POD_IP)@Qwen3-32B",
    });

    const [epp] = containers(find(objects, "Deployment", "kvpick"));
    expect(epp!.args).toEqual(
      expect.arrayContaining([
        `--pool-name=${pool.metadata.name}`,
        "--pool-group=inference.networking.x-k8s.io",
        "--kv-events-mode=bind",
      ]),
    );
    // The hashing contract comes from the policy and equals the vLLM pods'.
    const cm = find(objects, "ConfigMap", "kvpick-config");
    const text = (cm.data as Record<string, string>)["config.yaml"]!;
    expect(text).toContain("kind: InferenceTrafficPolicy");
    const { config } = loadConfigWithNotes({ text });
    expect(args).toContain(`--block-size=${config.tokenizer.blockSize}`);
    expect(vllm!.env!.find((e) => e.name === "PYTHONHASHSEED")?.value).toBe(config.tokenizer.hashSeed);
    expect(needsBlockHashes(config)).toBe(true); // tracking mode = kvpick's precise profile
  });

  it("the base grants the /metrics reviews and a metrics-reader role, as GIE's chart does", () => {
    const objects = kustomizeBuild(join(DEPLOY, "overlays", "ack"));
    const role = find(objects, "ClusterRole", "kvpick-auth-reviews");
    expect(role.rules).toEqual([
      { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
      { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
    ]);
    const binding = find(objects, "ClusterRoleBinding", "kvpick-auth-reviews");
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "kvpick", namespace: "default" }]);
    expect(find(objects, "ClusterRole", "kvpick-metrics-reader").rules).toEqual([
      { nonResourceURLs: ["/metrics"], verbs: ["get"] },
    ]);
  });

  it("the Helm values run kvpick under the GIE v1.5 inferencepool chart's rendered args", () => {
    // biome-ignore lint/suspicious/noExplicitAny: a Helm values file is untyped
    const [values] = parseYamlFile(join(DEPLOY, "helm", "kvpick-values.yaml")) as Array<Record<string, any>>;
    const ext = values!.inferenceExtension;
    expect(ext.image).toMatchObject({ registry: "ghcr.io", repository: "kvpick/kvpick" });
    const dir = mkdtempSync(join(tmpdir(), "kvpick-helm-"));
    writeFileSync(join(dir, ext.pluginsConfigFile), ext.pluginsCustomConfig[ext.pluginsConfigFile]);
    // config/charts/epplib/templates/_deployment.yaml at v1.5.0 with these values (release qwen3-32b).
    const args = [
      ...[
        "--pool-name",
        "qwen3-32b",
        "--pool-namespace",
        "inference",
        "--pool-group",
        "inference.networking.k8s.io",
      ],
      ...["--zap-encoder", "json", "--config-file", join(dir, ext.pluginsConfigFile)],
      ...Object.keys(ext.flags)
        .sort()
        .flatMap((k) => [`--${k}`, String(ext.flags[k])]),
      "--tracing=false",
    ];
    const { config } = configFromArgs(args);
    expect(config.tokenizer).toMatchObject({ blockSize: 64, hashAlgo: "sha256_cbor_64bit", hashSeed: "42" });
    expect(config.kvEvents).toMatchObject({ mode: "bind", endpoint: "tcp://*:5557" });
    expect(config.server).toMatchObject({
      metricsEndpointAuth: true,
      secureServing: true,
      drainTimeoutMs: 30_000,
    });
    expect(config.pool).toMatchObject({ name: "qwen3-32b", group: "inference.networking.k8s.io" });
    expect(ext.extraServicePorts).toEqual([expect.objectContaining({ port: 5557 })]);
    expect(ext.monitoring.prometheus).toMatchObject({ enabled: true, auth: { enabled: true } });
  });

  it("the plain Envoy bootstrap streams full-duplex to kvpick and routes by ORIGINAL_DST", () => {
    // biome-ignore lint/suspicious/noExplicitAny: Envoy's bootstrap YAML is untyped
    const [boot] = parseYamlFile(join(DEPLOY, "envoy", "envoy-bootstrap.yaml")) as Array<Record<string, any>>;
    const hcm = boot!.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const extProc = hcm.http_filters.find(
      (f: { name: string }) => f.name === "envoy.filters.http.ext_proc",
    ).typed_config;
    expect(extProc.processing_mode).toMatchObject({
      request_body_mode: "FULL_DUPLEX_STREAMED",
      request_trailer_mode: "SEND",
      response_body_mode: "FULL_DUPLEX_STREAMED",
    });
    expect(extProc.metadata_options.receiving_namespaces.untyped).toContain("envoy.lb");
    // biome-ignore lint/suspicious/noExplicitAny: Envoy's bootstrap YAML is untyped
    const clusters = boot!.static_resources.clusters as Array<Record<string, any>>;
    const dst = clusters.find((c) => c.name === hcm.route_config.virtual_hosts[0].routes[0].route.cluster)!;
    expect(dst.type).toBe("ORIGINAL_DST");
    expect(dst.original_dst_lb_config).toEqual({
      use_http_header: true,
      http_header_name: "x-gateway-destination-endpoint",
    });
    const epp = clusters.find((c) => c.name === extProc.grpc_service.envoy_grpc.cluster_name)!;
    expect(epp.typed_extension_protocol_options).toBeDefined(); // gRPC needs HTTP/2
  });
});

function hasKubectl(): boolean {
  return spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
}
