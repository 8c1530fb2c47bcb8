// Server credentials for the ext_proc port, as GIE serves it: TLS by default with a self-signed
// certificate generated at startup (Envoy's EPP cluster uses TLS with an empty validation context, so the
// certificate is never verified), `tls.crt` / `tls.key` from --cert-path when given, or plaintext (h2c).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ServerCredentials } from "@grpc/grpc-js";
import { generate } from "selfsigned";

export interface TlsOptions {
  secureServing: boolean;
  /** Directory holding tls.crt and tls.key; null/undefined → self-signed. */
  certPath?: string | null | undefined;
}

export interface KeyPair {
  cert: string;
  key: string;
}

export async function serverCredentials(options: TlsOptions): Promise<ServerCredentials> {
  if (!options.secureServing) return ServerCredentials.createInsecure();
  const pair = options.certPath ? await readKeyPair(options.certPath) : await selfSignedKeyPair();
  return ServerCredentials.createSsl(
    null,
    [{ cert_chain: Buffer.from(pair.cert), private_key: Buffer.from(pair.key) }],
    false, // no client certificates: Envoy connects without one
  );
}

export async function readKeyPair(certPath: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([
    readFile(join(certPath, "tls.crt"), "utf8"),
    readFile(join(certPath, "tls.key"), "utf8"),
  ]);
  return { cert, key };
}

/** A fresh self-signed certificate (EC P-256: generated in milliseconds, accepted by Envoy/BoringSSL). */
export async function selfSignedKeyPair(): Promise<KeyPair> {
  const notAfterDate = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);
  const pems = await generate([{ name: "commonName", value: "kvpick" }], {
    keyType: "ec",
    curve: "P-256",
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 2, value: "kvpick" },
          { type: 7, ip: "127.0.0.1" },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
