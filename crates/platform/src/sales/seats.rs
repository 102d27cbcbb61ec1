//! Seats held and sold: a hold of seats writes a claim per seat in the
//! hold's own write; the claims table's primary key (event, seat) makes a
//! seat part of at most one live hold or valid ticket, on both backends and
//! across nodes. Releasing the hold deletes its claims in the transaction
//! that releases it.
//!
//! Best available: N seats of a ticket type side by side in one row when
//! some row has them (closest to its section's front, then centre, by the
//! map's coordinates), never leaving a single free seat between taken ones
//! when another choice avoids it; else the fewest rows.

use std::collections::{HashMap, HashSet};

use kernel::{
    Db, Stmt, Tx, db_run,
    ids::{EventId, HoldId, OrgId, TicketTypeId},
    tx_run,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{events::SeatMap, identity::Tenant};

/// A seat's state as buyers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
    Blocked,
}

/// A seat in a hold's or ticket's reply.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct SeatRef {
    pub id: String,
    pub section: String,
    pub row: String,
    pub label: String,
}

/// A seat map's rows as best available reads them: each row's seats (their
/// indices in the map) left to right, its rank from the section's front,
/// the sections' centres. Made once per map (it does not change with sales).
pub struct Layout {
    rows: Vec<LRow>,
    centre: Vec<f64>,
}

struct LRow {
    section: usize,
    /// 0 for the row nearest the section's front (smallest y).
    rank: usize,
    seats: Vec<usize>,
}

impl Layout {
    pub fn of(map: &SeatMap) -> Layout {
        let mut rows: Vec<LRow> = Vec::new();
        let mut section_of: HashMap<&str, usize> = HashMap::new();
        let mut row_of: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, s) in map.seats.iter().enumerate() {
            let next = section_of.len();
            let section = *section_of.entry(s.section.as_str()).or_insert(next);
            let next = rows.len();
            let r = *row_of
                .entry((s.section.as_str(), s.row.as_str()))
                .or_insert(next);
            if r == rows.len() {
                rows.push(LRow {
                    section,
                    rank: 0,
                    seats: Vec::new(),
                });
            }
            rows[r].seats.push(i);
        }
        let mut centre = vec![(f64::MAX, f64::MIN); section_of.len()];
        for r in &mut rows {
            r.seats
                .sort_by(|a, b| map.seats[*a].x.total_cmp(&map.seats[*b].x));
            for s in &r.seats {
                let c = &mut centre[r.section];
                c.0 = c.0.min(map.seats[*s].x);
                c.1 = c.1.max(map.seats[*s].x);
            }
        }
        let centre: Vec<f64> = centre.iter().map(|(lo, hi)| (lo + hi) / 2.0).collect();
        let mean_y =
            |r: &LRow| r.seats.iter().map(|s| map.seats[*s].y).sum::<f64>() / r.seats.len() as f64;
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|a, b| {
            (rows[*a].section, mean_y(&rows[*a]))
                .partial_cmp(&(rows[*b].section, mean_y(&rows[*b])))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut rank_in = vec![0usize; section_of.len()];
        for i in order {
            let s = rows[i].section;
            rows[i].rank = rank_in[s];
            rank_in[s] += 1;
        }
        Layout { rows, centre }
    }
}

