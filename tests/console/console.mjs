// The console in a real browser: Debian's Chromium, headless, driven by Playwright
// (`scripts/browser.sh install`). Usage: node console.mjs SCENARIO URL SHOTS_DIR [ARGS...]
// Each scenario acts as a user would (links, forms, the keyboard), checks what the pages
// show, screenshots every page it visits into SHOTS_DIR and runs axe-core's accessibility
// rules on it. The last line of stdout is a JSON report; the exit status is 0 only when
// every check passed.
import { createRequire } from "node:module";
import { readFileSync, mkdirSync } from "node:fs";
import path from "node:path";

const [scenario, base, shots, ...rest] = process.argv.slice(2);
const nodeDir = process.env.SHALE_BROWSER_DIR;
const require = createRequire(path.join(nodeDir, "package.json"));
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(shots, { recursive: true });

const report = { scenario, ok: false, checks: [], pages: {} };
const check = (what, cond, detail) => {
  report.checks.push(what);
  if (!cond) throw new Error(`${what}: ${detail ?? "not so"}`);
};

/// Screenshots the page as `name` and runs axe on it (WCAG 2.x A and AA rules); the
/// violations are reported by rule and node.
async function look(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  // Evaluated over the DevTools protocol: the console's CSP (scripts from itself only)
  // does not apply to it, and is not loosened for the test.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"] } }));
  const violations = result.violations.map((v) => ({
    rule: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
  }));
  report.pages[name] = { url: page.url(), violations };
  check(`${name}: no accessibility violations`, violations.length === 0, JSON.stringify(violations));
}

async function text(page, selector) {
  return (await page.locator(selector).first().innerText()).trim();
}

