//! `voelgoed demo`: a demo organization with a published event, ticket
//! types and a paired device, created once per data directory and printed
//! with the URLs to open.

use anyhow::Context;
use kernel::{ApiError, clock};
use platform::{App, events, identity};
use serde::{Deserialize, Serialize};

pub const DEMO_EMAIL: &str = "demo@voelgoed.test";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_SLUG: &str = "demo";

/// What the demo prints; kept in the data directory, since secrets are shown
/// only once.
#[derive(Serialize, Deserialize)]
pub struct DemoSeed {
    pub org: String,
    pub event_id: String,
    pub api_key: String,
    pub device_token: String,
    pub email: String,
    pub password: String,
}

pub async fn seed(app: &App, seed_file: &std::path::Path) -> anyhow::Result<DemoSeed> {
    if identity::org_by_slug(app, DEMO_SLUG)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .is_some()
    {
        let text = std::fs::read_to_string(seed_file).with_context(|| {
            format!("the demo org exists but {} is missing", seed_file.display())
        })?;
        return Ok(serde_json::from_str(&text)?);
    }
    fn err(e: impl Into<ApiError>) -> anyhow::Error {
        anyhow::anyhow!("{}", e.into().problem().detail)
    }
    let out = identity::create_org(
        app,
        identity::NewOrg {
            email: DEMO_EMAIL.into(),
            password: DEMO_PASSWORD.into(),
            owner_name: Some("Demo Organizer".into()),
            org_name: "Demo Events".into(),
            org_slug: DEMO_SLUG.into(),
        },
    )
    .await
    .map_err(err)?;
    let actor = identity::operator(app, &out.org.slug).await.map_err(err)?;
    let now = app.kernel.now();
    let week = 7 * 24 * 3600 * clock::MICROS_PER_SEC;
    let event = events::create_event(
        app,
        &actor,
        events::NewEvent {
            name: "Voelgoed Demo Night".into(),
            starts_at: clock::rfc3339(now + week),
            ends_at: clock::rfc3339(now + week + 6 * 3600 * clock::MICROS_PER_SEC),
            timezone: "Africa/Johannesburg".into(),
            series: false,
        },
    )
    .await
    .map_err(err)?;
    for (name, capacity) in [("General admission", 500), ("Early bird", 100)] {
        events::add_ticket_type(
            app,
            &actor,
            event.id,
            events::NewTicketType {
                name: name.into(),
                price_cents: 0,
                currency: "ZAR".into(),
                capacity,
                sale_starts_at: None,
                sale_ends_at: None,
                max_per_order: Some(10),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    }
    events::publish(app, &actor, event.id).await.map_err(err)?;
    // Two gates: the main entrance (once per ticket) and a lounge people
    // go in and out of, open from 18:00 local time.
    platform::scanning::create_gate(
        app,
        &actor,
        event.id,
        platform::scanning::GateInput {
            name: Some("Main entrance".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(err)?;
    platform::scanning::create_gate(
        app,
        &actor,
        event.id,
        platform::scanning::GateInput {
            name: Some("Lounge".into()),
            reentry: Some("in_out".into()),
            rules: Some(Some(
                serde_json::json!({">=": [{"var": "minutes_of_day"}, 18 * 60]}),
            )),
            capacity: Some(Some(200)),
            ..Default::default()
        },
    )
    .await
    .map_err(err)?;
    let device = platform::scanning::create_device(
        app,
        &actor,
        platform::scanning::DeviceInput {
            name: Some("Demo gate scanner".into()),
            event_ids: Some(vec![event.id]),
            role: Some(platform::scanning::DeviceRole::Supervisor),
            ..Default::default()
        },
    )
    .await
    .map_err(err)?;
    let paired = platform::scanning::pair(app, &device.pairing_code)
        .await
        .map_err(err)?;
    let seed = DemoSeed {
        org: out.org.slug,
        event_id: event.id.to_string(),
        api_key: out.api_key,
        device_token: paired.device_token,
        email: DEMO_EMAIL.into(),
        password: DEMO_PASSWORD.into(),
    };
    std::fs::write(seed_file, serde_json::to_string_pretty(&seed)?)
        .with_context(|| format!("writing {}", seed_file.display()))?;
    Ok(seed)
}

pub fn banner(base: &str, s: &DemoSeed) -> String {
    format!(
        "\nVoelgoedEvents demo is running.\n\n\
         Storefront (take a free ticket):  {base}/s/{org}/events/{event}\n\
         Organizer login:                  {base}/login   ({email} / {password})\n\
         Live dashboard:                   {base}/dashboard/events/{event}\n\
         API description:                  {base}/api/openapi.json\n\n\
         API key (org {org}):              {key}\n\
         Demo device token:                {device}\n\n\
         Scan a ticket:\n  curl -s -X POST {base}/api/v1/scan -H 'Authorization: Bearer {device}' \\\n    -H 'Content-Type: application/json' -d '{{\"code\": \"<ticket code>\", \"event_id\": \"{event}\"}}'\n",
        org = s.org,
        event = s.event_id,
        email = s.email,
        password = s.password,
        key = s.api_key,
        device = s.device_token,
    )
}