/// Picks `n` free seats of `tt` (see the module's rules; `taken` by seat
/// index in the map); their indices, or `None` when fewer than `n` are free.
pub fn best_available(
    map: &SeatMap,
    layout: &Layout,
    tt: TicketTypeId,
    taken: &dyn Fn(usize) -> bool,
    n: usize,
) -> Option<Vec<usize>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let (rows, centre) = (&layout.rows, &layout.centre);
    let free = |i: usize| {
        let s = &map.seats[i];
        s.ticket_type_id == tt && !s.blocked() && !taken(i)
    };
    let free_in: Vec<Vec<bool>> = rows
        .iter()
        .map(|r| r.seats.iter().map(|s| free(*s)).collect())
        .collect();
    if free_in.iter().flatten().filter(|f| **f).count() < n {
        return None;
    }
    // Single free seats a window [a, b) leaves at its sides.
    let orphans = |f: &[bool], a: usize, b: usize| {
        let alone = |i: usize| {
            f[i] && (i == 0 || !f[i - 1] || (i > a && i - 1 < b))
                && (i + 1 >= f.len() || !f[i + 1] || (i + 1 >= a && i + 1 < b))
        };
        let mut k = 0;
        if a > 0 && alone(a - 1) {
            k += 1;
        }
        if b < f.len() && alone(b) {
            k += 1;
        }
        k
    };
    let window_score = |ri: usize, a: usize, b: usize| {
        let r = &rows[ri];
        let mid = (map.seats[r.seats[a]].x + map.seats[r.seats[b - 1]].x) / 2.0;
        (
            orphans(&free_in[ri], a, b),
            r.rank,
            (mid - centre[r.section]).abs(),
            r.section,
        )
    };
    // One row, side by side.
    // (score, row, start)
    type Choice = ((usize, usize, f64, usize), usize, usize);
    let mut best: Option<Choice> = None;
    for (ri, f) in free_in.iter().enumerate() {
        if f.len() < n {
            continue;
        }
        for a in 0..=f.len() - n {
            if f[a..a + n].iter().all(|x| *x) {
                let score = window_score(ri, a, a + n);
                if best
                    .as_ref()
                    .is_none_or(|(b, ..)| score.partial_cmp(b) == Some(std::cmp::Ordering::Less))
                {
                    best = Some((score, ri, a));
                }
            }
        }
    }
    if let Some((_, ri, a)) = best {
        return Some(rows[ri].seats[a..a + n].to_vec());
    }
    // The fewest rows: the longest runs of free seats first (front, centre
    // breaking ties), each taken whole or, for the last, its best part.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (ri, f) in free_in.iter().enumerate() {
        let mut i = 0;
        while i < f.len() {
            if f[i] {
                let a = i;
                while i < f.len() && f[i] {
                    i += 1;
                }
                runs.push((ri, a, i));
            } else {
                i += 1;
            }
        }
    }
    runs.sort_by(|x, y| {
        let kx = (std::cmp::Reverse(x.2 - x.1), window_score(x.0, x.1, x.2));
        let ky = (std::cmp::Reverse(y.2 - y.1), window_score(y.0, y.1, y.2));
        kx.partial_cmp(&ky).unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut left = n;
    let mut out = Vec::with_capacity(n);
    for (ri, a, b) in runs {
        if left == 0 {
            break;
        }
        let m = left.min(b - a);
        let mut pick = (window_score(ri, a, a + m), a);
        for s in a..=b - m {
            let score = window_score(ri, s, s + m);
            if score.partial_cmp(&pick.0) == Some(std::cmp::Ordering::Less) {
                pick = (score, s);
            }
        }
        out.extend_from_slice(&rows[ri].seats[pick.1..pick.1 + m]);
        left -= m;
    }
    Some(out)
}

/// The claims a hold's write makes, one per seat.
pub fn claim(
    t: &Tenant,
    event: EventId,
    hold: HoldId,
    seats: &[(String, TicketTypeId)],
) -> Vec<Stmt> {
    seats
        .iter()
        .map(|(seat, tt)| {
            Stmt::new(
                "INSERT INTO seat_claims (org_id, event_id, seat_id, hold_id, ticket_type_id)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(t.org())
            .bind(event)
            .bind(seat.clone())
            .bind(hold)
            .bind(*tt)
        })
        .collect()
}

/// Deletes a released hold's claims, inside the releasing transaction.
pub async fn unclaim(tx: &mut Tx, org: OrgId, hold: HoldId) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM seat_claims WHERE org_id = $1 AND hold_id = $2";
    tx_run!(tx, c => sqlx::query(sql).bind(org).bind(hold).execute(c).await.map(|_| ()))
}

/// Every claimed seat of the event and whether its hold was checked out.
#[tracing::instrument(skip_all)]
pub async fn claimed(
    db: &Db,
    t: &Tenant,
    event: EventId,
) -> Result<Vec<(String, bool)>, sqlx::Error> {
    let sql = "SELECT c.seat_id, CASE WHEN h.status = 'consumed' THEN 1 ELSE 0 END
               FROM seat_claims c JOIN holds h ON h.org_id = c.org_id AND h.id = c.hold_id
               WHERE c.org_id = $1 AND c.event_id = $2";
    let rows: Vec<(String, i32)> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_all(p).await)?;
    Ok(rows.into_iter().map(|(s, sold)| (s, sold == 1)).collect())
}

