// A TCP port that was free on `host` a moment ago, for processes that must be told their port up front
// (child processes, ZeroMQ endpoints). In-process servers should listen on port 0 instead.
import net from "node:net";

export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
