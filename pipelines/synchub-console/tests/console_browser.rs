//! The ops console in headless Chromium (Debian's `chromium`, driven over
//! WebDriver by `chromedriver` and the fantoccini crate), on PostgreSQL:
//! sign in, find 陳大文 by `0932-111-222`, open his 360° page and see the
//! orders of both shops, resolve a conflict by typing a value, replay a
//! dead letter, merge a review pair and unmerge it — each followed by a
//! read of the store. Every page visited is saved as a PNG screenshot under
//! `target/console-screenshots/` (the path is printed).
//!
//! Chromium missing is a failure, not a skip: `deploy/peers/chromium.sh`
//! installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use synchub_console::ConsoleConfig;
use synchub_testkit::TestDb;

/// `chromedriver` on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "chromedriver is needed for the browser suite and could not be started ({e}); \
                 run deploy/peers/chromium.sh (Debian: apt-get install chromium chromium-driver)"
            )
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Wait (at most 20 s) until it answers.
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {} within 20 s", driver.url);
}

/// A font covering Traditional and Simplified Chinese: without one the
/// names render as empty boxes (fontconfig's own answer).
fn assert_cjk_fonts() {
    for lang in ["zh-tw", "zh-cn"] {
        let out = Command::new("fc-list")
            .arg(format!(":lang={lang}"))
            .arg("family")
            .output()
            .expect("fc-list (fontconfig, installed with chromium)");
        assert!(
            !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "no font for {lang}: Chinese would render as empty boxes; run deploy/peers/chromium.sh"
        );
    }
}

async fn browser(driver: &Driver) -> Client {
    assert_cjk_fonts();
    let chromium = which("chromium").unwrap_or_else(|| {
        panic!("chromium is needed for the browser suite: run deploy/peers/chromium.sh")
    });
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=zh-TW"]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(caps);
    builder
        .connect(&driver.url)
        .await
        .expect("a headless Chromium session through chromedriver")
}

fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

/// Where the screenshots go: `target/console-screenshots/`.
fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

struct Session {
    client: Client,
    base: String,
    shots: PathBuf,
    taken: usize,
}

