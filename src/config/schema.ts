// The whole kvpick configuration as one zod schema: the single source of its TypeScript type, its defaults
// and its validation. Every object is strict, so a misspelt key fails at startup with its full path.
import { z } from "zod";
import { tracingSchema } from "./tracing-schema.js";
import { flowControlSchema } from "./flow-control-schema.js";

/** Integer in [min, max]; the message is completed with the offending value by `formatIssue`. */
const intIn = (min: number, max: number) =>
  z
    .number({ error: `expected integer ${min}..${max}` })
    .int({ error: `expected integer ${min}..${max}` })
    .min(min, { error: `expected integer ${min}..${max}` })
    .max(max, { error: `expected integer ${min}..${max}` });

const numIn = (min: number, max: number) =>
  z
    .number({ error: `expected number ${min}..${max}` })
    .min(min, { error: `expected number ${min}..${max}` })
    .max(max, { error: `expected number ${min}..${max}` });

const port = () => intIn(0, 65535);

// The hash-algo and key-mode vocabularies belong to kv-index (the domain reads them); the schema re-exports them.
export {
  HASH_ALGOS,
  type HashAlgo,
  isReproducible,
  KEY_MODES,
  type KeyMode,
  REPRODUCIBLE_ALGOS,
  type ReproducibleAlgo,
} from "../kv-index/hash-algos.js";
import { HASH_ALGOS, KEY_MODES } from "../kv-index/hash-algos.js";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const modelSchema = z.strictObject({
  /** Directory holding tokenizer.json and tokenizer_config.json (and optionally chat_template.jinja). */
  tokenizerDir: z
    .string({ error: "expected a directory path" })
    .min(1, { error: "expected a directory path" }),
});

/** A scheduling plugin reference (GIE vocabulary); `parameters` are checked by the plugin's own schema. */
const pluginRefSchema = z.strictObject({
  type: z.string({ error: "expected a plugin type name" }).min(1, { error: "expected a plugin type name" }),
  name: z.string().min(1).optional(),
  parameters: z.record(z.string(), z.unknown()).default({}),
});

