// The upload page: Uppy's Dashboard sends each file as its own tus upload; then the page asks
// for each upload's status document until a worker has finished with it, and shows the
// processor's result as a table, or the reason it failed.
"use strict";

(function () {
  const POLL_MS = 1000;
  const FINAL = new Set(["done", "failed"]);
  const form = document.getElementById("options");
  const purpose = document.getElementById("purpose");
  const metadata = document.getElementById("metadata");
  const metadataError = document.getElementById("metadata-error");
  const token = document.getElementById("token");
  const list = document.getElementById("uploads");
  const noUploads = document.getElementById("no-uploads");
  // tus resolves Location against the creation URL, so that one must be absolute.
  const endpoint = new URL(form.dataset.endpoint, window.location.href).href;
  const rows = new Map();

  function authorization() {
    const value = token.value.trim();
    return value ? { Authorization: `Bearer ${value}` } : {};
  }

  // The API's own rule for the field: empty, or a JSON object.
  function metadataProblem(text) {
    if (!text.trim()) {
      return null;
    }
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return `metadata is not valid JSON: ${error.message}`;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return "metadata must be a JSON object";
    }
    return null;
  }

  function checkMetadata() {
    const problem = metadataProblem(metadata.value);
    metadataError.textContent = problem || "";
    metadataError.hidden = !problem;
    metadata.setAttribute("aria-invalid", problem ? "true" : "false");
    return problem;
  }

  const element = window.handoffResults.node;

  function size(bytes) {
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit ? `${value.toFixed(1)} ${units[unit]}` : `${bytes} bytes`;
  }

  // One row per file, from the moment it is added: what the Dashboard shows while bytes move,
  // and what the API says of the upload afterwards.
  function addRow(file) {
    const item = element("li", "upload");
    item.dataset.name = file.name;
    const head = element("div", "upload-head");
    head.append(element("span", "upload-name", file.name), element("span", "state"));
    const parts = {
      id: file.id,
      followed: false,
      item,
      state: head.lastChild,
      progress: element("p", "progress"),
      link: element("a", "upload-url"),
      problem: element("p", "problem"),
      files: element("div", "files"),
      result: element("div", "result"),
    };
    const linkLine = element("p", "link");
    linkLine.append(parts.link);
    item.append(head, parts.progress, linkLine, parts.problem, parts.files, parts.result);
    rows.set(file.id, parts);
    setState(parts, "waiting");
    showProgress(parts, 0, file.size);
    showProblem(parts, null);
    list.append(item);
    noUploads.hidden = true;
  }

  function setState(parts, state) {
    parts.state.textContent = state;
    parts.state.dataset.state = state;
    parts.item.dataset.state = state;
  }

  function showProgress(parts, sent, total) {
    parts.progress.dataset.sent = String(sent);
    parts.progress.textContent = `${size(sent)} of ${size(total || 0)} sent`;
  }

  function showLink(parts, url) {
    parts.link.href = url;
    parts.link.textContent = url;
  }

  function showProblem(parts, text) {
    parts.problem.textContent = text || "";
    parts.problem.hidden = !text;
  }

  // A refusal's problem+json says why in its detail; a network error has only a message.
  function reason(error) {
    const response = error && error.originalResponse;
    if (response) {
      try {
        const problem = JSON.parse(response.getBody());
        return problem.detail || problem.title || error.message;
      } catch (_) {
        return error.message;
      }
    }
    return error ? error.message : "unknown error";
  }

  function render(parts, body) {
    setState(parts, body.status);
    parts.files.replaceChildren();
    if (Array.isArray(body.files) && body.files.length) {
      parts.files.append(window.handoffResults.table(body.files, ["name", "size", "sha256"]));
    }
    parts.result.replaceChildren();
    if (body.status === "done" && body.result) {
      parts.result.append(...window.handoffResults.result(body.result));
    }
    showProblem(parts, body.status === "failed" ? body.error : null);
  }

  async function follow(parts, url) {
    for (;;) {
      let answer;
      let body;
      try {
        answer = await fetch(url, { headers: authorization(), cache: "no-store" });
        body = await answer.json();
      } catch (error) {
        setState(parts, "error");
        showProblem(parts, `the status could not be read: ${error.message}`);
        return;
      }
      if (!answer.ok) {
        setState(parts, "error");
        showProblem(parts, body.detail || body.title || answer.statusText);
        return;
      }
      render(parts, body);
      if (FINAL.has(body.status)) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function withRow(handler) {
    return (file, ...rest) => {
      const parts = file && rows.get(typeof file === "string" ? file : file.id);
      if (parts) {
        handler(parts, ...rest);
      }
    };
  }

  const uppy = new Uppy.Uppy({
    // Nothing is sent while the metadata is not an object; every file carries the page's fields.
    onBeforeUpload(files) {
      const problem = checkMetadata();
      if (problem) {
        uppy.info(problem, "error", 8000);
        return false;
      }
      const fields = { purpose: purpose.value, metadata: metadata.value.trim() };
      return Object.fromEntries(Object.entries(files).map(
        ([id, file]) => [id, { ...file, meta: { ...file.meta, ...fields } }]));
    },
  });
  uppy.use(Uppy.Dashboard, {
    inline: true,
    target: "#dashboard",
    width: "100%",
    height: 320,
    proudlyDisplayPoweredByUppy: false,
    showProgressDetails: true,
  });
  uppy.use(Uppy.Tus, {
    endpoint,
    headers: () => authorization(),
    retryDelays: [0, 1000, 3000, 5000],
    removeFingerprintOnSuccess: true,
    allowedMetaFields: ["name", "type", "purpose", "metadata"],
  });

  uppy.on("file-added", addRow);
  // A file removed before it was sent is gone (Uppy ends its tus upload); a sent one stays.
  uppy.on("file-removed", withRow((parts) => {
    if (!parts.followed) {
      rows.delete(parts.id);
      parts.item.remove();
    }
  }));
  // The upload's URL, once the API has made it: the user can pick it up elsewhere.
  uppy.on("state-update", () => rows.forEach((parts, id) => {
    const url = parts.link.href ? null : uppy.getFile(id)?.tus?.uploadUrl;
    if (url) {
      showLink(parts, url);
    }
  }));
  uppy.on("upload-progress", withRow((parts, progress) => {
    if (parts.state.dataset.state !== "paused") {
      setState(parts, "uploading");
    }
    showProgress(parts, progress.bytesUploaded, progress.bytesTotal);
  }));
  uppy.on("upload-pause", withRow((parts, paused) => setState(parts, paused ? "paused" : "uploading")));
  uppy.on("pause-all", () => rows.forEach((parts) => {
    if (parts.state.dataset.state === "uploading") {
      setState(parts, "paused");
    }
  }));
  uppy.on("resume-all", () => rows.forEach((parts) => {
    if (parts.state.dataset.state === "paused") {
      setState(parts, "uploading");
    }
  }));
  uppy.on("upload-retry", withRow((parts) => {
    setState(parts, "uploading");
    showProblem(parts, null);
  }));
  uppy.on("upload-error", withRow((parts, error) => {
    setState(parts, "error");
    showProblem(parts, reason(error));
  }));
  uppy.on("upload-success", withRow((parts, response) => {
    showLink(parts, response.uploadURL);
    setState(parts, "sent");
    parts.followed = true;
    follow(parts, response.uploadURL);
  }));
  metadata.addEventListener("input", () => {
    if (!metadataError.hidden) {
      checkMetadata();
    }
  });
})();
