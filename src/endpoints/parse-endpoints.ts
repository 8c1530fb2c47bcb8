// Parses the static pool (`--endpoints 10.0.0.5:8000,10.0.0.6:8000` / `pool.endpoints`) into endpoint specs.
// Entries must be IP literals: Envoy's ORIGINAL_DST cluster routes to the `ip:port` we return verbatim, and a
// hostname there would never resolve.
import { isIP } from "node:net";
import { ConfigError } from "../errors.js";
import type { EndpointSpec } from "./endpoint.js";

export type AddressParse =
  | { readonly ok: true; readonly address: string; readonly ip: string; readonly port: number }
  | { readonly ok: false; readonly reason: string };

/** `10.0.0.5:8000` or `[fd00::5]:8000` → canonical address; never throws. */
export function parseEndpointAddress(text: string): AddressParse {
  const s = text.trim();
  if (s === "") return { ok: false, reason: "empty entry" };
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") return { ok: false, reason: "expected [ipv6]:port" };
    host = s.slice(1, close);
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) return { ok: false, reason: "missing port (expected ip:port)" };
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(":")) return { ok: false, reason: "IPv6 addresses must be bracketed: [ip]:port" };
  }
  const family = isIP(host);
  if (family === 0)
    return { ok: false, reason: `"${host}" is not an IP address (hostnames are not routable by Envoy)` };
  if (!/^[0-9]{1,5}$/.test(portText)) return { ok: false, reason: `port "${portText}" is not a number` };
  const port = Number(portText);
  if (port < 1 || port > 65535) return { ok: false, reason: `port ${port} out of range 1..65535` };
  const ip = host.toLowerCase();
  return { ok: true, address: family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`, ip, port };
}

/**
 * A comma-separated string or a list (each item may itself hold commas) → specs in input order.
 * Throws ConfigError naming every bad entry, e.g. `pool.endpoints[1] "10.0.0.6": missing port (expected ip:port)`.
 */
export function parseEndpointList(
  input: string | readonly string[],
  origin = "pool.endpoints",
): EndpointSpec[] {
  const items = (typeof input === "string" ? [input] : input).flatMap((item) => item.split(","));
  // A lone empty string means "no endpoints", not one empty entry (`--endpoints=`).
  if (items.length === 1 && items[0]?.trim() === "") return [];
  const problems: string[] = [];
  const seen = new Set<string>();
  const specs: EndpointSpec[] = [];
  items.forEach((raw, i) => {
    const parsed = parseEndpointAddress(raw);
    if (!parsed.ok) {
      problems.push(`${origin}[${i}] ${JSON.stringify(raw)}: ${parsed.reason}`);
    } else if (seen.has(parsed.address)) {
      problems.push(`${origin}[${i}] ${JSON.stringify(raw)}: duplicate endpoint ${parsed.address}`);
    } else {
      seen.add(parsed.address);
      specs.push({ address: parsed.address, ip: parsed.ip, port: parsed.port, name: null, ready: true });
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return specs;
}
