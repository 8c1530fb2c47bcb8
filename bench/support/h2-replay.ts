// A load generator as cheap as h2load that sends a *different* body on every call, for the rows h2load cannot
// produce (it replays one data file). Plain HTTP/2 frames over a TCP socket, no HTTP/2 library: the gRPC
// Process call is pre-encoded (request headers + body messages, the file h2load replays), one HEADERS frame
// with a fixed HPACK block (literals, no dynamic table), then DATA frames within the server's flow-control
// windows, half-closed with the last one. Per call only a fixed-width decimal counter inside the body (the
// user turn) is rewritten, so every body is distinct and every frame length stays valid. A call succeeds
// when its first response DATA frame carries the destination header (the EPP routed it) and the stream ends
// with trailers; RST_STREAM or no destination = failed. Reports its own CPU (process.cpuUsage).
// Run as a process: node dist/bench/support/h2-replay.js <port> <calls> <connections> <streams> <data file>
//   <counter offset | -1> <counter width> <counter start>; prints one JSON line.
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const DESTINATION = Buffer.from("x-gateway-destination-endpoint");
const MAX_WINDOW = 2 ** 31 - 1;

export interface ReplayOptions {
  port: number;
  calls: number;
  connections: number;
  streams: number;
  payload: Buffer;
  /** Byte offset of the decimal counter in `payload` (-1: replay the payload as is), and its width. */
  counterAt: number;
  counterWidth: number;
  counterStart: number;
}

export interface ReplayResult {
  calls: number;
  ok: number;
  failed: number;
  seconds: number;
  rps: number;
  /** The generator's own CPU per call (user + system), ms. */
  cpuMsPerCall: number;
}

function frame(
  type: number,
  flags: number,
  stream: number,
  payload: Buffer | null,
  length = payload?.length ?? 0,
) {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}

/** HPACK string literal, no Huffman (lengths below 127). */
const str = (s: string) => Buffer.concat([Buffer.of(s.length), Buffer.from(s)]);

function headerBlock(authority: string): Buffer {
  return Buffer.concat([
    Buffer.of(0x83), // :method POST (static 3)
    Buffer.of(0x86), // :scheme http (static 6)
    Buffer.of(0x04), // :path, literal without indexing, name = static 4
    str("/envoy.service.ext_proc.v3.ExternalProcessor/Process"),
    Buffer.of(0x01), // :authority (static 1)
    str(authority),
    Buffer.of(0x0f, 0x10), // content-type (static 31)
    str("application/grpc"),
    Buffer.of(0x00), // te, new name
    str("te"),
    str("trailers"),
  ]);
}

interface Stream {
  id: number;
  /** This call's counter digits (null: the payload as is). */
  counter: Buffer | null;
  sent: number;
  window: number;
  routed: boolean;
}