/// The seats a hold claimed, by ticket type and seat id.
#[tracing::instrument(skip_all)]
pub async fn of_hold(
    db: &Db,
    t: &Tenant,
    hold: HoldId,
) -> Result<Vec<(TicketTypeId, String)>, sqlx::Error> {
    let sql = "SELECT ticket_type_id, seat_id FROM seat_claims
               WHERE org_id = $1 AND hold_id = $2 ORDER BY ticket_type_id, seat_id";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(hold).fetch_all(p).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Seat, SeatMap};

    /// A map from rows of text: one line per row, front first (y = line),
    /// `.` a free seat of type A, `x` a taken one, `b` a seat of type B,
    /// `#` a blocked one, ` ` no seat. Seat ids are `S<row><col>`.
    fn map(sections: &[&[&str]]) -> (SeatMap, HashSet<String>) {
        let a = TicketTypeId(uuid::Uuid::from_u128(1));
        let b = TicketTypeId(uuid::Uuid::from_u128(2));
        let mut seats = Vec::new();
        let mut taken = HashSet::new();
        for (si, rows) in sections.iter().enumerate() {
            for (ri, line) in rows.iter().enumerate() {
                for (ci, ch) in line.chars().enumerate() {
                    if ch == ' ' {
                        continue;
                    }
                    let id = format!("S{si}R{ri}C{ci}");
                    if ch == 'x' {
                        taken.insert(id.clone());
                    }
                    seats.push(Seat {
                        id,
                        section: format!("sec{si}"),
                        row: format!("{ri}"),
                        label: format!("{ci}"),
                        x: ci as f64 + si as f64 * 100.0,
                        y: ri as f64,
                        ticket_type_id: if ch == 'b' { b } else { a },
                        flags: if ch == '#' {
                            vec!["blocked".into()]
                        } else {
                            Vec::new()
                        },
                    });
                }
            }
        }
        (SeatMap::for_tests(seats), taken)
    }

    fn pick(sections: &[&[&str]], n: usize) -> Option<Vec<String>> {
        let (m, taken) = map(sections);
        let layout = Layout::of(&m);
        let mut got: Vec<String> = best_available(
            &m,
            &layout,
            TicketTypeId(uuid::Uuid::from_u128(1)),
            &|i| taken.contains(&m.seats[i].id),
            n,
        )?
        .into_iter()
        .map(|i| m.seats[i].id.clone())
        .collect();
        got.sort();
        Some(got)
    }

    fn ids(v: &[&str]) -> Option<Vec<String>> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        Some(v)
    }

    /// The table: a layout, a request, the expected choice.
    #[test]
    fn best_available_chooses_as_a_box_office_would() {
        // Empty row of ten: the two middle seats.
        assert_eq!(pick(&[&[".........."]], 2), ids(&["S0R0C4", "S0R0C5"]));
        // Side by side beats the front: the front row has no three together.
        assert_eq!(
            pick(&[&[".x.x.x.x", "........"]], 3),
            ids(&["S0R1C2", "S0R1C3", "S0R1C4"])
        );
        // Front beats centre when the front row has them.
        assert_eq!(
            pick(&[&["...xxxxxx", "........."]], 3),
            ids(&["S0R0C0", "S0R0C1", "S0R0C2"])
        );
        // No single seat left alone: x.......  for 4 → seats 1–4 (5–7
        // stay together), not 2–5 (would strand seat 1).
        assert_eq!(
            pick(&[&["x......."]], 4),
            ids(&["S0R0C1", "S0R0C2", "S0R0C3", "S0R0C4"])
        );
        // ..x.... for 2: the centre pair 3–4 would strand 5? no: 5,6 stay;
        // 4–5 would strand 3 and 6. Expect 3–4.
        assert_eq!(pick(&[&["..x...."]], 2), ids(&["S0R0C3", "S0R0C4"]));
        // Other types and blocked seats are never picked, nor break rules.
        assert_eq!(pick(&[&["bb..#..bb"]], 2), ids(&["S0R0C2", "S0R0C3"]));
        // No row has four together: the fewest rows (two pairs), front first.
        assert_eq!(
            pick(&[&["..x..", "..x..", "..x.."]], 4),
            ids(&["S0R0C0", "S0R0C1", "S0R0C3", "S0R0C4"])
        );
        // A run of three and one more: two rows, not three.
        let got = pick(&[&[".x.x.", "...xx", ".x.x."]], 4).unwrap();
        let rows: HashSet<&str> = got.iter().map(|s| &s[..4]).collect();
        assert_eq!(rows.len(), 2, "{got:?}");
        assert!(got.contains(&"S0R1C0".to_string()));
        // Not enough: none.
        assert_eq!(pick(&[&["x.x", "#b."]], 3), None);
        // Two sections: the one with the seats together, and there not the
        // centre three (each side would be left with a single seat).
        assert_eq!(
            pick(&[&[".x.x."], &["....."]], 3),
            ids(&["S1R0C0", "S1R0C1", "S1R0C2"])
        );
    }
}

