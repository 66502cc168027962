// Peer for `cargo bench --bench webhook`: a Probot app that verifies and persists the same signed
// deliveries the factory gets, so the two can be compared on the same machine.
//
//   node server.mjs            (env: WEBHOOK_SECRET, PORT (0 = any), STORE_FILE, WEBHOOK_PATH)
//
// Verification is Probot's own (`createNodeMiddleware` -> @octokit/webhooks, HMAC-SHA256 over the
// raw body, answer 200 once every handler has finished). The `onAny` handler persists each new
// delivery before the answer: one JSON line (delivery id, event, payload) appended with a single
// write(2) to STORE_FILE (O_APPEND, no fsync, like the factory's SQLite in WAL mode with
// synchronous=NORMAL), after an in-memory duplicate check on the delivery id.
//
// Nothing here reaches the network: the app id is fake, the private key is generated at start and
// thrown away, and Octokit's fetch is replaced by one that refuses (and counts) any request.
// Prints `listening 127.0.0.1:<port>` on stdout once it accepts connections.

import { createServer } from "node:http";
import { generateKeyPairSync } from "node:crypto";
import { open } from "node:fs/promises";
import { Probot, createNodeMiddleware } from "probot";

const secret = process.env.WEBHOOK_SECRET;
const storeFile = process.env.STORE_FILE;
if (!secret || !storeFile) {
  console.error("WEBHOOK_SECRET and STORE_FILE are required");
  process.exit(2);
}
const port = Number.parseInt(process.env.PORT ?? process.argv[2] ?? "0", 10);
const webhooksPath = process.env.WEBHOOK_PATH ?? "/webhook";

const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

let networkAttempts = 0;
const probot = new Probot({
  appId: 1,
  privateKey,
  secret,
  logLevel: "warn",
  request: {
    fetch: async () => {
      networkAttempts += 1;
      throw new Error("network disabled in the benchmark peer");
    },
  },
});

const store = await open(storeFile, "a");
const seen = new Set();
let persisted = 0;

const app = (app) => {
  app.onAny(async (context) => {
    if (seen.has(context.id)) return; // a redelivery: already stored
    seen.add(context.id);
    const line = JSON.stringify({ id: context.id, event: context.name, payload: context.payload }) + "\n";
    try {
      await store.write(line);
    } catch (err) {
      seen.delete(context.id);
      throw err;
    }
    persisted += 1;
  });
};

const middleware = await createNodeMiddleware(app, { probot, webhooksPath });
const server = createServer((req, res) => {
  middleware(req, res, () => {
    res.writeHead(404).end();
  });
});
server.keepAliveTimeout = 30_000;

const shutdown = () => {
  server.close(async () => {
    await store.close();
    console.error(`probot peer: ${persisted} deliveries persisted, ${networkAttempts} network attempts refused`);
    process.exit(0);
  });
  server.closeAllConnections();
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

server.listen(port, "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`listening ${address}:${port}`);
});
