//! A headless Chromium driven through chromedriver (WebDriver), for the browser tests.
//!
//! Chromedriver runs in a process group of its own that is killed when the [`Browser`] is
//! dropped, so no Chrome outlives a test, even one that panicked. Without Chromium the
//! tests say SKIP and pass, unless `BATCHBOARD_REQUIRE_BROWSER` is set (`.ci/run` sets
//! it), in which case they fail.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Set (to anything but empty) when a missing browser must fail the tests, not skip them.
pub const REQUIRE_BROWSER: &str = "BATCHBOARD_REQUIRE_BROWSER";

/// How long to wait for something to appear on a page. Generous: the first page load
/// of a fresh Chromium occasionally stalls for ~5 s.
const PATIENCE: Duration = Duration::from_secs(15);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The browser window, large enough that the console shows its desktop layout.
const WINDOW: (u32, u32) = (1280, 1000);

/// A headless Chromium with one WebDriver session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    // Dropped after `driver` is killed (fields drop after `Drop::drop`).
    _profile: tempfile::TempDir,
}

/// Starts a headless Chromium, or returns `None` (after printing SKIP) when it is not
/// installed and [`REQUIRE_BROWSER`] is not set.
pub async fn start() -> Option<Browser> {
    let installed = Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists();
    if !installed {
        let required = std::env::var_os(REQUIRE_BROWSER).is_some_and(|value| !value.is_empty());
        assert!(
            !required,
            "{REQUIRE_BROWSER} is set but {CHROMEDRIVER} or {CHROMIUM} is missing"
        );
        eprintln!("SKIP: {CHROMEDRIVER} or {CHROMIUM} is not installed; browser test not run");
        return None;
    }
    // Chrome writes to $HOME, /tmp and the XDG folders unless told otherwise: keep all of
    // it in one throwaway profile.
    let profile = tempfile::tempdir().expect("a profile directory");
    let port = free_port();
    let mut command = Command::new(CHROMEDRIVER);
    command
        .arg(format!("--port={port}"))
        .arg(format!(
            "--log-path={}",
            profile.path().join("chromedriver.log").display()
        ))
        .env("XDG_CONFIG_HOME", profile.path())
        .env("XDG_CACHE_HOME", profile.path())
        .env("TMPDIR", profile.path())
        // Times on the pages are rewritten to the viewer's zone: make that zone fixed.
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut driver = command.spawn().expect("chromedriver starts");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect_timeout(&address, POLL).is_err() {
        if Instant::now() > deadline {
            kill_group(&mut driver);
            panic!("chromedriver did not listen on {address} within {PATIENCE:?}");
        }
        std::thread::sleep(POLL);
    }
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                // Chromium refuses to start as root with its sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                format!("--user-data-dir={}", profile.path().join("chrome").display()),
            ]
        }
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal");
    };
    // No TLS: chromedriver is on 127.0.0.1.
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://{address}"))
        .await;
    match client {
        Ok(client) => Some(Browser {
            client,
            driver,
            _profile: profile,
        }),
        Err(error) => {
            kill_group(&mut driver);
            let log = std::fs::read_to_string(profile.path().join("chromedriver.log"))
                .unwrap_or_default();
            panic!("no browser session: {error}\nchromedriver's log:\n{log}");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("{url} did not open: {error}"));
    }

    /// The path of the current page (`/jobs/x`), without the query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("a current URL");
        url.path().to_owned()
    }

    /// Waits until the current page's path is `path` (after a click that navigates).
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the browser never reached {path}; it is on {now}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the address bar shows `address` (path and query), as after htmx
    /// pushed it.
    pub async fn wait_for_address(&self, address: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.client.current_url().await.expect("a current URL");
            let now = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            };
            if now == address {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the address never became {address}; it is {now}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the current page's path starts with `prefix`; returns the path.
    pub async fn wait_for_path_starting(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.path().await;
            if now.starts_with(prefix) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the browser never reached {prefix}…; it is on {now}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element matching `css` to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css} did not appear: {error}"))
    }

    /// The text content of the first element matching `css`, if there is one. Read with
    /// a script, so that an element htmx just swapped out is never "stale".
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e ? e.textContent : null;";
        let found = self
            .client
            .execute(script, vec![json!(css)])
            .await
            .unwrap_or_else(|error| panic!("reading {css} failed: {error}"));
        found.as_str().map(squeeze)
    }

    /// The attribute `name` of the first element matching `css`, if both exist.
    pub async fn attr_of(&self, css: &str, name: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e ? e.getAttribute(arguments[1]) : null;";
        let found = self
            .client
            .execute(script, vec![json!(css), json!(name)])
            .await
            .unwrap_or_else(|error| panic!("reading {css}'s {name} failed: {error}"));
        found.as_str().map(str::to_owned)
    }

    /// Waits until the first element matching `css` contains `wanted`; returns its text.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text_of(css).await;
            if let Some(text) = &text
                && text.contains(wanted)
            {
                return text.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{css} never said {wanted:?} within {PATIENCE:?}; it says {text:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Replaces the value of the text field matching `css` with `value`, as a person
    /// typing would (so htmx's `input` listeners fire).
    pub async fn type_into(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("the field clears");
        field.send_keys(value).await.expect("the keys are typed");
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("{css} could not be clicked: {error}"));
    }

    /// Marks the current document; [`Browser::assert_not_reloaded`] then tells whether
    /// the page was updated in place (the mark survives) or loaded anew (it is gone).
    pub async fn mark_page(&self) {
        self.client
            .execute("window.__batchboardMark = 'kept';", vec![])
            .await
            .expect("the page is marked");
    }

    /// Asserts that the document marked by [`Browser::mark_page`] is still the one shown.
    pub async fn assert_not_reloaded(&self, what: &str) {
        let mark = self
            .client
            .execute("return window.__batchboardMark || null;", vec![])
            .await
            .expect("the mark is read");
        assert_eq!(
            mark,
            json!("kept"),
            "{what}: the page was reloaded instead of updated in place"
        );
    }

    /// Saves a screenshot of the whole page (the window grown to the page's height) as
    /// `artifacts/{name}.png`, for a person to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .client
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .await
            .ok()
            .and_then(|height| height.as_u64())
            .and_then(|height| u32::try_from(height).ok())
            .unwrap_or(WINDOW.1);
        // The window's frame is not part of the page: ask for the page's height plus the
        // difference between the window and its viewport.
        let chrome_height = self
            .client
            .execute("return window.outerHeight - window.innerHeight;", vec![])
            .await
            .ok()
            .and_then(|extra| extra.as_u64())
            .and_then(|extra| u32::try_from(extra).ok())
            .unwrap_or(0);
        let tall = height.clamp(WINDOW.1, 6000) + chrome_height;
        let _ = self.client.set_window_size(WINDOW.0, tall).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        let _ = self.client.set_window_size(WINDOW.0, WINDOW.1).await;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
        std::fs::create_dir_all(&dir).expect("an artifacts directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the browser session politely; dropping the [`Browser`] then stops
    /// chromedriver and anything left of Chrome.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Collapses runs of white space, as a reader sees the text.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kill_group(driver: &mut Child) {
    // Chrome survives a signal to chromedriver alone: signal the whole group, which
    // chromedriver leads (it was started with process_group(0)).
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(driver.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}