/// One seat as the storefront shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoreSeat {
    pub id: String,
    pub section: String,
    pub row: String,
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub ticket_type_id: TicketTypeId,
    pub flags: Vec<String>,
    pub status: SeatStatus,
}

/// A general-admission area as the storefront shows it: where it is,
/// which ticket types are sold into it, and how many places are left.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoreArea {
    pub id: String,
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub ticket_type_ids: Vec<TicketTypeId>,
    pub capacity: i64,
    pub available: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoreSeats {
    pub seats: Vec<StoreSeat>,
    /// The map's general-admission areas (held by quantity: `items`).
    pub areas: Vec<StoreArea>,
    /// The reply's JSON, made once per reading (a large map is megabytes,
    /// read by many buyers at once).
    #[serde(skip)]
    json: std::sync::OnceLock<axum::body::Bytes>,
}

impl StoreSeats {
    /// This reading as JSON, made on first use.
    pub fn json(&self) -> axum::body::Bytes {
        self.json
            .get_or_init(|| serde_json::to_vec(self).unwrap_or_default().into())
            .clone()
    }
}

/// What a pick found.
pub enum Picked<'a> {
    Seats(InFlight<'a>),
    /// Not enough free seats unless some being held here fall through.
    Busy,
    None,
}

impl InFlight<'_> {
    pub fn seats(&self) -> &[String] {
        &self.seats
    }
}

/// Seat statuses, kept in memory for a moment per event (many buyers poll
/// and redraw the same map): a node's own holds refresh it at once; others'
/// within the time to live.
pub struct SeatBoard(
    moka::future::Cache<(OrgId, EventId), std::sync::Arc<StoreSeats>>,
    /// Seats this node is writing holds for right now: a pick on this node
    /// does not choose them (many buyers asking for the best seats at once
    /// would otherwise all choose the same ones, and all but one fail).
    std::sync::Mutex<HashMap<(OrgId, EventId), HashSet<String>>>,
    /// The claimed seats as the database said a moment ago (for picks),
    /// with this node's own claims since added: a pick reads no table. A
    /// claim another node made since is found by the write (the key), and
    /// the pick made again on a fresh reading.
    std::sync::Mutex<HashMap<(OrgId, EventId), Taken>>,
    /// One reading of an event's claims at a time: many buyers finding the
    /// reading stale at once wait for one read and share it (thousands of
    /// reads of every claim at once would swamp the database).
    dashmap::DashMap<(OrgId, EventId), std::sync::Arc<tokio::sync::Mutex<()>>>,
);

/// The claimed seats of an event (by index in its map), read at `at`,
/// with the map's layout (both for the map as stored at `map_at`).
pub struct Taken {
    at: std::time::Instant,
    map_at: String,
    layout: std::sync::Arc<Layout>,
    seats: Vec<bool>,
}

/// How long a reading of the claimed seats serves picks.
const TAKEN_TTL: std::time::Duration = std::time::Duration::from_millis(250);

/// Seats marked in flight; unmarked when dropped (the hold written or not:
/// once written, its claims are in the database).
pub struct InFlight<'a> {
    board: &'a SeatBoard,
    key: (OrgId, EventId),
    seats: Vec<String>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.board.1.lock()
            && let Some(set) = m.get_mut(&self.key)
        {
            for s in &self.seats {
                set.remove(s);
            }
            if set.is_empty() {
                m.remove(&self.key);
            }
        }
    }
}