/// Anonymous (the broker lets anyone in): overview, topics empty, create through the
/// form, a refused create shown, search, the keyboard, a forged change refused, delete
/// with its typed confirmation.
async function tour(page) {
  const topic = rest[0];
  await page.goto(`${base}/`);
  check("overview: heading", (await text(page, "h1")) === "Overview");
  const brokers = await page.locator("section[aria-labelledby=brokers-h] tbody tr").count();
  check("overview: the broker is listed", brokers === 1, `${brokers} rows`);
  check("overview: healthy", (await text(page, "section[aria-labelledby=health-h] .empty")).startsWith("Every partition"));
  const facts = await text(page, "dl.facts");
  check("overview: this broker live in the metadata store, its disk and journal", facts.includes("live, caught up") && /free of/.test(facts) && /not yet checkpointed/.test(facts), facts);
  await look(page, "overview");

  await page.getByRole("link", { name: "Topics" }).click();
  check("topics: empty state", (await text(page, "main .empty")).startsWith("There are no topics"));
  await look(page, "topics-empty");

  // A refused create: the error is shown by the form, which keeps what was typed.
  await page.getByLabel("Name", { exact: true }).fill(topic);
  await page.getByLabel("Partitions", { exact: true }).fill("three");
  await page.getByRole("button", { name: "Create" }).click();
  const refused = await text(page, "section[aria-labelledby=create-h] .error");
  check("topics: a bad partition count is refused by name", refused.includes('partitions "three"'), refused);
  check("topics: the form keeps the name", (await page.getByLabel("Name", { exact: true }).inputValue()) === topic);
  await look(page, "topics-refused");

  await page.getByLabel("Partitions", { exact: true }).fill("3");
  await page.getByLabel("Cleanup policy").selectOption("compact");
  await page.getByRole("button", { name: "Create" }).click();
  await page.waitForURL(`${base}/topics/${topic}`);
  check("topic: heading", (await text(page, "h1")) === topic);
  const partitions = await page.locator("section[aria-labelledby=partitions-h] tbody tr").count();
  check("topic: three partitions", partitions === 3, `${partitions} rows`);
  const policy = await page.locator("tr", { has: page.locator("code", { hasText: /^cleanup\.policy$/ }) }).innerText();
  check("topic: cleanup.policy compact, set on the topic", /compact\s+topic/.test(policy), policy);
  await look(page, "topic");

  // Configs: set one, see it as the topic's, remove the override; add a partition.
  const configRow = (name) => page.locator("tr", { has: page.locator("code", { hasText: new RegExp(`^${name.replace(".", "\\.")}$`) }) });
  await page.getByLabel("Set config").selectOption("retention.ms");
  await page.getByLabel("To", { exact: true }).fill("3600000");
  await page.getByRole("button", { name: "Set", exact: true }).click();
  check("configs: set on the topic", /3600000\s+topic/.test(await configRow("retention.ms").innerText()), await configRow("retention.ms").innerText());
  await page.getByLabel("To", { exact: true }).fill("soon");
  await page.getByLabel("Set config").selectOption("retention.ms");
  await page.getByRole("button", { name: "Set", exact: true }).click();
  const bad = await text(page, "main > .error");
  check("configs: a bad value is refused by name", bad.includes("retention.ms") && bad.includes("soon"), bad);
  await look(page, "topic-config-refused");
  await page.getByRole("button", { name: "Remove the topic's retention.ms" }).click();
  check("configs: the override removed", /604800000\s+default/.test(await configRow("retention.ms").innerText()));
  await page.getByLabel("Partitions in all").fill("4");
  await page.getByRole("button", { name: "Add partitions" }).click();
  const grown = await page.locator("section[aria-labelledby=partitions-h] tbody tr").count();
  check("partitions: grown to four", grown === 4, `${grown} rows`);

  await page.goto(`${base}/topics?q=${topic.slice(0, 4)}`);
  check("topics: search finds it", (await page.locator("main tbody tr").count()) === 1);
  await page.goto(`${base}/topics?q=no-such-topic`);
  check("topics: a search that finds nothing says so", (await text(page, "main .empty")).includes("no-such-topic"));
  await look(page, "topics-search-empty");

  // The keyboard: the first Tab reaches the skip link, which moves focus to the content.
  await page.goto(`${base}/topics`);
  await page.keyboard.press("Tab");
  check("keyboard: the skip link comes first", (await page.evaluate(() => document.activeElement.textContent)) === "Skip to content");
  await page.keyboard.press("Enter");
  check("keyboard: the skip link leads to the content", page.url().endsWith("#main"));

  // A change without the session's CSRF token is refused, and changes nothing.
  const forged = await page.evaluate(async (name) => {
    const r = await fetch("/topics/" + name + "/delete", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "confirm=" + name + "&csrf=forged" });
    return { status: r.status, body: await r.text() };
  }, topic);
  check("csrf: a forged delete is refused", forged.status === 403 && forged.body.includes("CSRF"), JSON.stringify(forged).slice(0, 300));

  await page.goto(`${base}/topics/${topic}`);
  const button = page.getByRole("button", { name: `Delete ${topic}` });
  check("delete: disabled until the name is typed", await button.isDisabled());
  await page.getByLabel(/to confirm/).fill(topic.slice(1));
  check("delete: still disabled for another name", await button.isDisabled());
  await page.getByLabel(/to confirm/).fill(topic);
  check("delete: enabled once the name is typed", await button.isEnabled());
  await look(page, "topic-delete");
  await button.click();
  await page.waitForURL(`${base}/topics`);
  check("delete: the topic is gone", (await text(page, "main .empty")).startsWith("There are no topics"));

  await page.goto(`${base}/no/such/page`);
  check("a page that does not exist says so", (await text(page, "h1")) === "Not found");
  await look(page, "not-found");
}

