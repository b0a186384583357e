// One upload with tus-js-client under Node, as its documentation has it: a file stream, a
// FileUrlStorage to resume from, retries on a broken connection.
//
//   node tests/support/tus_node.mjs <folder with node_modules> <uploads URL> <file> <url store> <token> [parts]
//
// With [parts] above 1 the file goes as that many partial uploads at once, joined by a final one
// (tus-js-client's parallelUploads, the concatenation extension).
// Every request and answer is a JSON line on stdout ({"event": "request" | "response" |
// "success" | "error", ...}); the exit status is 0 once the upload is complete.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [modules, endpoint, file, store, token, parts] = process.argv.slice(2);
const tus = createRequire(path.resolve(modules, "package.json"))("tus-js-client");
const started = Date.now();

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, ms: Date.now() - started, ...fields })}\n`);
}

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  metadata: { purpose: "raw", filename: path.basename(file) },
  retryDelays: [200, 1000, 3000],
  parallelUploads: Number(parts ?? 1),
  urlStorage: new tus.FileUrlStorage(store),
  onBeforeRequest: (request) => emit("request", { method: request.getMethod() }),
  onAfterResponse: (request, response) =>
    emit("response", {
      method: request.getMethod(),
      concat: request.getHeader("Upload-Concat") ?? null,
      status: response.getStatus(),
      offset: response.getHeader("Upload-Offset") ?? null,
    }),
  onError: (error) => {
    emit("error", { message: error.message });
    process.exitCode = 1;
  },
  onSuccess: () => emit("success", { url: upload.url }),
});

const previous = await upload.findPreviousUploads();
if (previous.length > 0) {
  upload.resumeFromPreviousUpload(previous[0]);
}
upload.start();