impl SeatBoard {
    pub fn new() -> SeatBoard {
        SeatBoard(
            moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(std::time::Duration::from_millis(500))
                .build(),
            std::sync::Mutex::new(HashMap::new()),
            std::sync::Mutex::new(HashMap::new()),
            dashmap::DashMap::new(),
        )
    }

    /// Makes sure a fresh reading of the event's claims is kept (`force`:
    /// one begun after this call, whatever the age of the one kept). One
    /// reading at a time per event; whoever waited for it uses it.
    pub async fn read_taken(
        &self,
        db: &Db,
        t: &Tenant,
        event: EventId,
        map: &SeatMap,
        force: bool,
    ) -> Result<(), sqlx::Error> {
        let asked = std::time::Instant::now();
        let fresh = |k: &Taken| {
            k.map_at == map.updated_at && (k.at >= asked || (!force && k.at.elapsed() < TAKEN_TTL))
        };
        if !force
            && self
                .2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(t.org(), event))
                .is_some_and(fresh)
        {
            return Ok(());
        }
        let gate = self.3.entry((t.org(), event)).or_default().clone();
        let _turn = gate.lock().await;
        // Read by another while this one waited its turn?
        if self
            .2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(t.org(), event))
            .is_some_and(fresh)
        {
            return Ok(());
        }
        // The layout is kept while the map is the same (made, if need be,
        // with the board unlocked).
        let kept = self
            .2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(t.org(), event))
            .filter(|k| k.map_at == map.updated_at)
            .map(|k| k.layout.clone());
        let layout = kept.unwrap_or_else(|| std::sync::Arc::new(Layout::of(map)));
        let at = std::time::Instant::now();
        let mut seats = vec![false; map.seats.len()];
        for (id, _) in claimed(db, t, event).await? {
            if let Some(i) = map.seat_index(&id) {
                seats[i] = true;
            }
        }
        self.2.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (t.org(), event),
            Taken {
                at,
                map_at: map.updated_at.clone(),
                layout,
                seats,
            },
        );
        Ok(())
    }

    /// This node claimed `seats` (its hold was written): later picks from
    /// the same reading skip them.
    pub fn claimed_here(&self, org: OrgId, event: EventId, map: &SeatMap, seats: &[String]) {
        if let Some(k) = self
            .2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&(org, event))
            && k.map_at == map.updated_at
        {
            for id in seats {
                if let Some(i) = map.seat_index(id) {
                    k.seats[i] = true;
                }
            }
        }
    }

    /// Marks `seats` in flight, or says which one another request on this
    /// node is writing a hold for.
    pub fn mark(
        &self,
        org: OrgId,
        event: EventId,
        seats: Vec<String>,
    ) -> Result<InFlight<'_>, String> {
        let mut m = self.1.lock().unwrap_or_else(|p| p.into_inner());
        let set = m.entry((org, event)).or_default();
        if let Some(busy) = seats.iter().find(|s| set.contains(*s)) {
            return Err(busy.clone());
        }
        set.extend(seats.iter().cloned());
        Ok(InFlight {
            board: self,
            key: (org, event),
            seats,
        })
    }

    /// Picks the best free seats (claimed as last read by
    /// [`SeatBoard::read_taken`], and those in flight here) and marks them
    /// in flight, in one step.
    pub fn pick(
        &self,
        org: OrgId,
        event: EventId,
        map: &SeatMap,
        tt: TicketTypeId,
        n: usize,
    ) -> Picked<'_> {
        let mut m = self.1.lock().unwrap_or_else(|p| p.into_inner());
        let taken = self.2.lock().unwrap_or_else(|p| p.into_inner());
        let Some(k) = taken
            .get(&(org, event))
            .filter(|k| k.map_at == map.updated_at)
        else {
            return Picked::Busy;
        };
        let claimed = |i: usize| k.seats.get(i).copied().unwrap_or(true);
        let set = m.entry((org, event)).or_default();
        // The seats in flight here, by place in the map (one lookup per
        // seat in flight, not one per seat of the map).
        let mut in_flight = vec![false; if set.is_empty() { 0 } else { map.seats.len() }];
        for id in set.iter() {
            if let Some(i) = map.seat_index(id) {
                in_flight[i] = true;
            }
        }
        let busy = |i: usize| claimed(i) || in_flight.get(i).copied().unwrap_or(false);
        match best_available(map, &k.layout, tt, &busy, n) {
            Some(picked) => {
                let seats: Vec<String> = picked.iter().map(|i| map.seats[*i].id.clone()).collect();
                set.extend(seats.iter().cloned());
                Picked::Seats(InFlight {
                    board: self,
                    key: (org, event),
                    seats,
                })
            }
            // Enough seats, but some are being held here right now: their
            // holds may yet fail.
            None if best_available(map, &k.layout, tt, &claimed, n).is_some() => Picked::Busy,
            None => Picked::None,
        }
    }

    pub async fn changed(&self, org: OrgId, event: EventId) {
        self.0.invalidate(&(org, event)).await;
    }

    /// Seats came free (a release): the next pick reads the claims again.
    pub fn freed(&self, org: OrgId, event: EventId) {
        self.2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(org, event));
    }
}

