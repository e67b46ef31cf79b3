// Minimal APNs stand-in for benchmarks: HTTP/2 over TLS (node:http2, no npm dependencies), answers every
// POST /3/device/<token> with 200 and the echoed apns-id and no DATA frame, like APNs. It does not check
// JWTs (tests/fakes/apns.py does); it is here so the fake is not the bottleneck (~35k req/s vs ~4k for h2 in Python).
// Usage: node bench/fake_apns.mjs <port> <cert.pem> <key.pem>; prints the request count on SIGTERM.
import http2 from "node:http2";
import fs from "node:fs";

const [port, cert, key] = process.argv.slice(2);
let count = 0;
const server = http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                                          settings: { maxConcurrentStreams: 1000 } });
server.on("stream", (stream, headers) => {
  stream.on("data", () => {});
  stream.on("end", () => {
    count++;
    stream.respond({ ":status": 200, "apns-id": headers["apns-id"] || "00000000-0000-0000-0000-000000000000" },
                   { endStream: true });
  });
});
server.listen(Number(port), "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => { console.log(`requests ${count}`); process.exit(0); });