export const configSchema = z.strictObject({
  logLevel: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` }).default("info"),

  /** How a request becomes vLLM block hashes. Must match every pod's vLLM flags and environment. */
  tokenizer: z
    .strictObject({
      /**
       * vLLM `--block-size`: tokens per KV block; only full blocks are hashed. null = learnt from the pods
       * (their `vllm:cache_config_info` or KV events; learnt-block-size.ts); a configured value always wins.
       */
      blockSize: intIn(1, 1024).nullable().default(null),
      /**
       * The pods' PYTHONHASHSEED, as the string vLLM hashes (e.g. "42"). Required only with
       * `kvEvents.keys: engine`; null = not configured: requests are hashed with kvpick's own fixed seed and
       * pods are indexed by token keys (kvEvents.keys auto/tokens).
       */
      hashSeed: z.string({ error: "expected a string (the pods' PYTHONHASHSEED)" }).nullable().default(null),
      /** vLLM `--prefix-caching-hash-algo`. */
      hashAlgo: z
        .enum(HASH_ALGOS, { error: `expected one of ${HASH_ALGOS.join(", ")}` })
        .default("sha256_cbor_64bit"),
      /** Served model name → tokenizer files. Models not listed use `defaultTokenizerDir`. */
      models: z.record(z.string(), modelSchema).default({}),
      /** Tokenizer for unlisted models; null = the bundled Qwen3 tokenizer. */
      defaultTokenizerDir: z.string().nullable().default(null),
      /** Memory bound of the per-segment token-id cache (bytes of cached text + ids). */
      cacheBytes: intIn(0, 2 ** 40).default(256 * 1024 * 1024),
      /** Prompts with more uncached characters than this are tokenized on a worker thread. */
      workerThresholdChars: intIn(0, 2 ** 31).default(16 * 1024),
      /**
       * Recently hashed blocks kept for reuse by requests sharing a prefix (exact: hits are verified);
       * 320 bytes each at block size 64, so the default 65,536 (4 M tokens of prompts) costs 21 MB.
       */
      hashMemoBlocks: intIn(0, 2 ** 24).default(65_536),
      /**
       * Recent request bodies kept with their parse and block chain (bytes; 0 = off): the same body again (a
       * retry, an n > 1 fan-out, a replay) skips parse, render, tokenize and hash. Exact: hits are verified
       * byte for byte. A body is kept from its second sighting; each costs ~3× its size.
       */
      requestMemoBytes: intIn(0, 2 ** 40).default(32 * 1024 * 1024),
      /**
       * Longest conversation (chat `messages`) one request may have; longer ones get 413. Rendering costs
       * ~35 µs of CPU per message (on a worker thread beyond 64 messages).
       */
      maxChatMessages: intIn(1, 2 ** 31 - 1).default(100_000),
      /** Tokenizer worker threads (0 = always tokenize and render on the main thread). */
      workerThreads: intIn(0, 64).default(1),
      /**
       * Chat requests with more messages than this are rendered, tokenized and hashed on a worker thread
       * (each worker keeps its own token cache of `cacheBytes / workerThreads`). 64 keeps short chats on the
       * main thread (no round trip); 0 sends every chat request there, so a 2-core pod uses both cores.
       */
      workerRenderMessages: intIn(0, 2 ** 31 - 1).default(64),
      /**
       * How vLLM keys a LoRA request's blocks: `id` = the adapter's int id (vLLM ≤ 0.11.0), `name` = its name
       * (≥ 0.11.1, vllm-project/vllm#27211); `auto` = id with sha256_cbor_64bit (0.10.0–0.10.1), else name.
       */
      loraKey: z.enum(["auto", "id", "name"], { error: "expected auto, id or name" }).default("auto"),
      /**
       * LoRA adapters the pods serve, by the name clients put in `model`: `id` = vLLM's lora_int_id (1, 2, …
       * in --lora-modules order; required when the key is the id), `baseModel` = the served model whose
       * tokenizer applies (default: tokenizer.defaultTokenizerDir). Adapters reported by the pods'
       * vllm:lora_requests_info are recognised without this when the key is the name.
       */
      loras: z
        .record(
          z.string(),
          z.strictObject({
            id: intIn(1, 2 ** 31 - 1).optional(),
            baseModel: z.string({ error: "expected a served model name" }).min(1).optional(),
          }),
        )
        .default({}),
    })
    .prefault({}),

  /** vLLM ZeroMQ KV-cache event subscription. */
  kvEvents: z
    .strictObject({
      /** bind: one SUB bound here, pods connect (reference deployment). connect: one SUB per pod. */
      mode: z.enum(["bind", "connect"], { error: "expected bind or connect" }).default("bind"),
      /** Bind address in bind mode. */
      endpoint: z.string().min(1).default("tcp://*:5557"),
      /**
       * What the index is keyed by. engine = the hashes the pods publish (needs tokenizer.hashSeed/hashAlgo
       * equal to the pods'); tokens = kvpick's own chain over each BlockStored's token_ids, with a per-pod map
       * engine hash → kvpick key for parents and removals (any seed, any algo); auto = engine hashes for a pod
       * while its root-block check agrees, token keys from its first disagreement on.
       */
      keys: z.enum(KEY_MODES, { error: `expected one of ${KEY_MODES.join(", ")}` }).default("auto"),
      /** Pod port in connect mode (data-parallel rank N publishes on port + N). */
      port: port().default(5557),
      /** ZeroMQ prefix subscription. */
      topicFilter: z.string().default("kv@"),
      /**
       * The pods' vLLM `replay_endpoint` port (a ROUTER kvpick dials with a DEALER at
       * tcp://<pod ip>:<replayPort + data-parallel rank>) to recover lost batches. null or 0 = replay off:
       * vLLM has no default replay endpoint.
       */
      replayPort: port().nullable().default(null),
      /** A replay with no reply for this long fails (vLLM answers between engine steps, ≤ 100 ms when idle). */
      replayTimeoutMs: intIn(1, 600_000).default(2000),
      /** After a failed replay, no new replay of that endpoint for this long (llm-d: 30 s). */
      replayCooldownMs: intIn(0, 3_600_000).default(30_000),
      /** Replays in flight at once; more wait their turn (llm-d: 8). */
      maxConcurrentReplays: intIn(1, 1024).default(8),
      /** Live batches held per pod while it replays (applied after the replayed ones); past it they are dropped. */
      maxHeldBatches: intIn(1, 1_000_000).default(10_000),
      /** A degraded pod without replay is trusted again after this long without further loss (and ≥ 1 batch). */
      healAfterMs: intIn(0, 86_400_000).default(60_000),
      /**
       * Bind mode: accept events from pods outside the current pool. Default false: only pool members (topic
       * pod id = an endpoint's ip or ip:port) may write the index; others are counted and ignored.
       */
      acceptUnknownPods: z.boolean({ error: "expected true or false" }).default(false),
    })
    .prefault({}),

  /** The in-memory block index (and its optional shared copy in Redis). */
  index: z
    .strictObject({
      /** Cap on block-pod entries; past it the least recently stored blocks are evicted. */
      maxEntries: intIn(1, 2 ** 31).default(16 * 1024 * 1024),
      /** Credit of a cached block per medium when scoring a prefix (vLLM media names, upper case). */
      mediumWeights: z.record(z.string(), numIn(0, 1)).default({ GPU: 1, CPU: 0.8 }),
      /** Prefix credit of a pod whose KV-event state is degraded (events lost, not recovered), × this factor. */
      degradedCreditFactor: numIn(0, 1).default(0.5),
      /**
       * Optional shared index in Redis (README "High availability"): replicas mirror their index into it and
       * read it per request (the union of every replica's pods; warm restarts). url null = off.
       */
      redis: z
        .strictObject({
          /** redis://[:password@]host:port[/db] or rediss:// (TLS); null = no shared index. */
          url: z
            .string({ error: "expected redis://host:port or null" })
            .regex(/^rediss?:\/\/\S+$/, { error: "expected redis://host:port or rediss://host:port" })
            .nullable()
            .default(null),
          /** Prefix of every key, so several pools (or kvpick deployments) can share one Redis. */
          keyPrefix: z.string().max(256).default("kvpick:"),
          /** An entry not re-stored for this long expires (bounds memory when removals are lost). */
          ttlSeconds: intIn(1, 30 * 86_400).default(3600),
          /** A request waits at most this long for Redis, then routes on the local index alone. */
          lookupTimeoutMs: intIn(1, 60_000).default(5),
          /** Changes waiting to be written; past it (Redis too slow) they are dropped and counted. */
          maxPendingWrites: intIn(1, 100_000_000).default(100_000),
          connectTimeoutMs: intIn(1, 60_000).default(2000),
        })
        .prefault({}),
    })
    .prefault({}),

  /** The ext_proc server and its side ports (GIE defaults). */
  server: z
    .strictObject({
      grpcPort: port().default(9002),
      grpcHealthPort: port().default(9003),
      metricsPort: port().default(9090),
      /** TLS on the ext_proc port; a self-signed certificate unless certPath holds tls.crt / tls.key. */
      secureServing: z.boolean({ error: "expected true or false" }).default(true),
      certPath: z.string().nullable().default(null),
      /** Request bodies above this are answered 413 (Envoy buffers nothing for us). */
      maxBodyBytes: intIn(1, 2 ** 31 - 1).default(16 * 1024 * 1024),
      /**
       * On SIGTERM: readiness → NOT_SERVING at once, in-flight ext_proc streams get this long to finish, then
       * they are cut (llm-d's --drain-timeout). Keep it below the pod's terminationGracePeriodSeconds.
       */
      drainTimeoutMs: intIn(0, 3_600_000).default(30_000),
      /**
       * The ext_proc gRPC server (and gRPC health) on a worker thread of its own: grpc-js, HTTP/2 and the
       * ext_proc stream use the second core while the main thread routes. Off = everything on the main thread.
       */
      grpcThread: z.boolean({ error: "expected true or false" }).default(true),
      /** Every candidate's scores in response metadata `envoy.lb` / `x-gateway-destination-endpoint-scores` (debugging; llm-d's --emit-endpoint-scores). */
      emitEndpointScores: z.boolean({ error: "expected true or false" }).default(false),
      /**
       * File holding a bearer token that `/metrics` requires (`Authorization: Bearer <token>`); null = open.
       * Re-read every 30 s, so a rotated Secret takes effect. `/healthz` and `/readyz` stay open for probes.
       */
      metricsBearerTokenFile: z.string().min(1).nullable().default(null),
      /**
       * GIE's --metrics-endpoint-auth: in Kubernetes (a discovered pool, in-cluster credentials or $KUBECONFIG)
       * `/metrics` wants a bearer token the API server accepts (TokenReview) and allows `get` on `/metrics`
       * (SubjectAccessReview). false = open (or the static token file, when set).
       */
      metricsEndpointAuth: z.boolean({ error: "expected true or false" }).default(true),
    })
    .prefault({}),

  /** Load metrics scraped from every pod's vLLM `/metrics` (GIE: `--refresh-metrics-interval` 50ms). */
  endpoints: z
    .strictObject({
      scrapeIntervalMs: intIn(1, 60_000).default(50),
      /** Connect + full page; GIE's poll timeout is 1 s. */
      scrapeTimeoutMs: intIn(1, 60_000).default(1000),
      /** An older successful reading no longer counts as fresh (GIE's metrics-staleness-threshold, 2 s). */
      staleAfterMs: intIn(1, 3_600_000).default(2000),
      metricsPath: z
        .string()
        .startsWith("/", { error: "expected a path starting with /" })
        .default("/metrics"),
      /** GIE's --model-server-metrics-scheme. */
      metricsScheme: z.enum(["http", "https"], { error: "expected http or https" }).default("http"),
      /** https only: skip the pods' certificate check (GIE's default). */
      metricsInsecureSkipVerify: z.boolean({ error: "expected true or false" }).default(true),
      /**
       * The gauges read per pod, in GIE's metric spec syntax (`name` or `name{label=value}`; "" = not read,
       * for loraInfo / cacheInfo). Defaults: vLLM's. GIE's --total-queued-requests-metric etc. set them.
       */
      metricNames: z
        .strictObject({
          waiting: z.string().default("vllm:num_requests_waiting"),
          running: z.string().default("vllm:num_requests_running"),
          kvCacheUsage: z.string().default("vllm:kv_cache_usage_perc"),
          loraInfo: z.string().default("vllm:lora_requests_info"),
          cacheInfo: z.string().default("vllm:cache_config_info"),
        })
        .prefault({}),
    })
    .prefault({}),

  /**
   * The scheduling profile: filters → weighted scorers (each score in [0, 1]) → picker. Types name plugins
   * in src/scheduling/plugins; each plugin validates its own `parameters`. Default = kvpick's profile: the
   * TTFT cost scorer with speculative entries and dispatch credit (bench/README.md: it beats GIE's weighted
   * precise profile, which stays available as precise-prefix-cache 3 + queue 2 + kv-cache-utilization 2).
   */
  scheduling: z
    .strictObject({
      filters: z.array(pluginRefSchema).default(() => [{ type: "fresh-metrics-filter", parameters: {} }]),
      scorers: z
        .array(pluginRefSchema.extend({ weight: numIn(0, 1e6).default(1) }))
        .default(() => [{ type: "ttft-cost-scorer", weight: 1, parameters: {} }]),
      picker: pluginRefSchema.default(() => ({ type: "max-score-picker", parameters: {} })),
      /**
       * Speculative prefix entries: a routed request's blocks count as cached on its pod for this long, until
       * vLLM's BlockStored confirms them (llm-d's speculativeTTL); covers bursts sharing a new prefix before
       * events arrive. 0 = off.
       */
      speculativeTtlMs: intIn(0, 600_000).default(2000),
      /** Bound on speculative (pod, block) entries (~40 bytes each). */
      speculativeMaxEntries: intIn(1, 2 ** 26 - 1).default(262_144),
      /** Add the requests and prompt tokens kvpick routed since an endpoint's last scrape to its load. */
      dispatchCredit: z.boolean({ error: "expected true or false" }).default(true),
    })
    .prefault({}),

  /**
   * Where the pool comes from — at most one of: a static list (`--endpoints ip:port,…`), an InferencePool
   * (`--pool-name`), or a bare pod selector (`--endpoint-selector` + `--endpoint-target-ports`).
   */
  pool: z
    .strictObject({
      endpoints: z.array(z.string()).default([]),
      /** InferencePool to follow (GIE --pool-name). */
      name: z.string().min(1).nullable().default(null),
      /** Namespace of the pool and its pods; null = $NAMESPACE, else "default". */
      namespace: z.string().min(1).nullable().default(null),
      /** InferencePool API group: inference.networking.k8s.io (v1) or inference.networking.x-k8s.io (v1alpha2). */
      group: z
        .enum(["inference.networking.k8s.io", "inference.networking.x-k8s.io"], {
          error: "expected inference.networking.k8s.io or inference.networking.x-k8s.io",
        })
        .default("inference.networking.k8s.io"),
      /** Pods by label selector, without CRDs (GIE --endpoint-selector), e.g. "app=vllm,model=qwen". */
      endpointSelector: z.string().min(1).nullable().default(null),
      /** Model-server ports with endpointSelector; several = one endpoint per data-parallel rank. */
      targetPorts: z.array(intIn(1, 65535)).max(8, { error: "expected at most 8 ports" }).default([]),
    })
    .prefault({}),

  /** OpenTelemetry tracing (config/tracing-schema.ts). */
  tracing: tracingSchema,
  flowControl: flowControlSchema,
});

/** The validated configuration with every default filled in. */
export type Config = z.infer<typeof configSchema>;
/** What a config file, `--config-text` or flags may say: every field optional. */
export type ConfigInput = z.input<typeof configSchema>;