impl Default for SeatBoard {
    fn default() -> Self {
        Self::new()
    }
}

/// The event's seats and what each is now (404 when it has no map).
pub async fn store_seats(
    app: &crate::App,
    t: &Tenant,
    event: EventId,
) -> kernel::ApiResult<std::sync::Arc<StoreSeats>> {
    let board = &app.state::<SeatBoard>().0;
    if let Some(s) = board.get(&(t.org(), event)).await {
        return Ok(s);
    }
    let Some(map) = crate::events::seating(app, t, event).await? else {
        return Err(kernel::ApiError::NotFound);
    };
    let (app2, t2) = (app.clone(), t.clone());
    board
        .try_get_with((t.org(), event), async move {
            read_seats(&app2, &t2, event, &map).await
        })
        .await
        .map_err(|e| match std::sync::Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(e) => kernel::ApiError::internal(e.to_string()),
        })
}

async fn read_seats(
    app: &crate::App,
    t: &Tenant,
    event: EventId,
    map: &SeatMap,
) -> kernel::ApiResult<std::sync::Arc<StoreSeats>> {
    let claims: HashMap<String, bool> = claimed(app.db(), t, event)
        .await
        .map_err(|e| kernel::ApiError::from_db(&e))?
        .into_iter()
        .collect();
    let left = app
        .state::<super::Inventory>()
        .areas_left(app, t, event, &map.areas)
        .await
        .map_err(kernel::ApiError::from)?;
    let areas = map
        .areas
        .iter()
        .zip(left)
        .map(|(a, available)| StoreArea {
            id: a.id.clone(),
            name: a.name.clone(),
            x: a.x,
            y: a.y,
            width: a.width,
            height: a.height,
            ticket_type_ids: a.ticket_type_ids.clone(),
            capacity: a.capacity,
            available,
        })
        .collect();
    let seats = map
        .seats
        .iter()
        .map(|s| StoreSeat {
            id: s.id.clone(),
            section: s.section.clone(),
            row: s.row.clone(),
            label: s.label.clone(),
            x: s.x,
            y: s.y,
            ticket_type_id: s.ticket_type_id,
            flags: s.flags.clone(),
            status: match claims.get(&s.id) {
                Some(true) => SeatStatus::Sold,
                Some(false) => SeatStatus::Held,
                None if s.blocked() => SeatStatus::Blocked,
                None => SeatStatus::Available,
            },
        })
        .collect();
    Ok(std::sync::Arc::new(StoreSeats {
        seats,
        areas,
        json: std::sync::OnceLock::new(),
    }))
}

