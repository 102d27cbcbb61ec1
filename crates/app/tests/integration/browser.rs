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

/// The element, once the page that has it is there (after a click that
/// navigates, the old page may still be shown for a moment).
async fn soon(b: &WebDriver, by: By) -> WebDriverResult<WebElement> {
    // A page being replaced (a form's answer loading under a busy machine)
    // can turn what the query found stale while it is looked at: look again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match b
            .query(by.clone())
            .wait(Duration::from_secs(15), Duration::from_millis(100))
            .first()
            .await
        {
            Err(e)
                if matches!(
                    e.as_inner(),
                    thirtyfour::error::WebDriverErrorInner::StaleElementReference(_)
                ) && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The text of what `by` finds once it is there, looked up again if the
/// page was replaced between finding it and reading it.
async fn soon_text(b: &WebDriver, by: By) -> WebDriverResult<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let read = match soon(b, by.clone()).await {
            Ok(el) => el.text().await,
            Err(e) => Err(e),
        };
        match read {
            Err(e)
                if matches!(
                    e.as_inner(),
                    thirtyfour::error::WebDriverErrorInner::StaleElementReference(_)
                ) && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Waits until what `by` finds reads `want`: the page that says so may be
/// replacing one that does not (an element of the old page going stale
/// while it is read is looked up again, which a query's text filter does
/// not do).
async fn soon_text_is(b: &WebDriver, by: By, want: &str) -> WebDriverResult<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = soon_text(b, by.clone()).await?;
        if got == want {
            return Ok(());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{by:?} reads {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The storefront's second step: on the hold's page, the buyer's details
/// (and a payment method, for priced tickets), then the order.
async fn check_out_on_page(
    b: &WebDriver,
    email: &str,
    name: &str,
    method: Option<&str>,
) -> WebDriverResult<()> {
    let form = soon(b, By::Id("checkout")).await?;
    form.find(By::Css("input[name=email]"))
        .await?
        .send_keys(email)
        .await?;
    form.find(By::Css("input[name=name]"))
        .await?
        .send_keys(name)
        .await?;
    if let Some(m) = method {
        form.find(By::Css(format!("input[name=payment_method][value={m}]")))
            .await?
            .click()
            .await?;
    }
    form.find(By::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    Ok(())
}

/// An organizer signed up through the API, whose password is "a long
/// password".
async fn organizer(t: &TestApp, prefix: &str) -> Org {
    let slug = unique(prefix);
    let signup = t
        .post(
            "/api/v1/signup",
            None,
            serde_json::json!({"email": format!("{slug}@example.com"), "password": "a long password", "org_name": prefix, "org_slug": slug}),
        )
        .await;
    assert_eq!(signup.status(), 201);
    let key = signup.json::<serde_json::Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    Org {
        email: format!("{slug}@example.com"),
        slug,
        key,
    }
}

/// Fills in and sends the login page the browser is on.
async fn log_in(b: &WebDriver, org: &Org) -> WebDriverResult<()> {
    b.find(By::Id("email")).await?.send_keys(&org.email).await?;
    b.find(By::Id("password"))
        .await?
        .send_keys("a long password")
        .await?;
    b.find(By::Id("login")).await?.click().await
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
    let org = organizer(&t, "web").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 50).await;
    let device = t.device(&org, &[&event.id]).await;

    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        // Buyer: take a ticket.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        assert_eq!(b.find(By::Css(".available")).await?.text().await?, "50");
        b.find(By::Css("#cart button")).await?.click().await?;
        check_out_on_page(&b, "buyer@example.com", "Ada Buyer", None).await?;
        let code_el = b.query(By::Css("code.code")).first().await?;
        let code = code_el.text().await?;
        assert!(code.starts_with("VG2"), "{code}");
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
        log_in(&b, &org).await?;
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
        b.query(By::Id("saved"))
            .wait(Duration::from_secs(10), Duration::from_millis(100))
            .first()
            .await?;
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

        // The buyer lost the order page: the storefront's "find your
        // orders" mails a link, which lists the order and opens it.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        b.find(By::Id("find-orders")).await?.click().await?;
        soon(&b, By::Css("#order-lookup input[name=email]"))
            .await?
            .send_keys("Buyer@Example.com")
            .await?;
        b.find(By::Css("#order-lookup button"))
            .await?
            .click()
            .await?;
        let sent = soon_text(&b, By::Id("lookup-sent")).await?;
        assert!(sent.contains("buyer@example.com"), "{sent}");
        let dir = t.config().data_dir.join("mail");
        let mut link = None;
        for _ in 0..100 {
            link = crate::mail::read_messages(&dir)
                .into_iter()
                .find(|m| {
                    m.headers["subject"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("Your orders")
                })
                .map(|m| {
                    let at = m.body.find("http").expect("a link");
                    m.body[at..].split_whitespace().next().unwrap().to_string()
                });
            if link.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // (The mail links to the configured public URL; this server is on
        // a port of its own.)
        let link = link.expect("the look-up mail");
        b.goto(&t.url(&link[link.find("/s/").expect("a storefront link")..]))
            .await?;
        b.find(By::Css("#my-orders .my-order a"))
            .await?
            .click()
            .await?;
        assert_eq!(soon_text(&b, By::Id("order-status")).await?, "paid");
        assert_eq!(b.find(By::Css("code.code")).await?.text().await?, code);
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// Money in the browser: a buyer pays by card through the provider's
/// client-side flow (the stand-in), another chooses EFT and sees the
/// reference and the countdown; the organizer finds the EFT order, marks it
/// paid, refunds part of it and cancels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_pay_by_card_or_eft_and_the_organizer_marks_paid_refunds_and_cancels() {
    use voelgoed::stripe_standin::{self, Standin};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = stripe_standin::start(Standin::default(), listener).await;
    let cfg = s.config();
    let base = s.base_url();
    let t = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.stripe_api_base = base;
        c.stripe_secret_key = Some(cfg.secret_key.clone());
        c.stripe_publishable_key = Some(cfg.publishable_key.clone());
        c.stripe_webhook_secret = Some(cfg.webhook_secret.clone());
    })
    .await;
    s.set_webhook_url(Some(t.url("/api/v1/payments/stripe/webhook")));
    let slug = unique("pay");
    let signup = t
        .post(
            "/api/v1/signup",
            None,
            serde_json::json!({"email": format!("{slug}@example.com"), "password": "a long password", "org_name": "Pay", "org_slug": slug}),
        )
        .await;
    let key = signup.json::<serde_json::Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let org = Org {
        slug: slug.clone(),
        key,
        email: format!("{slug}@example.com"),
    };
    let event = t
        .try_event(&org, &EventSpec::capacity(10).priced(5000))
        .await
        .unwrap();

    let driver = chromedriver();
    let b = browser(&driver).await;
    let buy = |email: &'static str, method: &'static str| {
        let (b, url) = (&b, t.url(&format!("/s/{slug}/events/{}", event.id)));
        async move {
            b.goto(&url).await?;
            b.find(By::Css("#cart button")).await?.click().await?;
            check_out_on_page(b, email, "Grace", Some(method)).await?;
            soon(b, By::Id("order-status")).await?;
            Ok::<_, WebDriverError>(())
        }
    };
    let result = async {
        // Card: the page confirms at the provider; the webhook pays the order.
        buy("card@example.com", "card").await?;
        assert_eq!(
            b.find(By::Id("order-status")).await?.text().await?,
            "pending"
        );
        assert_eq!(
            b.find(By::Id("order-total")).await?.text().await?,
            "ZAR 50.00"
        );
        b.find(By::Css("#card-form button")).await?.click().await?;
        b.query(By::XPath("//strong[@id='order-status' and text()='paid']"))
            .wait(Duration::from_secs(20), Duration::from_millis(200))
            .first()
            .await?;
        assert!(
            b.find(By::Css(".ticket svg")).await.is_ok(),
            "the ticket is shown"
        );
        assert_eq!(s.intents()[0]["status"], "succeeded");
        assert!(
            b.find(By::Id("invoice"))
                .await?
                .text()
                .await?
                .contains("INV-000001"),
            "the paid order links its invoice"
        );

        // EFT: the reference and a running countdown.
        buy("eft@example.com", "eft").await?;
        let reference = b.find(By::Id("eft-reference")).await?.text().await?;
        assert!(reference.starts_with("VG-"), "{reference}");
        assert_eq!(
            b.find(By::Id("eft-amount")).await?.text().await?,
            "ZAR 50.00"
        );
        b.query(By::XPath(
            "//strong[@id='countdown' and contains(text(), ':')]",
        ))
        .wait(Duration::from_secs(5), Duration::from_millis(100))
        .first()
        .await?;

        // The organizer: log in, find the EFT order, mark it paid.
        b.goto(&t.url("/login")).await?;
        b.find(By::Id("email")).await?.send_keys(&org.email).await?;
        b.find(By::Id("password"))
            .await?
            .send_keys("a long password")
            .await?;
        b.find(By::Id("login")).await?.click().await?;
        soon(&b, By::LinkText("Orders")).await?;
        b.goto(&t.url("/dashboard/orders?q=eft%40example")).await?;
        let rows = b.find_all(By::Css("#orders tbody tr")).await?;
        assert_eq!(rows.len(), 1);
        rows[0].find(By::Css("a")).await?.click().await?;
        assert_eq!(soon_text(&b, By::Id("reference")).await?, reference);
        b.find(By::Css("#mark-paid button")).await?.click().await?;
        soon(&b, By::Id("notice")).await?;
        assert_eq!(b.find(By::Id("order-status")).await?.text().await?, "paid");
        // Refund part of it, typed in rand.
        let amount = b.find(By::Css("#refund input[name=amount]")).await?;
        amount.clear().await?;
        amount.send_keys("20").await?;
        b.find(By::Css("#refund input[name=reason]"))
            .await?
            .send_keys("a seat was broken")
            .await?;
        b.find(By::Css("#refund button")).await?.click().await?;
        soon(
            &b,
            By::XPath("//dd[@id='order-status' and text()='partially_refunded']"),
        )
        .await?;
        assert_eq!(
            b.find(By::Css(".refund-amount")).await?.text().await?,
            "ZAR 20.00"
        );
        // Too much is refused with the reason, nothing changes.
        let amount = b.find(By::Css("#refund input[name=amount]")).await?;
        amount.clear().await?;
        amount.send_keys("31").await?;
        b.find(By::Css("#refund button")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("at most 3000"), "{err}");
        // Cancel: the rest is refunded, the ticket revoked.
        b.find(By::Css("#cancel button")).await?.click().await?;
        soon(
            &b,
            By::XPath("//dd[@id='order-status' and text()='cancelled']"),
        )
        .await?;
        assert_eq!(
            b.find(By::Id("order-refunded")).await?.text().await?,
            "ZAR 50.00"
        );
        assert_eq!(
            b.find(By::Css(".ticket-status")).await?.text().await?,
            "revoked"
        );
        // Money settings: VAT and a booking fee, typed in percent and rand.
        b.goto(&t.url("/dashboard/money")).await?;
        let tax = b.find(By::Css("input[name=tax_percent]")).await?;
        tax.clear().await?;
        tax.send_keys("15").await?;
        let fee = b.find(By::Css("input[name=fee]")).await?;
        fee.clear().await?;
        fee.send_keys("7.50").await?;
        b.find(By::Css("#money-settings button"))
            .await?
            .click()
            .await?;
        soon(&b, By::Id("saved")).await?;
        let stored: serde_json::Value = t
            .get(
                &format!("/api/v1/orgs/{slug}/money/settings"),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["tax_bp"], 1500);
        assert_eq!(stored["fee_per_ticket_cents"], 750);
        // Sales limits from the event's dashboard: a bad number is said
        // beside the form, a good one stored.
        b.goto(&t.url(&format!("/dashboard/events/{}", event.id)))
            .await?;
        b.find(By::Id("limits-link")).await?.click().await?;
        let per_order = soon(&b, By::Css("input[name=max_tickets_per_order]")).await?;
        per_order.send_keys("2000").await?;
        b.find(By::Css("#sales-limits button"))
            .await?
            .click()
            .await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("max_tickets_per_order"), "{err}");
        let per_order = b.find(By::Css("input[name=max_tickets_per_order]")).await?;
        per_order.clear().await?;
        per_order.send_keys("6").await?;
        b.find(By::Css("input[name=max_tickets_per_buyer]"))
            .await?
            .send_keys("8")
            .await?;
        b.find(By::Css("#sales-limits button"))
            .await?
            .click()
            .await?;
        soon(&b, By::Id("saved")).await?;
        let stored: serde_json::Value = t
            .get(
                &format!("/api/v1/orgs/{slug}/events/{}/sales-limits", event.id),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"max_tickets_per_order": 6, "max_tickets_per_buyer": 8,
                               "waitlist_offer_hours": null})
        );
        // Call the event off from its dashboard: the card order is refunded
        // through the provider.
        b.goto(&t.url(&format!("/dashboard/events/{}", event.id)))
            .await?;
        b.find(By::Css("#cancel-event input[name=confirm]"))
            .await?
            .click()
            .await?;
        b.find(By::Css("#cancel-event button"))
            .await?
            .click()
            .await?;
        soon(&b, By::Id("event-cancelled")).await?;
        let card_order = s.intents()[0]["metadata"]["order_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut last = serde_json::Value::Null;
        for _ in 0..100 {
            last = t
                .get(
                    &format!("/api/v1/orgs/{slug}/orders/{card_order}"),
                    Some(&org.key),
                )
                .await
                .json()
                .await
                .unwrap();
            if last["refunds"][0]["status"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last["status"], "cancelled", "{last}");
        assert_eq!(last["refunds"][0]["status"], "succeeded", "{last}");
        assert_eq!(s.refunds().len(), 1);
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
    s.stop();
}

/// The waiting room in the browser: the organizer turns it on from the
/// event's settings page; a visitor is sent from the storefront to the
/// room, joins, watches their place, and is taken to the tickets by the
/// page itself when their turn comes; the pass buys once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visitor_waits_their_turn_in_the_room_and_buys() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "room").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 50).await;
    // The room opens a minute from the test clock's now (UTC, to the minute).
    let opens = kernel::clock::rfc3339(t.app().kernel.now() + 120 * 1_000_000);
    let opens_field = opens[..16].to_string();

    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::LinkText("Test Night")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/limits", event.id)))
            .await?;
        b.find(By::Css("#waiting-room input[name=enabled]"))
            .await?
            .click()
            .await?;
        let rate = b
            .find(By::Css("#waiting-room input[name=per_minute]"))
            .await?;
        rate.clear().await?;
        rate.send_keys("60").await?;
        // (A date-time field is typed in the browser's locale; the picker's
        // value is what the form sends, so set that.)
        let at = b
            .find(By::Css("#waiting-room input[name=opens_at]"))
            .await?;
        b.execute(
            "arguments[0].value = arguments[1];",
            vec![at.to_json()?, serde_json::json!(opens_field)],
        )
        .await?;
        b.find(By::Css("#waiting-room button"))
            .await?
            .click()
            .await?;
        soon(&b, By::Id("room-saved")).await?;
        let room: serde_json::Value = t
            .get(
                &format!("/api/v1/orgs/{slug}/events/{}/waiting-room", event.id),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(room["enabled"], true);
        assert_eq!(room["per_minute"], 60);

        // The visitor: sent to the room, joins, is first in line.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        soon(&b, By::Css("#join-queue button"))
            .await?
            .click()
            .await?;
        assert_eq!(soon_text(&b, By::Id("position")).await?, "1");
        // The sale opens; a second later one visitor a second is through:
        // the page moves on by itself.
        t.advance(Duration::from_secs(122));
        let take = b
            .query(By::Css("#cart button"))
            .wait(Duration::from_secs(15), Duration::from_millis(200))
            .first()
            .await?;
        let with_pass = b.current_url().await?.to_string();
        assert!(with_pass.contains("pass="), "{with_pass}");
        take.click().await?;
        check_out_on_page(&b, "visitor@example.com", "Vera Visitor", None).await?;
        assert_eq!(soon_text(&b, By::Id("order-status")).await?, "paid");
        // The same pass again: refused on the page.
        b.goto(&with_pass).await?;
        soon(&b, By::Css("#cart button")).await?.click().await?;
        let err = soon_text(&b, By::Css("p.error")).await?;
        assert!(err.contains("used"), "{err}");
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// Sets a form field's value as its picker would (date-time fields are
/// typed in the browser's locale).
async fn set_value(b: &WebDriver, css: &str, value: &str) -> WebDriverResult<()> {
    let el = b.find(By::Css(css)).await?;
    b.execute(
        "arguments[0].value = arguments[1];",
        vec![el.to_json()?, serde_json::json!(value)],
    )
    .await?;
    Ok(())
}

/// Fills in and sends the new-event form (from the dashboard): times are
/// the venue's local wall clock.
async fn new_event(
    b: &WebDriver,
    name: &str,
    timezone: &str,
    (starts, ends): (&str, &str),
    series: bool,
) -> WebDriverResult<()> {
    soon(b, By::Id("new-event-link")).await?.click().await?;
    soon(b, By::Css("#new-event input[name=name]"))
        .await?
        .send_keys(name)
        .await?;
    let tz = b.find(By::Css("#new-event input[name=timezone]")).await?;
    tz.clear().await?;
    tz.send_keys(timezone).await?;
    set_value(b, "#new-event input[name=starts_at]", starts).await?;
    set_value(b, "#new-event input[name=ends_at]", ends).await?;
    if series {
        b.find(By::Css("#new-event input[name=series]"))
            .await?
            .click()
            .await?;
    }
    b.find(By::Css("#new-event button")).await?.click().await
}

/// The organizer builds an event from the console alone: a draft with its
/// times in the venue's zone, two ticket types, a quota they share, publish;
/// the storefront sells what the quota allows. A bad time zone and a bad
/// quota are told on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_builds_an_event_with_a_shared_quota_in_the_browser() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "catalog").await;
    let slug = org.slug.clone();
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        new_event(
            &b,
            "Summer Jam",
            "Africa/Gotham",
            ("2030-12-31T20:00", "2031-01-01T02:00"),
            false,
        )
        .await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("IANA"), "{err}");
        // What was typed is kept; the zone put right, it is made.
        let tz = b.find(By::Css("#new-event input[name=timezone]")).await?;
        tz.clear().await?;
        tz.send_keys("Africa/Johannesburg").await?;
        b.find(By::Css("#new-event button")).await?.click().await?;
        // 20:00 in Johannesburg (UTC+2), shown there as it was typed.
        let when = soon_text(&b, By::Id("event-when")).await?;
        assert!(when.starts_with("Tue 31 Dec 2030, 20:00"), "{when}");
        assert_eq!(b.find(By::Id("event-status")).await?.text().await?, "draft");
        let event_id = b
            .current_url()
            .await?
            .path()
            .split('/')
            .nth(3)
            .unwrap()
            .to_string();
        let e: serde_json::Value = t
            .get(
                &format!("/api/v1/orgs/{slug}/events/{event_id}"),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(e["starts_at"], "2030-12-31T18:00:00Z");

        for (n, price, cap) in [("Early bird", "150", "80"), ("Regular", "220.50", "80")] {
            let form = soon(&b, By::Id("add-ticket-type")).await?;
            form.find(By::Css("input[name=name]"))
                .await?
                .send_keys(n)
                .await?;
            form.find(By::Css("input[name=price]"))
                .await?
                .send_keys(price)
                .await?;
            form.find(By::Css("input[name=capacity]"))
                .await?
                .send_keys(cap)
                .await?;
            form.find(By::Css("button")).await?.click().await?;
            b.query(By::XPath(format!(
                "//table[@id='ticket-types']//td[text()='{n}']"
            )))
            .wait(Duration::from_secs(15), Duration::from_millis(100))
            .first()
            .await?;
        }
        let prices: Vec<String> = {
            let mut v = Vec::new();
            for row in b.find_all(By::Css("#ticket-types tbody tr")).await? {
                v.push(row.find(By::Css("td:nth-child(2)")).await?.text().await?);
            }
            v
        };
        assert_eq!(prices, ["ZAR 150.00", "ZAR 220.50"]);

        // A quota with no type ticked is refused on the page.
        let form = b.find(By::Id("add-quota")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Floor")
            .await?;
        form.find(By::Css("input[name=capacity]"))
            .await?
            .send_keys("100")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("ticket_type_ids"), "{err}");
        let form = b.find(By::Id("add-quota")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Floor")
            .await?;
        form.find(By::Css("input[name=capacity]"))
            .await?
            .send_keys("100")
            .await?;
        for cb in form
            .find_all(By::Css("input[name=ticket_type_ids]"))
            .await?
        {
            cb.click().await?;
        }
        form.find(By::Css("button")).await?.click().await?;
        let left = soon_text(&b, By::Css("#quotas td.left")).await?;
        assert_eq!(left, "100");
        b.find(By::Css("#publish button")).await?.click().await?;
        // (The old page says "draft" until the new one is there.)
        soon_text_is(&b, By::Id("event-status"), "published").await?;

        // Buyers: each type alone could sell 80; the floor holds 100.
        let s: serde_json::Value = t
            .get(&format!("/api/v1/store/{slug}/events/{event_id}"), None)
            .await
            .json()
            .await
            .unwrap();
        let types: Vec<String> = s["ticket_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        let hold = |tt: String, q: i64| {
            let t = &t;
            let path = format!("/api/v1/store/{slug}/events/{event_id}/holds");
            async move {
                t.post(
                    &path,
                    None,
                    serde_json::json!({"items": [{"ticket_type_id": tt, "quantity": q}]}),
                )
                .await
                .status()
                .as_u16()
            }
        };
        assert_eq!(hold(types[0].clone(), 50).await, 201);
        assert_eq!(hold(types[1].clone(), 50).await, 201);
        assert_eq!(hold(types[1].clone(), 1).await, 409);
        b.refresh().await?;
        // (Until the reloaded page is there, the old one says 100.)
        soon_text_is(&b, By::Css("#quotas td.left"), "0").await?;
        let avail: Vec<String> = {
            let mut v = Vec::new();
            for c in b.find_all(By::Css("#ticket-types td.available")).await? {
                v.push(c.text().await?);
            }
            v
        };
        assert_eq!(avail, ["0", "0"]);
        // Removing the quota gives each type its own capacity back.
        b.find(By::Css("#quotas button")).await?.click().await?;
        soon(&b, By::Id("no-quotas")).await?;
        let avail: Vec<String> = {
            let mut v = Vec::new();
            for c in b.find_all(By::Css("#ticket-types td.available")).await? {
                v.push(c.text().await?);
            }
            v
        };
        assert_eq!(avail, ["30", "30"]);

        // A voucher for the early birds, made on the page...
        let form = b.find(By::Id("add-vouchers")).await?;
        form.find(By::Css("input[name=code]"))
            .await?
            .send_keys("friend")
            .await?;
        form.find(By::Css("input[name=amount]"))
            .await?
            .send_keys("50")
            .await?;
        let uses = form.find(By::Css("input[name=max_uses]")).await?;
        uses.clear().await?;
        uses.send_keys("2").await?;
        form.find(By::Css("input[name=ticket_type_ids]"))
            .await?
            .click()
            .await?;
        // ...reserving its two tickets: they leave the type's sale at once.
        form.find(By::Id("voucher-reserve")).await?.click().await?;
        form.find(By::Css("button")).await?.click().await?;
        assert_eq!(
            soon_text(&b, By::Css("#vouchers .voucher-code")).await?,
            "FRIEND"
        );
        let mut avail: Vec<String> = Vec::new();
        for c in b.find_all(By::Css("#ticket-types td.available")).await? {
            avail.push(c.text().await?);
        }
        avail.sort();
        assert_eq!(avail, ["28", "30"]);
        // ...taken on the storefront: half off, shown on the order.
        b.goto(&t.url(&format!("/s/{slug}/events/{event_id}")))
            .await?;
        let when = soon_text(&b, By::Id("event-when")).await?;
        assert!(when.starts_with("Tue 31 Dec 2030, 20:00"), "{when}");
        // One cart for both types: one early bird.
        let form = b.find(By::Id("cart")).await?;
        let qty = form.find(By::Css("input[type=number]")).await?;
        qty.clear().await?;
        qty.send_keys("1").await?;
        form.find(By::Css("input[name=voucher]"))
            .await?
            .send_keys("friend")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        check_out_on_page(&b, "vi@example.com", "Vi Friend", None).await?;
        let total = soon_text(&b, By::Id("order-total")).await?;
        assert_eq!(total, "ZAR 75.00");
        let discount = b.find(By::Css("#lines .discount")).await?.text().await?;
        assert!(discount.contains("75.00"), "{discount}");
        // A code that is no voucher is told on the page.
        b.goto(&t.url(&format!("/s/{slug}/events/{event_id}")))
            .await?;
        let form = soon(&b, By::Id("cart")).await?;
        let qty = form.find(By::Css("input[type=number]")).await?;
        qty.clear().await?;
        qty.send_keys("1").await?;
        form.find(By::Css("input[name=voucher]"))
            .await?
            .send_keys("NOSUCH")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        let err = soon_text(&b, By::Css("p.error")).await?;
        assert!(err.contains("voucher"), "{err}");
        b.goto(&t.url(&format!("/dashboard/events/{event_id}/catalog")))
            .await?;
        assert_eq!(
            soon_text(&b, By::Css("#vouchers .uses-left")).await?,
            "1 of 2 reserved"
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// A buyer picks seats on the storefront's map by pointer and keyboard and
/// buys them; another buyer's hold appears on the open map without a
/// reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_picks_seats_on_the_map_and_sees_others_take_theirs_live() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "seats").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 30).await;
    let rows: Vec<serde_json::Value> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(r, label)| {
            let seats: Vec<serde_json::Value> = (0..8)
                .map(|s| {
                    serde_json::json!({"label": format!("{}", s + 1), "x": s, "y": r,
                    "ticket_type_id": event.ticket_type})
                })
                .collect();
            serde_json::json!({"label": label, "seats": seats})
        })
        .collect();
    let map: serde_json::Value = t
        .api
        .client
        .put(t.url(&format!("/api/v1/orgs/{slug}/events/{}/seating", event.id)))
        .bearer_auth(&org.key)
        .json(&serde_json::json!({"sections": [{"name": "Stalls", "rows": rows}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seat = |row: usize, n: usize| {
        map["sections"][0]["rows"][row]["seats"][n]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        let circle = |id: String| By::Css(format!("#seat-map circle[data-id='{id}']"));
        // No general-admission form for a seated type.
        assert!(b.find_all(By::Id("cart")).await?.is_empty());
        // Pointer: A1. Keyboard: A2 (focus A1, arrow right, space).
        b.find(circle(seat(0, 0))).await?.click().await?;
        let a1 = b.find(circle(seat(0, 0))).await?;
        a1.focus().await?;
        a1.send_keys(Key::Right).await?;
        let active = b.active_element().await?;
        assert_eq!(active.attr("data-id").await?.unwrap(), seat(0, 1));
        active.send_keys(" ").await?;
        assert_eq!(
            b.find_all(By::Css("#picked-inputs input[name=seat]"))
                .await?
                .len(),
            2
        );
        let chosen = b.find(By::Id("picked")).await?.text().await?;
        assert!(
            chosen.contains("row A, seat 1") && chosen.contains("row A, seat 2"),
            "{chosen}"
        );

        // Someone else holds C5 through the API: the open map shows it.
        let r = t
            .post(
                &format!("/api/v1/store/{slug}/events/{}/holds", event.id),
                None,
                serde_json::json!({"seats": [seat(2, 4)]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        b.query(By::Css(format!(
            "#seat-map circle.held[data-id='{}']",
            seat(2, 4)
        )))
        .wait(Duration::from_secs(10), Duration::from_millis(100))
        .first()
        .await?;

        let form = b.find(By::Id("seat-form")).await?;
        form.find(By::Css("button")).await?.click().await?;
        check_out_on_page(&b, "sit@example.com", "Sam Sitter", None).await?;
        assert_eq!(soon_text(&b, By::Id("order-status")).await?, "paid");
        let seats_shown = b.find(By::Id("tickets")).await?.text().await?;
        assert!(seats_shown.contains("Row A, seat 1"), "{seats_shown}");

        // Back on the map: the bought seats are sold.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        soon(
            &b,
            By::Css(format!("#seat-map circle.sold[data-id='{}']", seat(0, 0))),
        )
        .await?;
        // The best available three: taken in one row, side by side.
        let form = b.find(By::Id("seat-form")).await?;
        let q = form.find(By::Css("input[name=best_quantity]")).await?;
        q.clear().await?;
        q.send_keys("3").await?;
        form.find(By::Css("button")).await?.click().await?;
        check_out_on_page(&b, "best@example.com", "Bea Best", None).await?;
        assert_eq!(soon_text(&b, By::Id("order-status")).await?, "paid");
        let shown = b.find(By::Id("tickets")).await?.text().await?;
        assert_eq!(shown.matches("Row A").count(), 3, "{shown}");
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// The organizer draws a seat map in the console: a section on a grid,
/// two seats blocked by clicking them, a bad import told by seat; the
/// storefront shows the blocked seats as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_draws_a_seat_map_and_blocks_seats_in_the_browser() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "editor").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 30).await;
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::LinkText("Test Night")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/catalog", event.id)))
            .await?;
        soon(&b, By::Id("seating-link")).await?.click().await?;
        soon(&b, By::Id("no-map")).await?;
        let form = b.find(By::Id("add-section")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Stalls")
            .await?;
        form.find(By::Css("input[name=rows]"))
            .await?
            .send_keys("3")
            .await?;
        form.find(By::Css("input[name=seats_per_row]"))
            .await?
            .send_keys("6")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        soon(&b, By::Id("editor-map")).await?;
        let seats = b.find_all(By::Css("#editor-map circle.seat")).await?;
        assert_eq!(seats.len(), 18);
        // Block A1 and A2: click them, choose the flag, send.
        seats[0].click().await?;
        seats[1].click().await?;
        let chosen = b.find(By::Id("chosen")).await?.text().await?;
        assert!(
            chosen.contains("row A, seat 1") && chosen.contains("row A, seat 2"),
            "{chosen}"
        );
        b.find(By::Css("#flag-form button")).await?.click().await?;
        b.query(By::Css("#editor-map circle.seat.blocked"))
            .wait(Duration::from_secs(15), Duration::from_millis(100))
            .first()
            .await?;
        assert_eq!(
            b.find_all(By::Css("#editor-map circle.seat.blocked"))
                .await?
                .len(),
            2
        );
        // A bad import names the seat and changes nothing.
        let bad = serde_json::json!({"sections": [{"name": "S", "rows": [{"label": "A", "seats": [
            {"label": "1", "x": 0, "y": 0, "ticket_type_id": event.ticket_type},
            {"label": "1", "x": 1, "y": 0, "ticket_type_id": event.ticket_type}]}]}]});
        let area = b.find(By::Css("#import textarea")).await?;
        b.execute(
            "arguments[0].value = arguments[1];",
            vec![area.to_json()?, serde_json::json!(bad.to_string())],
        )
        .await?;
        b.find(By::Css("#import button")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("sections[0].rows[0].seats[1].label"), "{err}");
        assert_eq!(
            b.find_all(By::Css("#editor-map circle.seat")).await?.len(),
            18,
            "unchanged"
        );
        // The buyer's map shows them blocked.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        soon(&b, By::Id("seat-map")).await?;
        assert_eq!(
            b.find_all(By::Css("#seat-map circle.seat.blocked"))
                .await?
                .len(),
            2
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    // Exported, the map is what PUT takes, flags and all.
    let exported: serde_json::Value = t
        .get(
            &format!("/api/v1/orgs/{slug}/events/{}/seating", event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let flags = exported["sections"][0]["rows"][0]["seats"][0]["flags"].clone();
    assert_eq!(flags, serde_json::json!(["blocked"]));
    t.stop().await;
}

/// The organizer edits a ticket type on its page (capacity, a question
/// each attendee must answer, a hidden crew type) and a buyer takes two
/// tickets in one cart, answers for each attendee on the hold's page, and
/// sees the answers on the order. A crew ticket shows only with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_edits_a_ticket_type_and_buyers_answer_its_questions() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "edit").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 10).await;
    let crew = t
        .post(
            &format!("/api/v1/orgs/{slug}/events/{}/ticket-types", event.id),
            Some(&org.key),
            serde_json::json!({"name": "Crew", "price_cents": 0, "currency": "ZAR",
                               "capacity": 3, "hidden": true}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .post(
            &format!("/api/v1/orgs/{slug}/events/{}/vouchers", event.id),
            Some(&org.key),
            serde_json::json!({"code": "BACKSTAGE", "percent_off": 0, "max_uses": 3,
                               "ticket_type_ids": [crew]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::Id("new-event-link")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/catalog", event.id)))
            .await?;
        soon(
            &b,
            By::Css(format!(
                "#ticket-types tr[data-id='{}'] a.edit",
                event.ticket_type
            )),
        )
        .await?
        .click()
        .await?;
        // Below nothing taken is fine; a choice without choices is told.
        let form = soon(&b, By::Id("edit-ticket-type")).await?;
        let cap = form.find(By::Css("input[name=capacity]")).await?;
        cap.clear().await?;
        cap.send_keys("12").await?;
        form.find(By::Css("input[name=q1_label]"))
            .await?
            .send_keys("Diet")
            .await?;
        form.find(By::Css("select[name=q1_kind] option[value=choice]"))
            .await?
            .click()
            .await?;
        form.find(By::Css("input[name=q1_required]"))
            .await?
            .click()
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("options"), "{err}");
        let form = b.find(By::Id("edit-ticket-type")).await?;
        form.find(By::Css("input[name=q1_options]"))
            .await?
            .send_keys("Vegan, Anything")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        let capacity = soon(
            &b,
            By::Css(format!(
                "#ticket-types tr[data-id='{}'] td.capacity",
                event.ticket_type
            )),
        )
        .await?
        .text()
        .await?;
        assert_eq!(capacity, "12");

        // The buyer: two tickets in the cart; the crew type is not listed.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        assert_eq!(b.find_all(By::Css("#cart tr.ticket-type")).await?.len(), 1);
        let qty = soon(&b, By::Css("#cart input[type=number]")).await?;
        qty.clear().await?;
        qty.send_keys("2").await?;
        b.find(By::Css("#cart button")).await?.click().await?;
        soon(&b, By::Css("#checkout fieldset.attendee")).await?;
        let blocks = b.find_all(By::Css("#checkout fieldset.attendee")).await?;
        assert_eq!(blocks.len(), 2);
        for (i, (name, diet)) in [("Ann Smith", "Vegan"), ("Ben Jones", "Anything")]
            .into_iter()
            .enumerate()
        {
            b.find(By::Css(format!("input[name=a{i}_name]")))
                .await?
                .send_keys(name)
                .await?;
            b.find(By::Css(format!(
                "select[name=a{i}_diet] option[value={diet}]"
            )))
            .await?
            .click()
            .await?;
        }
        check_out_on_page(&b, "host@example.com", "Hannah Host", None).await?;
        assert_eq!(soon_text(&b, By::Id("order-status")).await?, "paid");
        let answers = b.find(By::Id("tickets")).await?.text().await?;
        for want in ["Ann Smith", "Vegan", "Ben Jones", "Anything"] {
            assert!(answers.contains(want), "{want} not in {answers}");
        }

        // With the crew code the hidden type is there.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        soon(&b, By::Css("#unlock input[name=voucher]"))
            .await?
            .send_keys("backstage")
            .await?;
        b.find(By::Css("#unlock button")).await?.click().await?;
        soon(
            &b,
            By::Css(format!("#cart tr.ticket-type[data-id='{crew}']")),
        )
        .await?;
        assert_eq!(
            b.find(By::Css("#cart input[name=voucher]"))
                .await?
                .prop("value")
                .await?
                .as_deref(),
            Some("backstage")
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// A buyer hands a ticket on from the order page; the new holder opens the
/// link in their mail and sees the new ticket; the old code no longer
/// admits. Once the organizer forbids transfers, the order page offers
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_hands_a_ticket_on_and_the_new_holder_opens_it() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "handon").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 10).await;
    let device = t.device(&org, &[&event.id]).await;
    let order = t.buy(&org, &event, 2).await;
    let token = order["access_token"].as_str().unwrap().to_string();
    let order_url = t.url(&format!(
        "/s/{slug}/orders/{}?access_token={token}",
        order["id"].as_str().unwrap()
    ));
    let first = order["tickets"][0].clone();
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&order_url).await?;
        let fig = soon(
            &b,
            By::Css(format!(
                "figure.ticket[data-id='{}']",
                first["id"].as_str().unwrap()
            )),
        )
        .await?;
        fig.find(By::Css("details.transfer summary"))
            .await?
            .click()
            .await?;
        fig.find(By::Css("input[name=email]"))
            .await?
            .send_keys("fred@example.com")
            .await?;
        fig.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Fred Friend")
            .await?;
        fig.find(By::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        let said = soon_text(&b, By::Css("p.handed-on")).await?;
        assert!(said.contains("Fred Friend"), "{said}");
        assert_eq!(
            t.scan(&device, first["code"].as_str().unwrap(), &event.id)
                .await["result"],
            "revoked"
        );

        // The new holder's mail links to their ticket's page.
        let dir = t.config().data_dir.join("mail");
        let link = || {
            crate::mail::read_messages(&dir).into_iter().find_map(|m| {
                let at = m.body.find("/s/")?;
                let rest = &m.body[at..];
                rest.contains("/tickets/")
                    .then(|| rest.split_whitespace().next().unwrap().to_string())
            })
        };
        t.eventually("the transfer mail", || async { link().is_some() })
            .await;
        b.goto(&t.url(&link().unwrap())).await?;
        assert_eq!(soon_text(&b, By::Id("ticket-status")).await?, "valid");
        let code = b.find(By::Css("#ticket code.code")).await?.text().await?;
        assert_ne!(code, first["code"].as_str().unwrap());
        assert!(b.find(By::Css("#ticket svg")).await.is_ok(), "its QR code");
        assert_eq!(
            t.scan(&device, &code, &event.id).await["result"],
            "admitted"
        );

        // Forbidden by the organizer: no transfer offered on the order page.
        let r = t
            .api
            .client
            .put(t.url(&format!(
                "/api/v1/orgs/{slug}/events/{}/transfer-policy",
                event.id
            )))
            .bearer_auth(&org.key)
            .json(&serde_json::json!({"allowed": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        b.goto(&order_url).await?;
        soon(&b, By::Id("order-status")).await?;
        assert!(b.find_all(By::Css("details.transfer")).await?.is_empty());
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// A sold-out event offers its waiting list on the storefront; a buyer
/// joins and is told their place; the organizer sees them in line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_joins_the_waiting_list_of_a_sold_out_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "waitlist").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 1).await;
    assert_eq!(t.hold(&org, &event, 1).await.status(), 201);
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        let form = soon(&b, By::Id("waitlist")).await?;
        form.find(By::Css("input[name=email]"))
            .await?
            .send_keys("wendy@example.com")
            .await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Wendy Waiter")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        assert_eq!(soon_text(&b, By::Id("position")).await?, "1");
        // The place's own page (the link to keep) says the same.
        let place = b
            .find(By::Id("place-link"))
            .await?
            .attr("href")
            .await?
            .unwrap();
        b.goto(&t.url(&place)).await?;
        assert_eq!(soon_text(&b, By::Id("position")).await?, "1");
        // The same address again: told, not lined up twice.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        let form = soon(&b, By::Id("waitlist")).await?;
        form.find(By::Css("input[name=email]"))
            .await?
            .send_keys("wendy@example.com")
            .await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Wendy Waiter")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        let err = soon_text(&b, By::Css("p.error")).await?;
        assert!(err.contains("already"), "{err}");

        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::Id("new-event-link")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/waiting-list", event.id)))
            .await?;
        let row = soon_text(&b, By::Css("#waiting-list tbody tr")).await?;
        assert!(
            row.contains("wendy@example.com") && row.contains("waiting"),
            "{row}"
        );
        // The on-sale page sets how long offers are held; the list says it.
        b.goto(&t.url(&format!("/dashboard/events/{}/limits", event.id)))
            .await?;
        let form = soon(&b, By::Id("sales-limits")).await?;
        form.find(By::Css("input[name=waitlist_offer_hours]"))
            .await?
            .send_keys("6")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        soon(&b, By::Id("saved")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/waiting-list", event.id)))
            .await?;
        let said = soon_text(&b, By::Css("p.muted")).await?;
        assert!(said.contains("held for 6 hours"), "{said}");
        // Wendy changes her mind: she leaves from her place's page.
        b.goto(&t.url(&place)).await?;
        soon(&b, By::Css("#leave button")).await?.click().await?;
        let left = soon_text(&b, By::Id("waitlist-left")).await?;
        assert!(left.contains("left the waiting list"), "{left}");
        b.goto(&t.url(&format!("/dashboard/events/{}/waiting-list", event.id)))
            .await?;
        soon_text_is(&b, By::Css("#waiting-list tbody tr .status"), "left").await?;
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// The organizer makes a series from the console (a ticket type, two dates
/// typed in the venue's zone, publish); the buyer picks a date on the
/// series' page and takes a ticket for it; the other date is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_runs_a_series_and_a_buyer_picks_a_date() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "series").await;
    let slug = org.slug.clone();
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        new_event(
            &b,
            "Hamlet",
            "Africa/Johannesburg",
            ("2030-06-01T19:00", "2030-06-30T22:00"),
            true,
        )
        .await?;
        soon(&b, By::Id("series-dates")).await?;
        let series_id = b
            .current_url()
            .await?
            .path()
            .split('/')
            .nth(3)
            .unwrap()
            .to_string();
        let form = soon(&b, By::Id("add-ticket-type")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Stalls")
            .await?;
        form.find(By::Css("input[name=capacity]"))
            .await?
            .send_keys("5")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        soon(&b, By::Css("#ticket-types tbody tr")).await?;
        for day in ["05", "06"] {
            soon(&b, By::Id("add-date")).await?;
            set_value(
                &b,
                "#add-date input[name=starts_at]",
                &format!("2030-06-{day}T19:30"),
            )
            .await?;
            set_value(
                &b,
                "#add-date input[name=ends_at]",
                &format!("2030-06-{day}T22:00"),
            )
            .await?;
            b.find(By::Css("#add-date button")).await?.click().await?;
            b.query(By::XPath(format!(
                "//table[@id='dates']//a[contains(text(), '{} Jun 2030, 19:30')]",
                day.trim_start_matches('0')
            )))
            .wait(Duration::from_secs(15), Duration::from_millis(100))
            .first()
            .await?;
        }
        // Ends before it starts: told on the page, nothing added.
        set_value(&b, "#add-date input[name=starts_at]", "2030-06-07T19:30").await?;
        set_value(&b, "#add-date input[name=ends_at]", "2030-06-07T18:00").await?;
        b.find(By::Css("#add-date button")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("after"), "{err}");
        assert_eq!(b.find_all(By::Css("#dates tbody tr")).await?.len(), 2);
        soon(&b, By::Css("#publish button")).await?.click().await?;
        assert_eq!(soon_text(&b, By::Id("event-status")).await?, "published");
        // A date's own page says whose date it is.
        soon(&b, By::Css("#dates tbody tr a"))
            .await?
            .click()
            .await?;
        soon(&b, By::Id("date-of-series")).await?;
        assert_eq!(soon_text(&b, By::Id("event-status")).await?, "published");

        // The buyer: the series' page lists its dates in the venue's time.
        b.goto(&t.url(&format!("/s/{slug}/events/{series_id}")))
            .await?;
        let first = soon_text(&b, By::Css("#date-list tr.date th")).await?;
        assert!(first.starts_with("Wed 5 Jun 2030, 19:30"), "{first}");
        assert!(
            b.find_all(By::Id("cart")).await?.is_empty(),
            "no cart on a series"
        );
        soon(&b, By::Css("#date-list tr.date th a"))
            .await?
            .click()
            .await?;
        soon(&b, By::Id("series-link")).await?;
        let qty = soon(&b, By::Css("#cart input[type=number]")).await?;
        qty.clear().await?;
        qty.send_keys("2").await?;
        b.find(By::Css("#cart button")).await?.click().await?;
        check_out_on_page(&b, "hana@example.com", "Hana Buyer", None).await?;
        soon(&b, By::Css(".ticket")).await?;

        let shown: serde_json::Value = t
            .get(&format!("/api/v1/store/{slug}/events/{series_id}"), None)
            .await
            .json()
            .await
            .unwrap();
        let left: Vec<i64> = shown["dates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["available"].as_i64().unwrap())
            .collect();
        assert_eq!(left, [3, 5]);
        // The series' catalog counts what is left on its dates together.
        b.goto(&t.url(&format!("/dashboard/events/{series_id}/catalog")))
            .await?;
        assert_eq!(
            soon_text(&b, By::Css("#ticket-types td.available")).await?,
            "8"
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// The organizer keeps one event's seat map as a venue layout and copies
/// it into another event from the editor, a ticket type per category (the
/// same-named type chosen for them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_reuses_a_venue_layout_in_the_browser() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "layouts").await;
    let first = t.event(&org, 10).await;
    let second = t.event(&org, 10).await;
    let r = t
        .api
        .client
        .put(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/seating",
            org.slug, first.id
        )))
        .bearer_auth(&org.key)
        .json(
            &serde_json::json!({"sections": [{"name": "Floor", "rows": [{"label": "A", "seats": [
            {"label": "1", "x": 0.0, "y": 0.0, "ticket_type_id": first.ticket_type},
            {"label": "2", "x": 30.0, "y": 0.0, "ticket_type_id": first.ticket_type},
            {"label": "3", "x": 60.0, "y": 0.0, "ticket_type_id": first.ticket_type}]}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::Id("new-event-link")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/seating", first.id)))
            .await?;
        let form = soon(&b, By::Id("save-layout")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Club floor")
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        let row = soon_text(&b, By::Css("#layouts tbody tr")).await?;
        assert!(
            row.contains("Club floor") && row.contains("General"),
            "{row}"
        );
        assert_eq!(soon_text(&b, By::Css("#layouts td.seats")).await?, "3");

        b.goto(&t.url(&format!("/dashboard/events/{}/seating", second.id)))
            .await?;
        soon(&b, By::Id("no-map")).await?;
        soon(&b, By::Css("#choose-layout button"))
            .await?
            .click()
            .await?;
        let chosen = soon(
            &b,
            By::Css("#use-layout select[name=cat_type_0] option:checked"),
        )
        .await?;
        assert_eq!(chosen.text().await?, "General", "the same-named type");
        b.find(By::Css("#use-layout button")).await?.click().await?;
        b.query(By::Css("#editor-map circle.seat"))
            .wait(Duration::from_secs(15), Duration::from_millis(100))
            .first()
            .await?;
        assert_eq!(
            b.find_all(By::Css("#editor-map circle.seat")).await?.len(),
            3
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    let map: serde_json::Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/seating", org.slug, second.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        map["sections"][0]["rows"][0]["seats"][0]["ticket_type_id"],
        second.ticket_type.as_str()
    );
    t.stop().await;
}

/// The organizer adds a standing area to a seat map in the editor (its
/// places, the ticket type sold into it); a buyer on the storefront sees
/// another buyer's places taken from it live, chooses it on the map, takes
/// places on the floor and a seat in one cart, and checks out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_adds_a_standing_area_and_a_buyer_takes_places_on_it() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "floor").await;
    let slug = org.slug.clone();
    let event = t.event(&org, 30).await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{slug}/events/{}/ticket-types", event.id),
            Some(&org.key),
            serde_json::json!({"name": "Stalls", "price_cents": 0, "currency": "ZAR", "capacity": 20}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let stalls = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::LinkText("Test Night")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/seating", event.id)))
            .await?;
        let form = soon(&b, By::Id("add-section")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Stalls")
            .await?;
        form.find(By::Css("input[name=rows]"))
            .await?
            .send_keys("2")
            .await?;
        form.find(By::Css("input[name=seats_per_row]"))
            .await?
            .send_keys("4")
            .await?;
        form.find(By::Css(format!("option[value='{stalls}']")))
            .await?
            .click()
            .await?;
        form.find(By::Css("button")).await?.click().await?;
        soon(&b, By::Id("editor-map")).await?;
        // The area: five places, sold as the event's general ticket.
        let form = b.find(By::Id("add-area")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Floor")
            .await?;
        form.find(By::Css("input[name=capacity]"))
            .await?
            .send_keys("5")
            .await?;
        form.find(By::Css(format!(
            "input[name=ticket_type_id][value='{}']",
            event.ticket_type
        )))
        .await?
        .click()
        .await?;
        form.find(By::Css("button")).await?.click().await?;
        soon(&b, By::Css("#editor-map g.area")).await?;
        let row = soon_text(&b, By::Css("#areas tr.area-row")).await?;
        assert!(row.contains("Floor") && row.contains('5'), "{row}");

        // The buyer's map: the area with its five places.
        b.goto(&t.url(&format!("/s/{slug}/events/{}", event.id)))
            .await?;
        soon(&b, By::Css("#seat-map g.area")).await?;
        soon_text_is(&b, By::Css("#seat-map g.area .available"), "5").await?;
        // The general ticket is sold on the map, not in a separate cart.
        assert!(b.find_all(By::Id("cart")).await?.is_empty());
        // Someone else takes two places: the open map follows.
        let r = t
            .post(
                &format!("/api/v1/store/{slug}/events/{}/holds", event.id),
                None,
                serde_json::json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 2}]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        soon_text_is(&b, By::Css("#seat-map g.area .available"), "3").await?;
        soon_text_is(&b, By::Css("fieldset.area-choice legend .available"), "3").await?;
        // Choosing the area on the map goes to its quantity.
        b.find(By::Css("#seat-map g.area")).await?.click().await?;
        let active = b.active_element().await?;
        assert_eq!(
            active.attr("name").await?.unwrap(),
            format!("qty_{}", event.ticket_type)
        );
        active.send_keys(Key::Backspace).await?;
        active.send_keys("2").await?;
        // And a seat, in the same cart.
        b.find(By::Css("#seat-map circle.seat")).await?.click().await?;
        b.find(By::Css("#seat-form button[type=submit]"))
            .await?
            .click()
            .await?;
        check_out_on_page(&b, "floor@example.com", "Flo Floor", None).await?;
        assert_eq!(soon_text(&b, By::Id("order-status")).await?, "paid");
        let shown = b.find(By::Id("tickets")).await?.text().await?;
        assert!(shown.contains("Row A, seat 1"), "{shown}");
        assert_eq!(
            b.find_all(By::Css("#tickets figure.ticket")).await?.len(),
            3
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    // Three tickets: two places on the floor, one seat.
    assert_eq!(taken(&t, &[&event.ticket_type]).await, 4);
    assert_eq!(taken(&t, &[&stalls]).await, 1);
    t.stop().await;
}

/// The gate page: a gate with a rule shown in words while typed and after,
/// a device with its pairing code as a QR code (which pairs), revoking it,
/// and the scan log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_sets_up_gates_and_devices_and_reads_the_scan_log() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "gates").await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 1).await;
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::Id("new-event-link")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}", event.id))).await?;
        soon(&b, By::Id("gates-link")).await?.click().await?;
        soon(&b, By::Id("no-gates")).await?;
        let form = soon(&b, By::Id("new-gate")).await?;
        form.find(By::Css("input[name=name]")).await?.send_keys("Early door").await?;
        form.find(By::Id("gate-rules"))
            .await?
            .send_keys(r#"{"<": [{"var": "minutes_of_day"}, 0]}"#)
            .await?;
        // In words as it is typed (the app's own evaluator, rules.js).
        soon_text_is(&b, By::Id("rule-words"), "In words: only before 00:00").await?;
        form.find(By::Id("add-gate")).await?.click().await?;
        assert_eq!(soon_text(&b, By::Css("#gates td.rule")).await?, "only before 00:00");
        // A bad rule is refused, naming it.
        let form = soon(&b, By::Id("new-gate")).await?;
        form.find(By::Css("input[name=name]")).await?.send_keys("Bad").await?;
        form.find(By::Id("gate-rules")).await?.send_keys(r#"{"var": "seat"}"#).await?;
        form.find(By::Id("add-gate")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("rules"), "{err}");

        // A device: its pairing code, also as a QR code.
        let form = soon(&b, By::Id("new-device")).await?;
        form.find(By::Css("input[name=name]")).await?.send_keys("North door").await?;
        form.find(By::Css("button")).await?.click().await?;
        let code = soon_text(&b, By::Id("pairing-code")).await?;
        soon(&b, By::Css("#pairing-qr svg")).await?;
        assert_eq!(soon_text(&b, By::Css("#devices td.status")).await?, "waiting to pair");
        let paired = t
            .post("/api/v1/devices/pair", None, serde_json::json!({"pairing_code": code}))
            .await;
        assert_eq!(paired.status(), 201);
        let token = paired.json::<serde_json::Value>().await.unwrap()["device_token"]
            .as_str()
            .unwrap()
            .to_string();
        let gate = t
            .get(&format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id), Some(&org.key))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["data"][0]["id"]
            .clone();
        // No ticket is ever early enough: the rule refuses, the log says why.
        let s = t
            .post(
                "/api/v1/scan",
                Some(&token),
                serde_json::json!({"code": order["tickets"][0]["code"], "event_id": event.id, "gate": gate}),
            )
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(s["result"], "rule");
        let mut logged = String::new();
        for _ in 0..50 {
            b.refresh().await?;
            if let Ok(row) = b.find(By::Css("#scan-log tbody tr")).await {
                logged = row.text().await?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(logged.contains("rule") && logged.contains("only before 00:00") && logged.contains("Early door") && logged.contains("North door"), "{logged}");
        assert_eq!(soon_text(&b, By::Css("#devices td.status")).await?, "paired");
        // Revoked from the page: the token is refused.
        soon(&b, By::Css("#devices form.revoke button")).await?.click().await?;
        soon_text_is(&b, By::Css("#devices td.status"), "revoked").await?;
        assert_eq!(t.get("/api/v1/devices/me", Some(&token)).await.status(), 401);
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// A new device's pairing code (what the organizer's page shows as a QR code).
async fn pairing_code(t: &TestApp, org: &Org, event: &Event, role: &str, name: &str) -> String {
    let d = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            serde_json::json!({"name": name, "event_ids": [event.id], "role": role}),
        )
        .await;
    assert_eq!(d.status(), 201);
    d.json::<serde_json::Value>().await.unwrap()["pairing_code"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Gate staff on a phone: the scanner app pairs by its link, the steward
/// picks the gate and types a code: admitted (green), typed again: already
/// in (amber), and the gate counts one inside. A supervisor's phone admits a
/// ticket the gate's rule refuses, for a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gate_staff_pair_the_scanner_app_and_admit_tickets() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "scanapp").await;
    let event = t.event(&org, 10).await;
    let first = t.buy(&org, &event, 1).await;
    let first = first["tickets"][0]["code"].as_str().unwrap().to_string();
    let second = t.buy(&org, &event, 1).await;
    let second = second["tickets"][0]["code"].as_str().unwrap().to_string();
    let gates = format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id);
    let north = t
        .post(&gates, Some(&org.key), serde_json::json!({"name": "North"}))
        .await;
    assert_eq!(north.status(), 201);
    let north = north.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A rule no ticket passes: only a supervisor's override gets one in.
    let early = t
        .post(
            &gates,
            Some(&org.key),
            serde_json::json!({"name": "Early door", "rules": {"<": [{"var": "minutes_of_day"}, 0]}}),
        )
        .await;
    assert_eq!(early.status(), 201);
    let early = early.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let steward = pairing_code(&t, &org, &event, "steward", "Phone 1").await;
    let supervisor = pairing_code(&t, &org, &event, "supervisor", "Phone 2").await;

    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        // The organizer's QR code is this link: the phone pairs on opening it.
        b.goto(&t.url(&format!("/scan#pair={steward}"))).await?;
        soon(&b, By::Css("body[data-screen=gates]")).await?;
        assert!(
            !b.current_url().await?.as_str().contains("pair="),
            "the pairing code leaves the address bar"
        );
        soon_text_is(&b, By::Id("device-name"), "Phone 1").await?;
        soon(&b, By::Css(format!(".gate-choice[data-gate-id='{north}']")))
            .await?
            .click()
            .await?;
        soon(&b, By::Css("body[data-screen=scan]")).await?;

        // Typed (the headless browser has no camera): admitted, in green.
        b.find(By::Id("manual-code"))
            .await?
            .send_keys(&first)
            .await?;
        b.find(By::Id("manual-submit")).await?.click().await?;
        soon(&b, By::Css("#result.green[data-result=admitted]")).await?;
        assert_eq!(text_of(&b, "result-word").await?, "ADMITTED");
        soon_text_is(&b, By::Id("count-inside"), "1").await?;
        // Green goes by itself; the same code typed again is sent again.
        soon_hidden(&b, "result").await?;
        b.find(By::Id("manual-code"))
            .await?
            .send_keys(&first)
            .await?;
        b.find(By::Id("manual-submit")).await?.click().await?;
        soon(&b, By::Css("#result.amber[data-result=already_admitted]")).await?;
        assert_eq!(text_of(&b, "result-word").await?, "ALREADY IN");
        assert!(
            text_of(&b, "result-first")
                .await?
                .starts_with("First in at ")
        );
        assert!(
            !b.find(By::Id("override-open"))
                .await?
                .is_displayed()
                .await?,
            "a steward cannot override"
        );
        b.find(By::Id("result-dismiss")).await?.click().await?;
        soon_hidden(&b, "result").await?;

        // Opened again, the phone is still at North, and the gate's own
        // figures (from /devices/me) count the one inside.
        b.refresh().await?;
        soon(&b, By::Css("body[data-screen=scan]")).await?;
        soon_text_is(&b, By::Id("gate-name"), "North").await?;
        soon_text_is(&b, By::Id("count-inside"), "1").await?;
        soon_text_is(&b, By::Id("count-entries"), "1").await?;

        // The supervisor's phone opens its own link in the same browser.
        b.goto(&t.url(&format!("/scan#pair={supervisor}"))).await?;
        soon(&b, By::Css("body[data-screen=gates]")).await?;
        soon_text_is(&b, By::Id("device-role"), "Supervisor").await?;
        soon(&b, By::Css(format!(".gate-choice[data-gate-id='{early}']")))
            .await?
            .click()
            .await?;
        soon(&b, By::Css("body[data-screen=scan]")).await?;
        b.find(By::Id("manual-code"))
            .await?
            .send_keys(&second)
            .await?;
        b.find(By::Id("manual-submit")).await?.click().await?;
        soon(&b, By::Css("#result.red[data-result=rule]")).await?;
        assert_eq!(
            text_of(&b, "result-explanation").await?,
            "only before 00:00"
        );
        soon(&b, By::Id("override-open")).await?.click().await?;
        soon(&b, By::Id("override-reason"))
            .await?
            .send_keys("Stage crew, late shift")
            .await?;
        b.find(By::Id("override-submit")).await?.click().await?;
        soon(&b, By::Css("#result.green[data-result=admitted]")).await?;
        assert_eq!(
            text_of(&b, "result-override-note").await?,
            "Admitted by a supervisor's override"
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// The gate-rule table gives the same answers and words in the browser (the
/// scanner app's rules.js over the vendored json-logic-js) as on the server
/// and in node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rules_table_agrees_in_the_browser() {
    const TABLE: &str = include_str!("../../../platform/src/scanning/rules_table.json");
    // The script of scripts/rules_table.js, run in the page; it loads the two
    // files as the gate page does (same origin, so the CSP allows them).
    const RUN: &str = r#"
const rows = JSON.parse(arguments[0]);
const done = arguments[arguments.length - 1];
function load(src) {
  return new Promise(function (resolve, reject) {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = function () { reject(new Error(src)); };
    document.head.appendChild(s);
  });
}
load("/assets/vendor/logic.js").then(function () { return load("/assets/rules.js"); }).then(function () {
  const rules = window.VoelgoedRules;
  const show = JSON.stringify;
  const bad = [];
  rows.forEach(function (row) {
    const got = rules.evaluate(row.rule, row.facts);
    if (got !== row.result) { bad.push(row.name + ": evaluate " + show(got) + ", want " + show(row.result)); }
    const why = rules.explain(row.rule, row.facts);
    if (why !== row.explanation) { bad.push(row.name + ": explain " + show(why) + ", want " + show(row.explanation)); }
    if (Object.prototype.hasOwnProperty.call(row, "describe")) {
      const words = rules.describe(row.rule);
      if (words !== row.describe) { bad.push(row.name + ": describe " + show(words) + ", want " + show(row.describe)); }
    }
  });
  done({ rows: rows.length, bad: bad });
}, function (e) { done({ rows: 0, bad: ["did not load " + e.message] }); });
"#;
    let t = TestApp::spawn(Backend::Sqlite).await;
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        // Any page of the platform hosts it; the scanner app's is static.
        b.goto(&t.url("/scan")).await?;
        // The table goes as text: JSON.parse keeps it exactly as written.
        let out = b
            .execute_async(RUN, vec![serde_json::Value::String(TABLE.to_string())])
            .await?;
        let out = out.json().clone();
        let rows: Vec<serde_json::Value> = serde_json::from_str(TABLE).expect("the table is JSON");
        assert_eq!(out["rows"], rows.len(), "every row ran: {out}");
        assert_eq!(
            out["bad"],
            serde_json::json!([]),
            "rows that disagree: {out}"
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}

/// Waits until the element `id` is hidden (the scanner's green result goes
/// by itself after a moment).
async fn soon_hidden(b: &WebDriver, id: &str) -> WebDriverResult<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let hidden = b
            .execute(
                "return document.getElementById(arguments[0]).hidden;",
                vec![serde_json::json!(id)],
            )
            .await?;
        if hidden.json() == &serde_json::json!(true) {
            return Ok(());
        }
        assert!(std::time::Instant::now() < deadline, "#{id} is still shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What an element's text is, shown or not (a result that has gone by itself
/// keeps its words).
async fn text_of(b: &WebDriver, id: &str) -> WebDriverResult<String> {
    let ret = b
        .execute(
            "return document.getElementById(arguments[0]).textContent;",
            vec![serde_json::json!(id)],
        )
        .await?;
    Ok(ret.json().as_str().unwrap_or_default().to_string())
}

/// The box office page: a buyer found by e-mail, checked in by hand, the
/// admission undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_box_office_looks_up_a_buyer_checks_them_in_and_undoes_it() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "boxoffice").await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 1).await;
    let ticket = order["tickets"][0]["id"].as_str().unwrap().to_string();
    let gate = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id),
            Some(&org.key),
            serde_json::json!({"name": "Main", "capacity": 50}),
        )
        .await;
    assert_eq!(gate.status(), 201);
    let gate_id = gate.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let driver = chromedriver();
    let b = browser(&driver).await;
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::Id("new-event-link")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}", event.id)))
            .await?;
        // The live view counts the gate's people inside without a reload.
        let gate_row = format!("#gate-figures tr[data-gate='{gate_id}']");
        assert_eq!(
            soon_text(&b, By::Css(format!("{gate_row} .inside"))).await?,
            "0 / 50"
        );
        let other = t.buy(&org, &event, 1).await;
        let r = t
            .post(
                &format!(
                    "/api/v1/orgs/{}/events/{}/tickets/{}/check-in",
                    org.slug,
                    event.id,
                    other["tickets"][0]["id"].as_str().unwrap()
                ),
                Some(&org.key),
                serde_json::json!({"reason": "walk-in", "gate_id": gate_id}),
            )
            .await;
        assert_eq!(r.status(), 200);
        soon_text_is(&b, By::Css(format!("{gate_row} .inside")), "1 / 50").await?;
        soon_text_is(&b, By::Css(format!("{gate_row} .entries")), "1").await?;
        soon(&b, By::Id("box-office-link")).await?.click().await?;
        let lookup = soon(&b, By::Id("lookup")).await?;
        lookup
            .find(By::Css("input[name=q]"))
            .await?
            .send_keys("BUYER@")
            .await?;
        lookup.find(By::Css("button")).await?.click().await?;
        let row = soon(&b, By::Css(format!("#found tr[data-ticket='{ticket}']"))).await?;
        assert_eq!(
            row.find(By::Css(".presence")).await?.text().await?,
            "not yet"
        );
        row.find(By::Css("form.check-in button"))
            .await?
            .click()
            .await?;
        soon_text_is(&b, By::Id("notice"), "Checked in.").await?;
        let presence = soon_text(
            &b,
            By::Css(format!("#found tr[data-ticket='{ticket}'] .presence")),
        )
        .await?;
        assert!(presence.starts_with("inside"), "{presence}");
        let undo = b
            .find(By::Css(format!(
                "#found tr[data-ticket='{ticket}'] form.undo"
            )))
            .await?;
        undo.find(By::Css("input[name=reason]"))
            .await?
            .send_keys("scanned the wrong ticket")
            .await?;
        undo.find(By::Css("button")).await?.click().await?;
        soon_text_is(
            &b,
            By::Id("notice"),
            "Admission undone: the ticket can come in again.",
        )
        .await?;
        assert_eq!(
            soon_text(
                &b,
                By::Css(format!("#found tr[data-ticket='{ticket}'] .presence"))
            )
            .await?,
            "not yet"
        );
        // Too short a lookup says why.
        b.goto(&t.url(&format!("/dashboard/events/{}/box-office?q=x", event.id)))
            .await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("q"), "{err}");
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    // The audit log has both, with their reasons.
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/audit?limit=200", org.slug),
            Some(&org.key),
        )
        .await;
    let log: serde_json::Value = r.json().await.unwrap();
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"ticket.check_in"), "{actions:?}");
    assert!(actions.contains(&"ticket.undo_admission"), "{actions:?}");
    t.stop().await;
}

/// Sets a field as typing would (its `input` and `change` events fire).
async fn type_value(b: &WebDriver, css: &str, value: &str) -> WebDriverResult<()> {
    let el = b.find(By::Css(css)).await?;
    b.execute(
        "arguments[0].value = arguments[1];
         arguments[0].dispatchEvent(new Event('input', {bubbles: true}));
         arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        vec![el.to_json()?, serde_json::json!(value)],
    )
    .await?;
    Ok(())
}

/// The organizer builds a gate's rule from conditions (no JSON typed), sees
/// it in words, edits the gate later (name, a second condition, a closing
/// time in the venue's zone), is told what is wrong with a bad edit, and
/// pages back through a scan log longer than a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_builds_a_rule_edits_a_gate_and_pages_the_scan_log() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = organizer(&t, "gate-edit").await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 1).await;
    let code = order["tickets"][0]["code"].as_str().unwrap().to_string();
    let device = t.device(&org, &[&event.id]).await;
    // 101 scans: the admission and a hundred repeats, a page and one more.
    for _ in 0..101 {
        t.scan(&device, &code, &event.id).await;
    }
    let driver = chromedriver();
    let b = browser(&driver).await;
    let gates_api = format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id);
    let result = async {
        b.goto(&t.url("/login")).await?;
        log_in(&b, &org).await?;
        soon(&b, By::Id("new-event-link")).await?;
        b.goto(&t.url(&format!("/dashboard/events/{}/gates", event.id)))
            .await?;
        soon(&b, By::Css("#new-gate .rule-builder[data-ready='1']")).await?;
        let form = b.find(By::Id("new-gate")).await?;
        form.find(By::Css("input[name=name]"))
            .await?
            .send_keys("Bar")
            .await?;
        type_value(&b, "#new-gate select.rule-kind", "per_day").await?;
        form.find(By::Css("button.rule-add")).await?.click().await?;
        type_value(
            &b,
            "#new-gate .rule-row[data-kind=per_day] input.rule-number",
            "2",
        )
        .await?;
        soon_text_is(
            &b,
            By::Id("rule-words"),
            "In words: at most 2 entries a day",
        )
        .await?;
        form.find(By::Id("add-gate")).await?.click().await?;
        assert_eq!(
            soon_text(&b, By::Css("#gates td.rule")).await?,
            "at most 2 entries a day"
        );
        let listed = t
            .get(&gates_api, Some(&org.key))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(
            listed["data"][0]["rules"],
            serde_json::json!({"<": [{"var": "entries_today"}, 2]})
        );

        // Edit it: the builder reads the rule back as a condition.
        soon(&b, By::Css("#gates a.edit-gate"))
            .await?
            .click()
            .await?;
        soon(&b, By::Css("#edit-gate .rule-row[data-kind=per_day]")).await?;
        let number = b
            .find(By::Css(
                "#edit-gate .rule-row[data-kind=per_day] input.rule-number",
            ))
            .await?
            .prop("value")
            .await?;
        assert_eq!(number.as_deref(), Some("2"));
        let name = b.find(By::Css("#edit-gate input[name=name]")).await?;
        name.clear().await?;
        name.send_keys("Bar upstairs").await?;
        type_value(&b, "#edit-gate select.rule-kind", "before").await?;
        b.find(By::Css("#edit-gate button.rule-add"))
            .await?
            .click()
            .await?;
        type_value(
            &b,
            "#edit-gate .rule-row[data-kind=before] input.rule-time",
            "23:30",
        )
        .await?;
        let words = soon_text(&b, By::Id("edit-rule-words")).await?;
        assert!(
            words.contains("at most 2 entries a day") && words.contains("only before 23:30"),
            "{words}"
        );
        // A bad capacity: refused, saying which field, the form kept.
        type_value(&b, "#edit-gate input[name=capacity]", "many").await?;
        b.find(By::Id("save-gate")).await?.click().await?;
        let err = soon_text(&b, By::Id("form-error")).await?;
        assert!(err.contains("capacity"), "{err}");
        let kept = b
            .find(By::Css("#edit-gate input[name=name]"))
            .await?
            .prop("value")
            .await?;
        assert_eq!(kept.as_deref(), Some("Bar upstairs"));
        soon(&b, By::Css("#edit-gate .rule-row[data-kind=before]")).await?;
        // Put right, with a closing time typed in the venue's zone.
        type_value(&b, "#edit-gate input[name=capacity]", "300").await?;
        type_value(&b, "#edit-gate input[name=closes_at]", "2030-06-01T23:45").await?;
        b.find(By::Id("save-gate")).await?.click().await?;
        soon(&b, By::Id("new-gate")).await?;
        let row = soon_text(&b, By::Css("#gates tbody tr")).await?;
        assert!(
            row.contains("Bar upstairs")
                && row.contains("only before 23:30")
                && row.contains("300"),
            "{row}"
        );
        assert!(
            soon_text(&b, By::Css("#gates td.open"))
                .await?
                .starts_with("until Sat 1 Jun 2030, 23:45")
        );
        let g = t
            .get(&gates_api, Some(&org.key))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["data"][0]
            .clone();
        assert_eq!(g["name"], "Bar upstairs");
        assert_eq!(g["capacity"], 300);
        // Africa/Johannesburg is two hours ahead of UTC.
        assert_eq!(g["closes_at"], "2030-06-01T21:45:00Z");
        assert_eq!(g["rules"]["and"].as_array().map(Vec::len), Some(2), "{g}");

        // The scan log: the newest hundred, then the one before them.
        assert_eq!(b.find_all(By::Css("#scan-log tbody tr")).await?.len(), 100);
        b.find(By::Id("scans-older")).await?.click().await?;
        soon(&b, By::Id("scans-newest")).await?;
        let rows = b.find_all(By::Css("#scan-log tbody tr")).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].find(By::Css("td.result")).await?.text().await?,
            "admitted"
        );
        assert!(b.find_all(By::Id("scans-older")).await?.is_empty());
        // A cursor that is not a scan id: said, not a server error.
        b.goto(&t.url(&format!(
            "/dashboard/events/{}/gates?before=nonsense",
            event.id
        )))
        .await?;
        let body = soon_text(&b, By::Css("body")).await?;
        assert!(
            body.contains("before") && !body.contains("Internal"),
            "{body}"
        );
        Ok::<_, WebDriverError>(())
    }
    .await;
    let _ = b.quit().await;
    result.expect("browser flow");
    t.stop().await;
}
