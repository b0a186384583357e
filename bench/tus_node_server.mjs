// The tus peer anchor: @tus/server with @tus/file-store, as their documentation sets them up,
// on one loopback port, storing into one folder. GET /healthz answers 200 once it listens.
//
//   node bench/tus_node_server.mjs <folder with node_modules> <port> <store folder>
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

const [modules, port, directory] = process.argv.slice(2);
const load = createRequire(path.resolve(modules, "package.json"));
const { Server } = load("@tus/server");
const { FileStore } = load("@tus/file-store");

const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });

http
  .createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200).end("ok");
      return;
    }
    tus.handle(req, res);
  })
  .listen(Number(port), "127.0.0.1");