/// Signed in as a user with only Read on one topic (`rest`: its token, that topic,
/// another topic): the console sends them to sign in, refuses a wrong token, then shows
/// that topic and nothing else, and refuses every change with the broker's reason.
async function reader(page) {
  const [token, visible, hidden] = rest;
  await page.goto(`${base}/topics`);
  check("sign-in: an anonymous visitor is sent to sign in", page.url() === `${base}/login?next=%2Ftopics`, page.url());
  await look(page, "login");
  await page.getByLabel("Bearer token (JWT)").fill("not-a-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  check("sign-in: a wrong token is refused, in words", (await text(page, ".error")).length > 0);
  await look(page, "login-refused");
  await page.getByLabel("Bearer token (JWT)").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/topics`);
  check("sign-in: back where they were going, signed in", (await text(page, ".who")).includes("User:reader"));
  const names = await page.locator("main tbody th a").allInnerTexts();
  check("topics: only the topic they may read", names.length === 1 && names[0] === visible, JSON.stringify(names));
  await look(page, "reader-topics");

  await page.getByLabel("Name", { exact: true }).fill("not-allowed");
  await page.getByRole("button", { name: "Create" }).click();
  const create = await text(page, "section[aria-labelledby=create-h] .error");
  check("topics: a create is refused with the reason", /may not|not (authorized|allowed)|denied/i.test(create) && create.includes("not-allowed"), create);
  await look(page, "reader-create-refused");

  await page.goto(`${base}/topics/${hidden}`);
  check("topic: another topic is refused", (await text(page, "h1")) === "Refused");
  const why = await text(page, ".error");
  check("topic: the refusal names the topic", why.includes(hidden), why);
  await look(page, "reader-topic-refused");

  await page.goto(`${base}/topics/${visible}`);
  check("topic: theirs is shown", (await text(page, "h1")) === visible);
  await page.getByLabel(/to confirm/).fill(visible);
  await page.getByRole("button", { name: `Delete ${visible}` }).click();
  const del = await text(page, "main > .error");
  check("topic: a delete is refused with the reason", del.includes(visible) && /may not|not (authorized|allowed)|denied/i.test(del), del);
  await look(page, "reader-delete-refused");

  await page.goto(`${base}/topics/${visible}/messages?from=oldest`);
  const seen = await page.locator("#records tbody tr td:last-child").allInnerTexts();
  check("messages: theirs are shown", JSON.stringify(seen) === JSON.stringify(["r0", "r1", "r2"]), JSON.stringify(seen));
  await page.getByLabel("Value", { exact: true }).fill("not allowed");
  await page.getByRole("button", { name: "Produce" }).click();
  const produce = await text(page, ".error");
  check("messages: a produce is refused with the reason", /may not write/.test(produce) && produce.includes(visible), produce);
  await look(page, "reader-produce-refused");
  await page.goto(`${base}/topics/${hidden}/messages`);
  check("messages: another topic's are refused", (await text(page, "h1")) === "Refused");
  await page.goto(`${base}/groups`);
  check("groups: none they may see", (await text(page, "main .empty")).startsWith("There are no consumer groups"));

  await page.goto(`${base}/quotas`);
  const quotas = await text(page, "main .error");
  check("quotas: refused without DescribeConfigs on the cluster", (await text(page, "h1")) === "Refused" && /may not|not (authorized|allowed)|denied/i.test(quotas), quotas);

  await page.goto(`${base}/`);
  const note = await text(page, "section[aria-labelledby=brokers-h] .note");
  check("overview: the brokers' load is refused, in words", note.startsWith("Their load is not shown"), note);
  await look(page, "reader-overview");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  await page.goto(`${base}/topics`);
  check("sign-out: the session is over", page.url().startsWith(`${base}/login`), page.url());
}

/// Browsing a topic's records (`rest[0]`; the test put 20 records on partition 0, keys
/// order-0.., JSON values, a `source` header, a minute apart from 2026-01-01T00:00Z, and 10
/// on partition 1, keys user-0.., text values): all partitions, from an offset with the
/// next page, from a time, as JSON and hex, filtered three ways, downloaded; then a
/// record produced from a second page appears on the first, which follows live.
async function messages(page, context) {
  const topic = rest[0];
  const at = `${base}/topics/${topic}/messages`;
  const offsets = async () => (await page.locator("#records tbody th").allInnerTexts()).map(Number);
  const values = async () => page.locator("#records tbody tr td:last-child").allInnerTexts();

  await page.goto(`${base}/topics/${topic}`);
  await page.getByRole("link", { name: "Messages" }).click();
  check("messages: every partition's newest records", (await page.locator("#records tbody tr").count()) === 30);
  await look(page, "messages");

  await page.locator("#partition").selectOption("0");
  await page.getByLabel("From", { exact: true }).selectOption("offset");
  await page.getByLabel("Offset", { exact: true }).fill("5");
  await page.getByLabel("Records", { exact: true }).fill("5");
  await page.getByRole("button", { name: "Show" }).click();
  check("messages: from an offset", JSON.stringify(await offsets()) === "[5,6,7,8,9]", JSON.stringify(await offsets()));
  await page.getByRole("link", { name: "Next records" }).click();
  check("messages: the next page continues", JSON.stringify(await offsets()) === "[10,11,12,13,14]", JSON.stringify(await offsets()));

  await page.goto(`${at}?partition=0&from=timestamp&timestamp=2026-01-01T00:10&limit=3`);
  check("messages: from a time", JSON.stringify(await offsets()) === "[10,11,12]", JSON.stringify(await offsets()));

  await page.goto(`${at}?partition=0&from=oldest&limit=2&format=json`);
  const json = (await values())[0];
  check("messages: JSON pretty-printed", json.includes('"n": 0') && json.includes("\n"), json);
  await look(page, "messages-json");
  await page.goto(`${at}?partition=0&from=oldest&limit=2&format=hex`);
  check("messages: hex", (await values())[0].startsWith("7b "), (await values())[0]);

  await page.goto(`${at}?from=oldest&header=source%3Dapp`);
  check("messages: filtered by a header's value", (await page.locator("#records tbody tr").count()) === 10);
  await page.goto(`${at}?from=oldest&key=user-`);
  check("messages: filtered by key", (await page.locator("#records tbody tr").count()) === 10);
  await page.goto(`${at}?from=oldest&contains=hello%203`);
  check("messages: filtered by a substring", (await page.locator("#records tbody tr").count()) === 1);
  await page.goto(`${at}?from=oldest&contains=nothing-has-this`);
  check("messages: a filter that matches nothing says so", (await text(page, "main .empty")).includes("match the filters"));
  await look(page, "messages-none");

  await page.goto(`${at}?partition=1&from=oldest`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download them as JSON" }).click()]);
  const file = JSON.parse(readFileSync(await download.path(), "utf8"));
  check("messages: the download holds what is shown", file.length === 10 && file[0].key === "user-0", JSON.stringify(file[0]));

  // Live: this page follows partition 1; a second page produces to it through its form.
  await page.goto(`${at}?partition=1`);
  await page.getByRole("button", { name: "Follow new records" }).click();
  await page.locator("#live-status", { hasText: "Waiting for new records" }).waitFor();
  const producer = await context.newPage();
  await producer.goto(`${at}?partition=1`);
  await producer.locator("#p-partition").selectOption("1");
  await producer.getByLabel("Key", { exact: true }).fill("live-key");
  await producer.getByLabel(/^Headers/).fill("trace=abc");
  await producer.getByLabel("Value", { exact: true }).fill("a live value");
  const sent = Date.now();
  await producer.getByRole("button", { name: "Produce" }).click();
  await page.locator("#live-records tbody tr", { hasText: "a live value" }).waitFor({ timeout: 10000 });
  report.live_ms = Date.now() - sent;
  check("live: the status counts it", (await text(page, "#live-status")).startsWith("Following: 1 new record"));
  await look(page, "messages-live");
  check("produce: the producer's page says where it went", (await text(producer, "main [role=status]")).includes("partition 1, offset 10"));
  const newest = await producer.locator("#records tbody tr").last().innerText();
  check("produce: the record is there with its key and header", newest.includes("live-key") && newest.includes("trace=abc"), newest);
  await look(producer, "messages-produced");
}

/// A group's lag and offsets (`rest`: the group, its topic; the test committed offsets 4
/// and 6 on the topic's two partitions of 10 records each): listed with its lag, its page
/// follows the lag as records are produced from a second page, and its offsets are reset
/// to the latest, previewed first.
async function groups(page, context) {
  const [group, topic] = rest;
  const lagOf = async (p) => Number(await page.locator(`tr[data-key="${topic}-${p}"] [data-field=lag]`).innerText());
  await page.goto(`${base}/`);
  await page.getByRole("link", { name: "Consumer groups" }).click();
  const row = await page.locator("tbody tr", { hasText: group }).innerText();
  check("groups: listed, empty, with its lag", /offsets only\s+empty\s+0\s+10/.test(row), row);
  await look(page, "groups");

  await page.getByRole("link", { name: group }).click();
  check("group: lag per partition", (await lagOf(0)) === 6 && (await lagOf(1)) === 4);
  await page.locator("#lag-status", { hasText: "Lag as of" }).waitFor();
  await look(page, "group");

  const producer = await context.newPage();
  await producer.goto(`${base}/topics/${topic}/messages?partition=0`);
  for (let i = 0; i < 5; i++) {
    await producer.getByLabel("Value", { exact: true }).fill(`more ${i}`);
    await producer.getByRole("button", { name: "Produce" }).click();
    await producer.waitForURL(/produced=0/);
  }
  await page.waitForFunction((t) => document.querySelector(`tr[data-key="${t}-0"] [data-field=lag]`)?.textContent === "11", topic, { timeout: 10000 });
  const spark = await page.locator(`tr[data-key="${topic}-0"] svg`).getAttribute("aria-label");
  check("group: the lag's rise is drawn", spark.endsWith(", 11") && spark.includes("6"), spark);
  await look(page, "group-lag");

  await page.getByLabel("Reset to").selectOption("latest");
  await page.getByRole("button", { name: "Preview" }).click();
  const preview = await page.locator("#reset-result").innerText();
  check("reset: the preview shows the new offsets", preview.startsWith("Preview") && /0\s+15/.test(preview) && /1\s+10/.test(preview), preview);
  check("reset: a preview changes nothing", (await lagOf(0)) === 11);
  await look(page, "group-reset-preview");
  await page.getByRole("button", { name: "Reset offsets" }).click();
  check("reset: applied", (await page.locator("#reset-result caption").innerText()) === "Offsets set");
  check("reset: no lag left", (await lagOf(0)) === 0 && (await lagOf(1)) === 0);
  await look(page, "group-reset");
}

/// A read-only console (`console.read_only`; `rest[0]` a topic the test made): no form
/// that changes anything is shown, and a change sent anyway with the session's own CSRF
/// token is refused, saying why.
async function readonly(page) {
  const topic = rest[0];
  await page.goto(`${base}/topics`);
  check("read-only: marked", (await text(page, ".badge")) === "read-only");
  check("read-only: no create form", (await page.locator("#create-h").count()) === 0);
  await page.goto(`${base}/topics/${topic}`);
  check("read-only: no delete form", (await page.locator("#delete-h").count()) === 0);
  await page.goto(`${base}/topics/${topic}/messages`);
  check("read-only: no produce form", (await page.locator("#produce-h").count()) === 0);
  await look(page, "readonly-messages");
  const forged = await page.evaluate(async (name) => {
    const r = await fetch(`/topics/${name}/delete`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `confirm=${name}` });
    return { status: r.status, body: await r.text() };
  }, topic);
  check("read-only: a delete sent anyway is refused, saying why", forged.status === 403 && forged.body.includes("read-only"), JSON.stringify(forged).slice(0, 300));
}

/// A tiered topic whose oldest records are only in the bucket (`rest`: the topic, a time
/// (ms) and the offset of the first record at or after it, below the local log's start):
/// browsing from that time shows that record, read from the bucket; the topic's page shows
/// the bucket's range.
async function tiered(page) {
  const [topic, at, offset, localStart] = rest;
  await page.goto(`${base}/topics/${topic}`);
  const row = await page.locator("section[aria-labelledby=partitions-h] tbody tr").first().innerText();
  check("tiered: the bucket's range starts at 0", /\b0 \.\. \d+ \(\d+ segments/.test(row), row);
  await look(page, "tiered-topic");
  await page.goto(`${base}/topics/${topic}/messages?partition=0&from=timestamp&timestamp=${at}&limit=3`);
  const offsets = (await page.locator("#records tbody th").allInnerTexts()).map(Number);
  const want = [0, 1, 2].map((i) => Number(offset) + i);
  check("tiered: from a time below the local start", JSON.stringify(offsets) === JSON.stringify(want) && want[2] < Number(localStart), JSON.stringify(offsets));
  const value = (await page.locator("#records tbody tr td:last-child").first().innerText()).trim();
  check("tiered: the record's own value", value.startsWith(String(offset).padStart(12, "0") + ":"), value.slice(0, 40));
  await look(page, "tiered-messages");
}

/// The schema registry's subjects (`rest[0]`: a subject the test registered twice, an
/// Avro record and then the same with an optional `note`): listed with the latest version,
/// each version's schema shown.
async function schemas(page) {
  const subject = rest[0];
  await page.goto(`${base}/`);
  await page.getByRole("link", { name: "Schemas" }).click();
  const row = await page.locator("tbody tr", { hasText: subject }).innerText();
  check("schemas: the subject, its latest version and format", /\t2\tAVRO\t\d+\tBACKWARD/.test(row), JSON.stringify(row));
  await look(page, "schemas");
  await page.getByRole("link", { name: subject }).click();
  check("schema: the latest version's text", (await text(page, "pre.schema")).includes('"note"'));
  await look(page, "schema");
  await page.getByRole("link", { name: "1", exact: true }).click();
  const first = await text(page, "pre.schema");
  check("schema: an earlier version's text", first.includes('"id"') && !first.includes('"note"'), first);

  // Records of `topic` decoded with the schema their bytes name (`id`): keys in plain text
  // stay text; a record naming a schema that is not there says so, in hex below.
  const [topic, id] = rest.slice(1);
  await page.goto(`${base}/topics/${topic}/messages?from=oldest`);
  await page.getByLabel("Show as").selectOption("registry");
  await page.getByRole("button", { name: "Show" }).click();
  const cells = await page.locator("#records tbody tr td:last-child").allInnerTexts();
  const keys = await page.locator("#records tbody tr").allInnerTexts();
  check("messages: an Avro value decoded with its schema", cells[0]?.startsWith(`schema ${id}\n`) && JSON.parse(cells[0].split("\n").slice(1).join("\n")).note === "rush" && cells[0].includes('"id": 7'), JSON.stringify(cells));
  check("messages: a plain key stays text", keys[0].includes("order-7"), JSON.stringify(keys));
  check("messages: an unknown schema is named, the bytes shown in hex", cells[1]?.startsWith("schema 999:") && cells[1].includes("00 00 00 03 e7 0e"), JSON.stringify(cells));
  await look(page, "messages-registry");
}

/// Open transactions (`rest[0]`: a transactional id with one open on two partitions):
/// listed with state and partitions, aborted by an operator from the page.
async function transactions(page) {
  const id = rest[0];
  await page.goto(`${base}/`);
  await page.getByRole("link", { name: "Transactions" }).click();
  const row = () => page.locator("tbody tr", { hasText: id }).innerText();
  const open = await row();
  check("transactions: the open one, its state and partitions", /Ongoing/.test(open) && open.includes("ledger-0") && open.includes("ledger-1"), open);
  await look(page, "transactions");
  await page.getByRole("button", { name: `Abort the transaction of ${id}` }).click();
  await page.waitForURL(`${base}/transactions`);
  const after = await row();
  check("transactions: aborted by the operator", /Abort/.test(after) && !/Ongoing/.test(after), after);
  await look(page, "transactions-aborted");
}

/// ACLs, signed in as a super user (`rest`: its token, the reader's principal, a topic
/// the reader may read, another): the reader's binding listed; a binding with a bad
/// principal refused by name; one added and removed again.
async function acls(page) {
  const [token, reader, visible, hidden] = rest;
  await page.goto(`${base}/acls`);
  await page.getByLabel("Bearer token (JWT)").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/acls`);
  const rows = () => page.locator("main tbody tr").allInnerTexts();
  const first = await rows();
  check("acls: the reader's binding", first.length === 1 && first[0].includes(reader) && first[0].includes(visible), JSON.stringify(first));
  await look(page, "acls");
  await page.getByLabel("Principal", { exact: true }).fill("reader");
  await page.getByLabel("Resource name", { exact: true }).fill(hidden);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  check("acls: a principal without its type is refused by name", (await text(page, ".error")).includes('"reader"'));
  await page.getByLabel("Principal", { exact: true }).fill(reader);
  await page.getByLabel("Operation", { exact: true }).selectOption("read");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.waitForURL(`${base}/acls`);
  const added = await rows();
  check("acls: added", added.length === 2 && added.some((r) => r.includes(hidden)), JSON.stringify(added));
  await look(page, "acls-added");
  await page.getByRole("button", { name: new RegExp(`Remove: allow ${reader} read on topic ${hidden}$`) }).click();
  await page.waitForURL(`${base}/acls`);
  check("acls: removed again", (await rows()).length === 1);

  // A SCRAM user made here signs in with its password; a wrong one is refused.
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByLabel("User", { exact: true }).fill("carol");
  await page.getByLabel("Password", { exact: true }).fill("carol-secret-1");
  await page.getByRole("button", { name: "Set password" }).click();
  await page.waitForURL(`${base}/users`);
  const carol = await page.locator("tbody tr", { hasText: "carol" }).innerText();
  check("users: carol with both mechanisms", carol.includes("SCRAM-SHA-512") && carol.includes("SCRAM-SHA-256") && !carol.includes("secret"), carol);
  await look(page, "users");

  // Quotas: a limit that is no number refused by name, one set, shown in words, removed.
  await page.getByRole("link", { name: "Quotas" }).click();
  check("quotas: none yet", (await text(page, "main .empty")).startsWith("No quotas"));
  await page.getByLabel("Principal", { exact: true }).fill("User:carol");
  await page.getByLabel("Produce bytes per second").fill("1 MiB");
  await page.getByRole("button", { name: "Set quota" }).click();
  const badQuota = await text(page, ".error");
  check("quotas: a limit that is no number is refused by name", badQuota.includes('produce bytes "1 MiB"'), badQuota);
  check("quotas: the form keeps the principal", (await page.getByLabel("Principal", { exact: true }).inputValue()) === "User:carol");
  await page.getByLabel("Produce bytes per second").fill("1048576");
  await page.getByLabel("Requests per second").fill("100");
  await page.getByRole("button", { name: "Set quota" }).click();
  await page.waitForURL(`${base}/quotas`);
  const quota = await page.locator("main tbody tr", { hasText: "User:carol" }).innerText();
  check("quotas: carol's limits in words", quota.includes("1.0 MiB/s") && quota.includes("unlimited") && quota.includes("100 requests/s"), quota);
  await look(page, "quotas");
  await page.getByRole("button", { name: "Remove the quota of User:carol" }).click();
  await page.waitForURL(`${base}/quotas`);
  check("quotas: removed", (await text(page, "main .empty")).startsWith("No quotas"));

  await page.getByRole("link", { name: "Users" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  await page.getByLabel("User", { exact: true }).fill("carol");
  await page.getByLabel("Password", { exact: true }).fill("wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  check("users: a wrong password is refused", (await text(page, ".error")).length > 0);
  await page.getByLabel("Password", { exact: true }).fill("carol-secret-1");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);
  check("users: carol signed in with her password", (await text(page, ".who")).includes("User:carol"));
}

/// Long lists in pages: ARGS are the topic count (more than a page) and a topic with more
/// partitions than a page. Next and Last walk the list, a search finds topics on any page,
/// the wide topic's health counts every partition, and a bad page number is refused by name.
async function paging(page) {
  const [count, wide, partitions] = [Number(rest[0]), rest[1], Number(rest[2])];
  const rows = () => page.locator("main tbody tr").count();
  await page.goto(`${base}/topics`);
  check("paging: the first page", (await text(page, "main caption")) === `Topics 1–200 of ${count}` && (await rows()) === 200, await text(page, "main caption"));
  await look(page, "topics-paged");
  await page.getByRole("navigation", { name: "Pages of topics" }).getByRole("link", { name: "Next" }).click();
  const second = await text(page, "main caption");
  check("paging: next", second === `Topics 201–${Math.min(400, count)} of ${count}` && page.url().endsWith("page=2"), second);
  await page.getByRole("link", { name: "Previous" }).click();
  check("paging: previous", (await text(page, "main caption")).startsWith("Topics 1–200"));

  // The last topics by name are on the last page; a search finds them from the first.
  const last = await page.locator("main tbody tr th").last().innerText();
  await page.getByLabel("Search topics by name").fill("t-20");
  await page.getByRole("button", { name: "Search" }).click();
  const found = await page.locator("main tbody tr th").allInnerTexts();
  check("paging: a search covers every page", found.includes("t-200") && found.includes("t-20") && found.every((n) => n.includes("t-20")), JSON.stringify(found));
  check("paging: under a page of matches, no pager", (await page.locator("nav.pager").count()) === 0);
  check("paging: the first page ends before the list does", last !== "wide");

  await page.goto(`${base}/topics/${wide}`);
  const summary = await text(page, "section[aria-labelledby=partitions-h] p:not(.note)");
  check("paging: the wide topic's health counts all its partitions", summary === `${partitions} partitions: all led and in sync.`, summary);
  check("paging: the wide topic's first partitions", (await rows()) >= 200 && (await text(page, "main caption")) === `Partitions 1–200 of ${partitions}`);
  await look(page, "topic-paged");
  await page.getByRole("navigation", { name: "Pages of partitions" }).getByRole("link", { name: "Last" }).click();
  const lastRows = await page.locator("section[aria-labelledby=partitions-h] tbody tr").count();
  const lastPartition = await page.locator("section[aria-labelledby=partitions-h] tbody tr th").last().innerText();
  check("paging: the wide topic's last page", lastRows === partitions - 400 && lastPartition === String(partitions - 1), `${lastRows} rows, last ${lastPartition}`);

  const bad = await page.goto(`${base}/topics?page=two`);
  check("paging: a bad page is refused by name", bad.status() === 400 && (await text(page, "main")).includes('page "two" is not a page number'), await text(page, "main"));
}

/// One broker's console on a cluster (`rest`: a topic, a partition another broker leads):
/// that partition followed live, a record produced to it from a second page, shown on both.
async function spread(page, context) {
  const [topic, partition] = rest;
  const at = `${base}/topics/${topic}/messages?partition=${partition}`;
  await page.goto(at);
  check("spread: the partition's record, read from its leader", (await page.locator("#records tbody tr").allInnerTexts()).some((r) => r.includes(`from-${partition}`)));
  await page.getByRole("button", { name: "Follow new records" }).click();
  await page.locator("#live-status", { hasText: "Waiting for new records" }).waitFor();
  const producer = await context.newPage();
  await producer.goto(at);
  await producer.locator("#p-partition").selectOption(partition);
  await producer.getByLabel("Value", { exact: true }).fill("sent to the leader");
  await producer.getByRole("button", { name: "Produce" }).click();
  await producer.waitForURL(new RegExp(`produced=${partition}:1`));
  await page.locator("#live-records tbody tr", { hasText: "sent to the leader" }).waitFor({ timeout: 10000 });
  const newest = await producer.locator("#records tbody tr").last().innerText();
  check("spread: produced through the leader, at offset 1", newest.includes("sent to the leader"), newest);
  await look(producer, "spread-produced");
}

const scenarios = { tour, reader, messages, groups, readonly, tiered, schemas, transactions, acls, paging, spread };
const browser = await chromium.launch({ executablePath: process.env.SHALE_CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  // Over HTTPS the broker's certificate is the test's own CA's, which Chromium does not
  // know: accepted for these runs only.
  const ignoreHTTPSErrors = base.startsWith("https://");
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Answers with an error status (the refusals the scenarios provoke) are logged by the
  // browser as "Failed to load resource"; anything else logged as an error is a fault.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  await scenarios[scenario](page, context);
  check("no script errors in any page", errors.length === 0, JSON.stringify(errors));
  report.ok = true;
} catch (e) {
  report.error = String(e.stack ?? e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