impl Session {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The page's path and query.
    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn click(&self, css: &str) {
        let path = self.path().await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on {path}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Saves the page as `NN-name.png`.
    async fn shot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

#[tokio::test]
async fn the_console_in_headless_chromium() {
    let driver = start_driver().await;
    let db = TestDb::postgres().await;
    let w = world(&db).await;
    let base = serve(
        w.store.clone(),
        w.pipelines.clone(),
        ConsoleConfig::default(),
    )
    .await;
    let mut s = Session {
        client: browser(&driver).await,
        base,
        shots: shots_dir(),
        taken: 0,
    };

    // GIVEN no session: the console sends the browser to its login form
    s.goto("/queues/conflicts").await;
    assert!(s.path().await.starts_with("/login"), "{}", s.path().await);
    s.shot("login").await;
    // WHEN the operator signs in THEN the page first asked for is shown
    s.type_into("input[name=name]", "ops").await;
    s.type_into("input[name=password]", OPS_PASSWORD).await;
    s.click("form button[type=submit]").await;
    assert_eq!(s.path().await, "/queues/conflicts");
    s.shot("conflicts").await;

    // Find 陳大文 by his phone written nationally, from the home page
    s.goto("/").await;
    s.shot("home").await;
    s.type_into("input[name=q]", "0932-111-222").await;
    s.click("form.search button[type=submit]").await;
    assert!(s.path().await.starts_with("/customers?q=0932"));
    let text = s.text().await;
    assert!(text.contains("陳大文"), "{text}");
    assert!(!text.contains("陳小明"), "{text}");
    s.shot("search").await;
    s.client
        .find(Locator::LinkText("陳大文"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(s.path().await, format!("/customers/{}", w.tai_man));
    let text = s.text().await;
    for shown in [
        "陳大文",
        "+886932111222",
        "shopa",
        "shopb",
        "#A-1001",
        "#B-2001",
    ] {
        assert!(
            text.contains(shown),
            "{shown} missing from the 360° page:\n{text}"
        );
    }
    s.shot("customer-360").await;
    // … as the store has him: linked in both shops, an order from each
    let systems: Vec<String> = w
        .store
        .contact_sources(&w.tai_man)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.system)
        .collect();
    assert!(systems.contains(&"shopa".to_string()) && systems.contains(&"shopb".to_string()));
    let orders: Vec<String> = w
        .store
        .contact_timeline(&w.tai_man)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "order")
        .filter_map(|e| e.title)
        .collect();
    assert_eq!(orders, vec!["#A-1001".to_string(), "#B-2001".to_string()]);

    // Resolve the conflict on his company by typing a value
    s.goto("/queues/conflicts").await;
    let form = format!("form[action=\"/queues/conflicts/{}/resolve\"]", w.conflict);
    s.type_into(&format!("{form} input[name=value]"), "Acme Group")
        .await;
    s.shot("conflict-typed").await;
    s.click(&format!("{form} input[name=value] ~ button")).await;
    s.shot("conflict-resolved").await;
    let c = w.store.conflict(w.conflict).await.unwrap().unwrap();
    assert_eq!(c.status, "resolved");
    let rec = w.store.record(&w.tai_man).await.unwrap().unwrap();
    assert_eq!(
        rec.record.as_contact().unwrap().company.as_deref(),
        Some("Acme Group")
    );

    // Replay the dead letter (the pipeline's mapping was fixed)
    s.goto("/queues/dead-letters").await;
    s.shot("dead-letters").await;
    s.goto(&format!("/queues/dead-letters/{}", w.dead_letter))
        .await;
    assert!(s.text().await.contains("林美玲"));
    s.shot("dead-letter").await;
    s.click(&format!(
        "form[action=\"/queues/dead-letters/{}/replay\"] button",
        w.dead_letter
    ))
    .await;
    s.shot("dead-letter-replayed").await;
    let d = w.store.dead_letter(w.dead_letter).await.unwrap().unwrap();
    assert!(d.resolved_at.is_some(), "{d:?}");
    let found = synchub_console::find_contacts(&w.store, "0922-000-111", Some("TW"), 5)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name.as_deref(), Some("林美玲"));

    // Merge the review pair …
    let r = w.store.review(w.review).await.unwrap().unwrap();
    s.goto("/queues/reviews").await;
    s.shot("reviews").await;
    s.click(&format!(
        "form[action=\"/queues/reviews/{}/merge\"] button",
        w.review
    ))
    .await;
    assert_eq!(
        w.store.review(w.review).await.unwrap().unwrap().status,
        "merged"
    );
    assert_eq!(
        w.store
            .live_contact_id(&r.right_id)
            .await
            .unwrap()
            .as_deref(),
        Some(r.left_id.as_str())
    );
    // … then undo it from the survivor's page
    s.goto(&format!("/customers/{}", r.left_id)).await;
    s.shot("merged-customer").await;
    let merge = w.store.contact_merges(&r.left_id).await.unwrap()[0].id;
    s.click(&format!("form[action=\"/merges/{merge}/unmerge\"] button"))
        .await;
    s.shot("unmerged").await;
    assert_eq!(
        w.store
            .live_contact_id(&r.right_id)
            .await
            .unwrap()
            .as_deref(),
        Some(r.right_id.as_str())
    );
    let audit: Vec<String> = w
        .store
        .audit_of_contact(&r.right_id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(
        audit.contains(&"review.merge".to_string()) && audit.contains(&"merge.unmerge".to_string()),
        "{audit:?}"
    );

    // The remaining pages, each shown and saved
    for (path, name, shown) in [
        ("/queues/refused", "refused", "Refused"),
        ("/pipelines", "pipelines", "Credentials"),
        ("/runs/1", "run", "Run #1"),
        ("/customers?q=%E9%99%B3", "search-family-name", "陳小明"),
    ] {
        s.goto(path).await;
        let text = s.text().await;
        assert!(text.contains(shown), "{path}: no {shown}:\n{text}");
        s.shot(name).await;
    }
    println!("screenshots of every page: {}", s.shots.display());
    // Ending the session is cleanup, not a check (chromedriver is killed next).
    if let Err(e) = s.client.close().await {
        eprintln!("closing the browser session: {e}");
    }
}