/// One follower per seated event on this node: it turns the event's
/// PubSub messages (holds, orders, expiries: from any node) into the seats'
/// statuses, for every live stream of the event here.
pub struct SeatWatchers {
    events: dashmap::DashMap<
        (OrgId, EventId),
        std::sync::Arc<tokio::sync::watch::Sender<std::sync::Arc<StoreSeats>>>,
    >,
    /// Open streams on this node, across events (each holds a connection).
    streams: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for SeatWatchers {
    fn default() -> Self {
        Self::new()
    }
}

/// Most seat streams one node keeps open at once.
pub const MAX_SEAT_STREAMS: usize = 10_000;

impl SeatWatchers {
    pub fn new() -> SeatWatchers {
        SeatWatchers {
            events: dashmap::DashMap::new(),
            streams: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_SEAT_STREAMS)),
        }
    }

    /// A place for one more stream, if the node has one.
    pub fn place(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// The event's seat statuses as they change.
    pub async fn watch(
        app: &crate::App,
        t: &Tenant,
        event: EventId,
    ) -> kernel::ApiResult<tokio::sync::watch::Receiver<std::sync::Arc<StoreSeats>>> {
        let w = app.state::<SeatWatchers>();
        if let Some(tx) = w.events.get(&(t.org(), event))
            && !tx.is_closed()
        {
            return Ok(tx.subscribe());
        }
        // Subscribe before the first read, so no change falls between them.
        let rx = app
            .kernel
            .hub
            .subscribe(&kernel::tenant::event_topic(t.org(), event));
        let first = store_seats(app, t, event).await?;
        let (tx, seats_rx) = tokio::sync::watch::channel(first);
        let tx = std::sync::Arc::new(tx);
        w.events.insert((t.org(), event), tx.clone());
        tokio::spawn(follow(app.clone(), t.clone(), event, rx, tx));
        Ok(seats_rx)
    }
}

async fn follow(
    app: crate::App,
    t: Tenant,
    event: EventId,
    mut rx: tokio::sync::broadcast::Receiver<kernel::pubsub::Message>,
    tx: std::sync::Arc<tokio::sync::watch::Sender<std::sync::Arc<StoreSeats>>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut shutdown = app.kernel.shutdown.clone();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = tx.closed() => break,
            _ = crate::web::until_down(&mut shutdown) => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Everything that arrived meanwhile is covered by one read.
        while rx.try_recv().is_ok() {}
        app.state::<SeatBoard>().changed(t.org(), event).await;
        match store_seats(&app, &t, event).await {
            Ok(seats) => {
                tx.send_if_modified(|old| {
                    let changed = old
                        .seats
                        .iter()
                        .zip(&seats.seats)
                        .any(|(a, b)| a.id != b.id || a.status != b.status)
                        || old.seats.len() != seats.seats.len()
                        || old
                            .areas
                            .iter()
                            .map(|a| (&a.id, a.available))
                            .ne(seats.areas.iter().map(|a| (&a.id, a.available)));
                    *old = seats;
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "seat statuses failed"),
        }
    }
    app.state::<SeatWatchers>()
        .events
        .remove_if(&(t.org(), event), |_, s| std::sync::Arc::ptr_eq(s, &tx));
}

/// A seat's id and state, as the live stream sends changes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatChange {
    pub id: String,
    pub status: SeatStatus,
}

/// An area's places left, as the live stream sends changes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AreaChange {
    pub id: String,
    pub available: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatChanges {
    pub seats: Vec<SeatChange>,
    pub areas: Vec<AreaChange>,
}

impl SeatChanges {
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty() && self.areas.is_empty()
    }
}

/// The seats whose state, and the areas whose places left, differ between
/// two readings (all of `now` when there was none before).
pub fn changes(before: Option<&StoreSeats>, now: &StoreSeats) -> SeatChanges {
    let old: HashMap<&str, SeatStatus> = before
        .map(|b| b.seats.iter().map(|s| (s.id.as_str(), s.status)).collect())
        .unwrap_or_default();
    SeatChanges {
        seats: now
            .seats
            .iter()
            .filter(|s| old.get(s.id.as_str()) != Some(&s.status))
            .map(|s| SeatChange {
                id: s.id.clone(),
                status: s.status,
            })
            .collect(),
        areas: now
            .areas
            .iter()
            .filter(|a| {
                before.is_none_or(|b| {
                    !b.areas
                        .iter()
                        .any(|x| x.id == a.id && x.available == a.available)
                })
            })
            .map(|a| AreaChange {
                id: a.id.clone(),
                available: a.available,
            })
            .collect(),
    }
}

/// Which of `seats` are claimed now (a quick refusal before counters are
/// taken; the key still decides at the write).
#[tracing::instrument(skip_all)]
pub async fn claimed_among(
    db: &Db,
    t: &Tenant,
    event: EventId,
    seats: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if seats.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..seats.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT seat_id FROM seat_claims WHERE org_id = $1 AND event_id = $2 AND seat_id IN ({})",
        marks.join(", ")
    );
    db_run!(db, p => {
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(event);
        for s in seats {
            q = q.bind(s.as_str());
        }
        q.fetch_all(p).await
    })
}
