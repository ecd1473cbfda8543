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

// A group's lag over time while its page is open: polled every 2 s, drawn per partition.
document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("lag");
  const table = document.getElementById("lag-table");
  if (!section || !table) return;
  const history = new Map();
  const status = document.getElementById("lag-status");
  const SVG = "http://www.w3.org/2000/svg";
  const draw = (cell, points) => {
    const max = Math.max(1, ...points);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", "160");
    svg.setAttribute("height", "24");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `lag ${points.join(", ")}`);
    const line = document.createElementNS(SVG, "polyline");
    const step = points.length > 1 ? 156 / (points.length - 1) : 0;
    line.setAttribute("points", points.map((p, i) => `${2 + i * step},${22 - (p / max) * 20}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
    cell.replaceChildren(svg);
  };
  const poll = async () => {
    try {
      const r = await fetch(section.dataset.source, { headers: { accept: "application/json" } });
      if (!r.ok) throw new Error(`the broker answered ${r.status}`);
      const now = await r.json();
      document.getElementById("group-state").textContent = now.state;
      for (const p of now.partitions) {
        const row = table.querySelector(`tr[data-key="${CSS.escape(`${p.topic}-${p.partition}`)}"]`);
        if (!row) continue;
        row.querySelector("[data-field=committed]").textContent = p.committed < 0 ? "-" : String(p.committed);
        row.querySelector("[data-field=end]").textContent = String(p.end);
        row.querySelector("[data-field=lag]").textContent = String(p.lag);
        const key = `${p.topic}-${p.partition}`;
        const points = (history.get(key) ?? []).concat([Math.max(0, p.lag)]).slice(-60);
        history.set(key, points);
        draw(row.querySelector("[data-field=spark]"), points);
      }
      status.textContent = `Lag as of ${new Date(now.at_ms).toISOString().slice(11, 19)} UTC.`;
    } catch (e) {
      status.textContent = `Lag not refreshed: ${e.message}.`;
    }
  };
  poll();
  setInterval(poll, 2000);
});
