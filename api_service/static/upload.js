// The upload page: one file sent with tus (tus-js-client), then the upload's status
// document, asked for again until a worker has finished with it.
"use strict";

(function () {
  const POLL_MS = 1000;
  const FINAL = new Set(["done", "failed"]);
  const form = document.getElementById("upload-form");
  const fileInput = document.getElementById("file");
  const purpose = document.getElementById("purpose");
  const token = document.getElementById("token");
  const buttons = {
    start: document.getElementById("start"),
    pause: document.getElementById("pause"),
    resume: document.getElementById("resume"),
  };
  const progress = document.getElementById("progress");
  const sent = document.getElementById("sent");
  const total = document.getElementById("total");
  const statusOut = document.getElementById("status");
  const details = document.getElementById("details");
  const link = document.getElementById("upload-url");
  // Location is resolved against the creation URL, so that one must be absolute.
  const endpoint = new URL(form.dataset.endpoint, window.location.href).href;
  let upload = null;

  function authorization() {
    const value = token.value.trim();
    return value ? { Authorization: `Bearer ${value}` } : {};
  }

  function show(status, detail) {
    statusOut.value = status;
    details.textContent = detail || "";
  }

  function enable(start, pause, resume) {
    buttons.start.disabled = !start;
    buttons.pause.disabled = !pause;
    buttons.resume.disabled = !resume;
  }

  function onProgress(bytesSent, bytesTotal) {
    progress.value = bytesTotal ? bytesSent / bytesTotal : 0;
    sent.textContent = String(bytesSent);
    total.textContent = String(bytesTotal);
  }

  function onError(error) {
    enable(true, false, false);
    show("error", error.message);
  }

  async function follow(url) {
    enable(true, false, false);
    for (;;) {
      let answer;
      let body;
      try {
        answer = await fetch(url, { headers: authorization(), cache: "no-store" });
        body = await answer.json();
      } catch (error) {
        show("error", String(error));
        return;
      }
      if (!answer.ok) {
        show("error", body.detail || answer.statusText);
        return;
      }
      show(body.status, JSON.stringify(body, null, 2));
      if (FINAL.has(body.status)) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async function start(file) {
    upload = new tus.Upload(file, {
      endpoint,
      headers: authorization(),
      metadata: {
        purpose: purpose.value,
        filename: file.name,
        filetype: file.type || "application/octet-stream",
      },
      retryDelays: [0, 1000, 3000, 5000],
      removeFingerprintOnSuccess: true,
      onProgress,
      onError,
      onUploadUrlAvailable: () => {
        link.href = upload.url;
        link.textContent = upload.url;
      },
      onSuccess: () => follow(upload.url),
    });
    // A page reloaded mid-upload carries on where the server says it stopped.
    const previous = await upload.findPreviousUploads();
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0]);
    }
    upload.start();
    enable(false, true, false);
    show("uploading");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (file) {
      start(file).catch(onError);
    }
  });

  buttons.pause.addEventListener("click", () => {
    upload.abort();
    enable(false, false, true);
    show("paused");
  });

  buttons.resume.addEventListener("click", () => {
    upload.start();
    enable(false, true, false);
    show("uploading");
  });
})();
