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
