// Times pages of the console in Chromium (scripts/browser.sh install): for each URL, RUNS
// loads, each from navigation start to the first frame drawn after the load event (the
// HTML received, parsed, styled, laid out, its script run and the page painted). Prints a
// JSON line per URL: {url, rows, runs_ms: [...], p50_ms, max_ms}.
//   node render.mjs RUNS URL...
import { createRequire } from "node:module";
import path from "node:path";

const [runs, ...urls] = process.argv.slice(2);
const require = createRequire(path.join(process.env.SHALE_BROWSER_DIR, "package.json"));
const { chromium } = require("playwright-core");
const browser = await chromium.launch({ executablePath: process.env.SHALE_CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
for (const url of urls) {
  const times = [];
  let rows = 0;
  for (let i = 0; i < Number(runs); i++) {
    await page.goto(url, { waitUntil: "load", timeout: 60000 });
    // performance.now() counts from navigation start; a frame's callback, then a task
    // after it, runs once that frame (layout and paint included) is done.
    const drawn = await page.evaluate(() => new Promise((done) =>
      requestAnimationFrame(() => setTimeout(() => done(performance.now()), 0))));
    times.push(Math.round(drawn));
    rows = await page.locator("main tbody tr").count();
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({ url, rows, runs_ms: times, p50_ms: sorted[Math.floor(sorted.length / 2)], max_ms: sorted[sorted.length - 1] }));
}
await browser.close();
