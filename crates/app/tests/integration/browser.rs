//! The two first pages in a real headless Chromium: a buyer takes a ticket
//! on the storefront page; the organizer's dashboard counts the admission
//! without a reload.

use std::{net::TcpListener, process::Stdio, time::Duration};

use thirtyfour::prelude::*;

use crate::support::*;

struct Driver {
    process: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let process = std::process::Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}); install Debian's chromium-driver (bash .ci/run does)")
        });
    Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(&std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
        .unwrap();
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ] {
        caps.add_arg(arg).unwrap();
    }
    for _ in 0..50 {
        if let Ok(d) = WebDriver::new(&driver.url, caps.clone()).await {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start a browser session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_taken_on_the_storefront_is_scanned_and_the_dashboard_counts_it_live() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    // The organizer signs up through the API and logs in on the page.
    let slug = unique("web");
    let signup = t
        .post(
            "/api/v1/signup",
            None,
            serde_json::json!({"email": format!("{slug}@example.com"), "password": "a long password", "org_name": "Web", "org_slug": slug}),
        )
        .await;
    assert_eq!(signup.status(), 201);
    let key = signup.json::<serde_json::Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let org = Org {
        slug: slug.clone(),
        key,
        email: format!("{slug}@example.com"),
    };
    let event = t.event(&org, 50).await;
    let device = t.device(&org, &[&event.id]).await;

    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        // Buyer: take a ticket.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        assert_eq!(b.find(By::Css(".available")).await?.text().await?, "50");
        b.find(By::Css("input[name=email]"))
            .await?
            .send_keys("buyer@example.com")
            .await?;
        b.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Ada Buyer")
            .await?;
        b.find(By::Css("form.ticket-type button"))
            .await?
            .click()
            .await?;
        let code_el = b.query(By::Css("code.code")).first().await?;
        let code = code_el.text().await?;
        assert!(code.starts_with("VG1."), "{code}");
        assert_eq!(b.find(By::Id("order-status")).await?.text().await?, "paid");
        assert!(
            b.find(By::Css(".ticket svg")).await.is_ok(),
            "the QR code is drawn"
        );
        // The same ticket as a PDF, from the link on the page.
        let pdf_url = b
            .find(By::Css("a.pdf"))
            .await?
            .prop("href")
            .await?
            .expect("the PDF link has an address");
        let pdf = t.client.get(&pdf_url).send().await.expect("the PDF");
        assert_eq!(pdf.headers()["content-type"], "application/pdf");
        let pdf = pdf.bytes().await.expect("bytes");
        assert_eq!(
            ticketpdf::decode::qr_codes(&pdf).unwrap(),
            vec![code.clone()]
        );

        // Organizer: log in, open the live dashboard.
        b.goto(&t.url("/dashboard")).await?;
        assert!(
            b.current_url().await?.as_str().ends_with("/login"),
            "the dashboard needs a login"
        );
        b.find(By::Id("email"))
            .await?
            .send_keys(&format!("{slug}@example.com"))
            .await?;
        b.find(By::Id("password"))
            .await?
            .send_keys("a long password")
            .await?;
        b.find(By::Id("login")).await?.click().await?;
        b.query(By::LinkText("Test Night"))
            .first()
            .await?
            .click()
            .await?;
        assert_eq!(b.find(By::Id("sold")).await?.text().await?, "1");
        assert_eq!(b.find(By::Id("admitted")).await?.text().await?, "0");
        b.query(By::XPath("//span[@id='conn' and text()='live']"))
            .wait(Duration::from_secs(10), Duration::from_millis(100))
            .first()
            .await?;

        // The gate scans it; the dashboard counts it without a reload.
        let scanned = t.scan(&device, &code, &event.id).await;
        assert_eq!(scanned["result"], "admitted");
        b.query(By::XPath("//span[@id='admitted' and text()='1']"))
            .wait(Duration::from_secs(10), Duration::from_millis(100))
            .first()
            .await?;

        // The mail page: the sender name the buyers will see.
        b.goto(&t.url("/dashboard/mail")).await?;
        b.find(By::Css("input[name=sender_name]"))
            .await?
            .send_keys("Klopse Box Office")
            .await?;
        b.find(By::Css("#mail-settings button"))
            .await?
            .click()
            .await?;
        b.find(By::Id("saved")).await?;
        assert_eq!(
            b.find(By::Css("input[name=sender_name]"))
                .await?
                .value()
                .await?
                .as_deref(),
            Some("Klopse Box Office")
        );
        assert_eq!(
            b.find(By::Css("#sent td.kind")).await?.text().await?,
            "order_confirmation",
            "the storefront order's confirmation is in the log"
        );

        // Exports: ask for the attendee list, watch it finish, download it.
        b.goto(&t.url("/dashboard/exports")).await?;
        b.find(By::Css("#ask-export button")).await?.click().await?;
        let link = b
            .query(By::Css("a.download"))
            .wait(Duration::from_secs(15), Duration::from_millis(200))
            .first()
            .await?;
        let href = link.prop("href").await?.expect("a download link");
        let csv = t.client.get(&href).send().await.expect("the file");
        assert_eq!(csv.status(), 200);
        let csv = csv.text().await.expect("text");
        assert_eq!(csv.lines().count(), 2, "header and the one ticket: {csv}");
        // The sales report counts the ticket.
        b.goto(&t.url(&format!("/dashboard/events/{}/report", event.id)))
            .await?;
        assert_eq!(b.find(By::Css(".total-sold")).await?.text().await?, "1");
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}
