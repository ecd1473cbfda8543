// Shale console: progressive enhancement only; every page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // A delete form's button is enabled once the name typed matches (the broker checks it
  // again either way).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    const input = form.querySelector("input[name=confirm]");
    const button = form.querySelector("button[type=submit]");
    const sync = () => { button.disabled = input.value !== form.dataset.confirm; };
    input.addEventListener("input", sync);
    sync();
  }
});

// Live tail: new records pushed by the broker (server-sent events), newest first.
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  live.hidden = false;
  const toggle = document.getElementById("live-toggle");
  const status = document.getElementById("live-status");
  const body = document.querySelector("#live-records tbody");
  let source = null;
  let count = 0;
  const cell = (tag, text, cls) => {
    const c = document.createElement(tag);
    if (cls) c.className = cls;
    c.textContent = text;
    return c;
  };
  const pre = (text) => {
    const c = document.createElement("td");
    c.appendChild(cell("pre", text));
    return c;
  };
  const stop = (why) => {
    if (source) source.close();
    source = null;
    toggle.textContent = "Follow new records";
    status.textContent = why;
  };
  toggle.addEventListener("click", () => {
    if (source) return stop(`Stopped after ${count} new record${count === 1 ? "" : "s"}.`);
    source = new EventSource(live.dataset.source);
    toggle.textContent = "Stop following";
    status.textContent = "Waiting for new records…";
    source.addEventListener("record", (e) => {
      const r = JSON.parse(e.data);
      const row = document.createElement("tr");
      const headers = r.headers.map(([k, v]) => `${k}=${v}`).join(" ");
      row.append(cell("td", String(r.partition), "num"), cell("th", String(r.offset), "num"),
        cell("td", r.timestamp), pre(r.key), cell("td", headers), pre(r.value));
      row.firstChild.nextSibling.scope = "row";
      body.prepend(row);
      count += 1;
      status.textContent = `Following: ${count} new record${count === 1 ? "" : "s"}.`;
    });
    source.addEventListener("failure", (e) => stop(`Stopped: ${e.data}`));
    source.onerror = () => { if (source && source.readyState === EventSource.CLOSED) stop("The broker closed the stream."); };
  });
});
