// NervesHub web UI: the little that needs a script. Pages work without it; the content
// security policy allows only scripts served from this origin, so nothing here is inline.
"use strict";

// Forms marked data-confirm ask before they post (delete, revoke, reboot …).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Buttons marked data-copy="<element id>" copy that element's text.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// Forms marked data-upload send their file with a progress bar (the element named by
// data-progress), then follow the server's redirect, which carries its verdict.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || !form.hasAttribute || !form.hasAttribute("data-upload")) return;
  event.preventDefault();
  const progress = document.getElementById(form.getAttribute("data-progress"));
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.upload.addEventListener("progress", (e) => {
    if (progress && e.lengthComputable) {
      progress.hidden = false;
      progress.max = e.total;
      progress.value = e.loaded;
    }
  });
  request.addEventListener("load", () => { window.location.assign(request.responseURL || form.action); });
  request.addEventListener("error", () => { window.location.reload(); });
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  request.send(new FormData(form));
});

// Each live region holds an EventSource, and a browser opens at most six HTTP/1.1
// connections to one server. Headless Chromium kept the streams of pages left behind open
// for about a minute, so the seventh live page in a row waited that long for a connection.
// Close them when the page is hidden; a page shown again from the back/forward cache is
// reloaded, so it is not stale. (sseEventSource is where htmx-ext-sse 2.2 keeps the source.)
window.addEventListener("pagehide", () => {
  for (const region of document.querySelectorAll("[sse-connect]")) {
    const source = region["htmx-internal-data"] && region["htmx-internal-data"].sseEventSource;
    if (source) source.close();
  }
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});
