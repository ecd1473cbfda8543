//! The web console (issue 55) in a real browser: Debian's Chromium, headless, driven by
//! Playwright (`scripts/browser.sh install`), against a broker in this process. Each
//! scenario (`tests/console/console.mjs`) acts as a user would, checks what the pages
//! show, and runs axe-core's accessibility rules on every page it visits; screenshots of
//! each page are kept in `target/console-screenshots/SCENARIO/`.
//!
//! Without the browser a test fails when `CI=true`, naming the install command; otherwise
//! it skips after a note.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How long a scenario may take (a few seconds here; Chromium's first start is the most).
const WITHIN: Duration = Duration::from_secs(120);

/// What `scripts/browser.sh WHAT` prints, if the browser is installed; else fails under
/// `CI=true`, or notes the skip.
fn browser(what: &str) -> Option<PathBuf> {
    let script = kafka::root().join("scripts/browser.sh");
    let out = Command::new(script).arg(what).output().ok();
    if let Some(out) = out.filter(|o| o.status.success()) {
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let msg = "the browser is not installed: run `scripts/browser.sh install`";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("note: skipping: {msg}");
    None
}

/// Runs `scenario` of `console.mjs` with `args` against `url`: its JSON report, checked.
fn scenario(scenario: &str, url: &str, args: &[&str]) -> Option<serde_json::Value> {
    let (node_dir, chromium) = (browser("node-dir")?, browser("chromium")?);
    let shots = kafka::root().join("target/console-screenshots").join(scenario);
    let mut cmd = Command::new("node");
    cmd.arg(kafka::root().join("tests/console/console.mjs"))
        .arg(scenario)
        .arg(url)
        .arg(&shots)
        .args(args)
        .env("SHALE_BROWSER_DIR", node_dir)
        .env("SHALE_CHROMIUM", chromium);
    Some(kafka::run(cmd, WITHIN).assert_ok(&format!("the console's {scenario} scenario")))
}

/// A broker in this process with its console.
async fn broker(dir: &std::path::Path) -> shale::server::RunningServer {
    let mut settings = common::settings(dir);
    settings.console.listen = Some("127.0.0.1:0".parse().unwrap());
    common::start(settings).await
}

/// Anonymous access: the overview, the empty topic list, a create refused by name and one
/// made through the form, the topic's partitions and configs, search, the keyboard, a
/// forged change refused, and a delete behind its typed confirmation; every page free of
/// accessibility violations.
#[test]
fn a_user_creates_browses_and_deletes_a_topic_in_the_browser() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path()));
    let url = server.console_url().unwrap();
    let Some(report) = scenario("tour", &url, &["orders"]) else { return };
    let pages = report["pages"].as_object().unwrap();
    for page in ["overview", "topics-empty", "topics-refused", "topic", "topic-delete"] {
        assert!(pages.contains_key(page), "{page} was looked at: {report}");
    }
    let left = rt.block_on(server.broker().list_topics()).unwrap();
    assert!(left.iter().all(|t| t.record.name != "orders"), "deleted: {left:?}");
    rt.block_on(server.close()).unwrap();
}
