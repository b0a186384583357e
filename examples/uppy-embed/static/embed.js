// The host's page: Uppy sends each file to handoff with tus, authorised by a token the host's
// backend hands this page, then follows the upload's status document to its end.
"use strict";

(async function () {
  const root = document.getElementById("uploader");
  const list = document.getElementById("uploads");
  const { token } = await (await fetch(root.dataset.tokenUrl, { cache: "no-store" })).json();
  const headers = { Authorization: `Bearer ${token}` };
  const rows = new Map();

  function show(file, state, detail) {
    let row = rows.get(file.id);
    if (!row) {
      row = document.createElement("li");
      row.dataset.name = file.name;
      row.append(document.createElement("span"), " ", document.createElement("span"));
      row.firstChild.className = "state";
      row.lastChild.className = "detail";
      rows.set(file.id, row);
      list.append(row);
    }
    row.dataset.state = state;
    row.firstChild.textContent = `${file.name}: ${state}`;
    row.lastChild.replaceChildren(...(detail || []));
  }

  async function follow(file, url) {
    for (;;) {
      const body = await (await fetch(url, { headers, cache: "no-store" })).json();
      const done = body.status === "done" && body.result;
      show(file, body.status, done ? handoffResults.result(body.result) : [body.error || ""]);
      if (body.status === "done" || body.status === "failed") {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  const uppy = new Uppy.Uppy({ meta: { purpose: root.dataset.purpose } });
  uppy.use(Uppy.Dashboard, { inline: true, target: root, height: 300,
                             proudlyDisplayPoweredByUppy: false });
  uppy.use(Uppy.Tus, {
    endpoint: root.dataset.endpoint,
    headers,
    retryDelays: [0, 1000, 3000],
    removeFingerprintOnSuccess: true,
    allowedMetaFields: ["name", "type", "purpose"],
  });
  uppy.on("upload-error", (file, error) => show(file, "error", [error.message]));
  uppy.on("upload-success", (file, response) => follow(file, response.uploadURL)
    .catch((error) => show(file, "error", [error.message])));
})();
