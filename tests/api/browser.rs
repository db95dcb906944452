//! A real browser for the dashboard tests: Debian's chromium, headless, driven over WebDriver by
//! its chromedriver (both from `apt-get install chromium chromium-driver`; `.ci/run` installs
//! them). Each `Browser` has its own chromedriver process and profile.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub struct Browser {
    pub client: Client,
    _driver: tokio::process::Child,
    _profile: TempDir,
}

/// A directory removed when dropped (chromium's profile).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let profile = TempDir(
            std::env::temp_dir().join(format!("kiss-chromium-{}", uuid::Uuid::new_v4().simple())),
        );
        // The flags keep chromium off the network it cannot reach here, and off the sandbox it
        // cannot use as root.
        let capabilities = json!({"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.0.display())],
        }});
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        _driver: driver,
                        _profile: profile,
                    };
                }
                Err(err) => last_error = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start chromium: {last_error:?}");
    }

    /// The input whose `<label>` reads `label` (so the accessible name is checked too).
    pub async fn field(&self, label: &str) -> Element {
        let label = self
            .wait_for(&format!("//label[normalize-space()='{label}']"))
            .await;
        let id = label
            .attr("for")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the label {label:?} names its input"));
        self.client.find(Locator::Id(&id)).await.unwrap()
    }

    pub async fn fill(&self, label: &str, text: &str) {
        let field = self.field(label).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// The button whose text is `text`, once it is there.
    pub async fn button(&self, text: &str) -> Element {
        self.wait_for(&format!("//button[normalize-space()='{text}']"))
            .await
    }

    /// Clicks the button whose text is `text`.
    pub async fn click(&self, text: &str) {
        self.click_xpath(&format!("//button[normalize-space()='{text}']"))
            .await;
    }

    /// Clicks the link whose text is `text`.
    pub async fn click_link(&self, text: &str) {
        self.click_xpath(&format!("//a[normalize-space()='{text}']"))
            .await;
    }

    /// Clicks the first match of the XPath. The page re-renders after each answer of the API, so
    /// an element found a moment ago may be gone: it is looked up again until the click lands.
    pub async fn click_xpath(&self, xpath: &str) {
        let mut last_error = None;
        for _ in 0..50 {
            let element = self.wait_for(xpath).await;
            match element.click().await {
                Ok(()) => return,
                Err(err) => last_error = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{xpath} could not be clicked: {last_error:?}");
    }

    /// The first element matching the XPath, waiting up to 10 s for it.
    pub async fn wait_for(&self, xpath: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(xpath))
            .await;
        match found {
            Ok(element) => element,
            Err(err) => panic!(
                "{xpath} did not appear ({err}); the page shows:\n{}",
                self.page_text().await
            ),
        }
    }

    /// What the page shows, for failure messages.
    pub async fn page_text(&self) -> String {
        self.client
            .execute("return document.body.innerText", vec![])
            .await
            .map(|text| text.as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// Waits up to 10 s until nothing matches the XPath.
    pub async fn wait_gone(&self, xpath: &str) {
        for _ in 0..100 {
            if self
                .client
                .find_all(Locator::XPath(xpath))
                .await
                .unwrap()
                .is_empty()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{xpath} is still there");
    }

    /// A PNG of the viewport at `width` × `height`, written to `target/dashboard/<name>.png`.
    pub async fn screenshot(&self, name: &str, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}