export function replay(o: ReplayOptions): Promise<ReplayResult> {
  const block = headerBlock(`127.0.0.1:${o.port}`);
  let issued = 0;
  let ok = 0;
  let failed = 0;
  let finished = 0;
  let started = 0;
  let cpu0: NodeJS.CpuUsage = process.cpuUsage();
  return new Promise((resolve, reject) => {
    const finish = () => {
      const seconds = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpu0);
      resolve({
        calls: o.calls,
        ok,
        failed,
        seconds,
        rps: o.calls / seconds,
        cpuMsPerCall: (cpu.user + cpu.system) / 1000 / o.calls,
      });
    };
    const counterOf = (n: number): Buffer | null =>
      o.counterAt < 0
        ? null
        : Buffer.from(
            String(o.counterStart + n)
              .padStart(o.counterWidth, "0")
              .slice(-o.counterWidth),
            "latin1",
          );
    const size = o.payload.length;
    const at = o.counterAt;
    const end = at + o.counterWidth;
    /** payload[from, to) with this call's counter in place: shared bytes are written, never copied. */
    const writeSpan = (socket: Socket, s: Stream, from: number, to: number) => {
      if (s.counter === null || to <= at || from >= end) {
        socket.write(o.payload.subarray(from, to));
        return;
      }
      if (from < at) socket.write(o.payload.subarray(from, at));
      socket.write(s.counter.subarray(Math.max(0, from - at), Math.min(o.counterWidth, to - at)));
      if (to > end) socket.write(o.payload.subarray(end, to));
    };
    let connected = 0;
    const sockets: Socket[] = [];
    for (let c = 0; c < o.connections; c++) {
      const socket = connect(o.port, "127.0.0.1");
      socket.setNoDelay(true);
      sockets.push(socket);
      const open = new Map<number, Stream>();
      let nextId = 1;
      let connWindow = 65_535;
      let initWindow = 65_535;
      let maxFrame = 16_384;
      let consumed = 0;
      let pending = Buffer.alloc(0);
      /** Bytes still to skip of a DATA payload nobody reads (split across reads). */
      let skip = 0;
      const flush = () => {
        socket.cork();
        for (const s of open.values()) {
          while (s.sent < size && connWindow > 0 && s.window > 0) {
            const len = Math.min(maxFrame, size - s.sent, connWindow, s.window);
            const last = s.sent + len === size;
            socket.write(frame(0, last ? 1 : 0, s.id, null, len));
            writeSpan(socket, s, s.sent, s.sent + len);
            s.sent += len;
            s.window -= len;
            connWindow -= len;
          }
        }
        socket.uncork();
      };
      const start = () => {
        if (issued >= o.calls) return;
        const s: Stream = {
          id: nextId,
          counter: counterOf(issued++),
          sent: 0,
          window: initWindow,
          routed: false,
        };
        nextId += 2;
        open.set(s.id, s);
        socket.write(frame(1, 0x4, s.id, block));
        socket.write(block);
      };
      const done = (s: Stream, good: boolean) => {
        open.delete(s.id);
        if (good) ok++;
        else failed++;
        if (++finished === o.calls) {
          for (const k of sockets) k.destroy();
          finish();
          return;
        }
        start();
        flush();
      };
      socket.on("connect", () => {
        const settings = Buffer.alloc(12);
        settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH 0
        settings.writeUInt32BE(0, 2);
        settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE: never block the responses
        settings.writeUInt32BE(MAX_WINDOW, 8);
        const update = Buffer.alloc(4);
        update.writeUInt32BE(MAX_WINDOW - 65_535, 0);
        socket.write(
          Buffer.concat([PREFACE, frame(4, 0, 0, settings), settings, frame(8, 0, 0, update), update]),
        );
        if (++connected === o.connections) {
          started = performance.now();
          cpu0 = process.cpuUsage();
          for (const k of sockets) k.emit("kvpick-go");
        }
      });
      socket.on("kvpick-go", () => {
        socket.cork();
        for (let i = 0; i < o.streams; i++) start();
        socket.uncork();
        flush();
      });
      socket.on("data", (chunk: Buffer) => {
        let buf = chunk;
        if (skip > 0) {
          const n = Math.min(skip, buf.length);
          skip -= n;
          buf = buf.subarray(n);
        }
        if (pending.length > 0) buf = Buffer.concat([pending, buf]);
        let windowChanged = false;
        while (buf.length >= 9) {
          const length = buf.readUIntBE(0, 3);
          const type = buf[3]!;
          const flags = buf[4]!;
          const id = buf.readUInt32BE(5) & 0x7fffffff;
          if (buf.length < 9 + length) {
            const st = open.get(id);
            // A DATA frame already judged (the routing answer came first): count it and skip it as it comes.
            if (type === 0 && !(flags & 1) && (st === undefined || st.routed)) {
              consumed += length;
              skip = 9 + length - buf.length;
              buf = buf.subarray(buf.length);
            }
            break;
          }
          const payload = buf.subarray(9, 9 + length);
          buf = buf.subarray(9 + length);
          const s = open.get(id);
          if (type === 0) {
            consumed += length;
            if (s !== undefined && !s.routed && payload.includes(DESTINATION)) s.routed = true;
            if (s !== undefined && flags & 1) done(s, false); // gRPC ends with trailers, not DATA
          } else if (type === 1) {
            if (s !== undefined && flags & 1) done(s, s.routed);
          } else if (type === 3) {
            if (s !== undefined) done(s, false);
          } else if (type === 4 && !(flags & 1)) {
            for (let p = 0; p + 6 <= length; p += 6) {
              const key = payload.readUInt16BE(p);
              const value = payload.readUInt32BE(p + 2);
              if (key === 0x4) {
                for (const st of open.values()) st.window += value - initWindow;
                initWindow = value;
                windowChanged = true;
              } else if (key === 0x5) maxFrame = value;
            }
            socket.write(frame(4, 1, 0, null));
          } else if (type === 6 && !(flags & 1)) {
            socket.write(Buffer.concat([frame(6, 1, 0, payload), payload]));
          } else if (type === 7) {
            reject(new Error(`GOAWAY from the server: ${payload.subarray(8).toString()}`));
          } else if (type === 8) {
            const inc = payload.readUInt32BE(0) & 0x7fffffff;
            if (id === 0) connWindow += inc;
            else if (s !== undefined) s.window += inc;
            windowChanged = true;
          }
        }
        pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
        if (consumed > 2 ** 30) {
          const update = Buffer.alloc(4);
          update.writeUInt32BE(consumed, 0);
          socket.write(Buffer.concat([frame(8, 0, 0, update), update]));
          consumed = 0;
        }
        if (windowChanged) flush();
      });
      socket.on("error", reject);
    }
  });
}

if (process.argv[1]?.endsWith("h2-replay.js")) {
  const [port, calls, connections, streams, file, at, width, from] = process.argv.slice(2);
  const result = await replay({
    port: Number(port),
    calls: Number(calls),
    connections: Number(connections),
    streams: Number(streams),
    payload: readFileSync(file!),
    counterAt: Number(at ?? -1),
    counterWidth: Number(width ?? 0),
    counterStart: Number(from ?? 0),
  });
  console.log(JSON.stringify(result));
}
