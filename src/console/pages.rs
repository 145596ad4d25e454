//! The console's pages (maud: HTML checked at compile time, every value escaped). They take
//! only the view types of `views.rs`; no page has a script.

use super::auth::Role;
use super::session::Who;
use super::views::{
    ApprovalView, AuditLine, Bar, CardRef, CardView, EnrolmentLine, OperationView, Safe,
    TimelineLine, TokenView,
};
use maud::{DOCTYPE, Markup, html};

/// What the layout shows of the operator, and the CSRF token of its forms.
pub struct Chrome<'a> {
    pub name: &'a str,
    pub role: Role,
    pub csrf: String,
}

impl<'a> Chrome<'a> {
    pub fn of(who: &'a Who) -> Chrome<'a> {
        Chrome {
            name: &who.name,
            role: who.role,
            csrf: who.csrf(),
        }
    }
}

/// The hidden CSRF field of a form.
fn csrf(chrome: &Chrome<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(chrome.csrf); }
}

fn layout(chrome: Option<&Chrome<'_>>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · issuer-gateway console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header {
                    span.brand { "issuer-gateway" }
                    @if let Some(c) = chrome {
                        nav aria-label="Main" {
                            a href="/console/overview" { "Overview" }
                            a href="/console/search" { "Search" }
                            a href="/console/operations" { "Operations" }
                            @if c.role >= Role::Supervisor {
                                a href="/console/audit" { "Audit" }
                            }
                        }
                        form.logout method="post" action="/console/logout" {
                            span.who { (c.name) " (" (c.role.as_str()) ")" }
                            (csrf(c))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page with a title and one message (refusals, errors).
pub fn message_page(chrome: Option<&Chrome<'_>>, title: &str, text: &str) -> Markup {
    layout(
        chrome,
        title,
        html! {
            p.message role="alert" { (text) }
            p { a href="/console/overview" { "Back to the overview" } }
        },
    )
}

pub fn login_page(notice: Option<&str>, login_csrf: &str, require_totp: bool) -> Markup {
    layout(
        None,
        "Log in",
        html! {
            @if let Some(n) = notice { p.message role="alert" { (n) } }
            form.card method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(login_csrf);
                label for="name" { "Operator name" }
                input #name type="text" name="name" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                @if require_totp {
                    label for="code" { "Six-digit code from your authenticator app" }
                    input #code type="text" name="code" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code" required;
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub fn password_page(chrome: &Chrome<'_>, notice: Option<&str>, forced: bool) -> Markup {
    layout(
        Some(chrome),
        "Change your password",
        html! {
            @if forced { p { "Your password was set for one use: choose your own before going on." } }
            @if let Some(n) = notice { p.message role="alert" { (n) } }
            form.card method="post" action="/console/password" {
                (csrf(chrome))
                label for="current" { "Current password" }
                input #current type="password" name="current" autocomplete="current-password" required;
                label for="new" { "New password (at least 12 characters, not your name, not a common password)" }
                input #new type="password" name="new" autocomplete="new-password" minlength="12" required;
                label for="again" { "New password again" }
                input #again type="password" name="again" autocomplete="new-password" minlength="12" required;
                button type="submit" { "Change password" }
            }
        },
    )
}

/// A horizontal bar chart, drawn by the server; each bar links to its list.
fn chart(title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let row = 26;
    let height = (bars.len().max(1) * row) as i64;
    html! {
        figure.chart {
            figcaption { (title) }
            @if bars.is_empty() {
                p.empty { "Nothing in the last 24 hours." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 400 " (height)} role="img" aria-label=(title) {
                    @for (i, b) in bars.iter().enumerate() {
                        @let y = (i * row) as i64;
                        @let w = 4 + b.count * 200 / max;
                        a href=(b.href) {
                            text x="0" y=(y + 17) class="label" { (b.label) }
                            rect x="150" y=(y + 4) width=(w) height="18" class=(b.tone) {}
                            text x=(156 + w) y=(y + 17) class="count" { (b.count) }
                        }
                    }
                }
                ul.numbers {
                    @for b in bars {
                        li { a href=(b.href) { (b.label) ": " strong { (b.count) } } }
                    }
                }
            }
        }
    }
}

/// The overview's numbers: (title, bars) per chart, then the operation log's numbers.
pub struct OverviewView {
    pub charts: Vec<(&'static str, Vec<Bar>)>,
    pub waiting: i64,
    pub failed: i64,
    pub unconfirmed: i64,
    pub stuck: i64,
}

pub fn overview_page(chrome: &Chrome<'_>, v: &OverviewView) -> Markup {
    layout(
        Some(chrome),
        "Overview",
        html! {
            p { "The last 24 hours. Each number opens the list behind it." }
            section.tiles aria-label="Life-cycle operations and stuck enrolments" {
                a.tile href="/console/operations?state=waiting" { strong { (v.waiting) } " operations waiting" }
                a.tile href="/console/operations?state=failed" { strong { (v.failed) } " operations failed" }
                a.tile href="/console/operations?state=unconfirmed" { strong { (v.unconfirmed) } " operations unconfirmed" }
                a.tile href="/console/enrolments?stuck=1" { strong { (v.stuck) } " enrolments stuck in yellow" }
            }
            div.charts {
                @for (title, bars) in &v.charts { (chart(title, bars)) }
            }
        },
    )
}

pub fn search_page(
    chrome: &Chrome<'_>,
    query: &str,
    notice: Option<&str>,
    cards: &[CardView],
) -> Markup {
    layout(
        Some(chrome),
        "Search",
        html! {
            form.search method="get" action="/console/search" role="search" {
                label for="q" { "issuerCardRefId, correlation id, virtualCardId, or BIN + last 4 (e.g. 411111 1111)" }
                input #q type="search" name="q" value=(query) required;
                button type="submit" { "Search" }
            }
            @if let Some(n) = notice { p.message role="status" { (n) } }
            @if !cards.is_empty() {
                table {
                    caption { "Cards" }
                    thead { tr { th { "Card" } th { "Card number" } th { "Status" } th { "Product" } } }
                    tbody {
                        @for c in cards {
                            tr {
                                td { a href={"/console/cards/" (c.card_ref.as_str())} { (c.card_ref) } }
                                td { (c.bin) " •••• " (c.last4) }
                                td { (c.status) }
                                td { (c.product) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn reason_field(id: &str) -> Markup {
    html! {
        label for=(id) { "Reason" }
        select id=(id) name="reason" {
            option value="CUSTOMER_REQUEST" { "Customer request" }
            option value="FRAUD_SUSPECTED" { "Fraud suspected" }
            option value="CARD_LOST" { "Card lost" }
            option value="CARD_STOLEN" { "Card stolen" }
            option value="DEVICE_LOST" { "Device lost" }
        }
    }
}

/// One action button on a token, as a form of its own.
fn token_form(chrome: &Chrome<'_>, card: &str, vcid: &str, action: &str, label: &str) -> Markup {
    let id = format!("reason-{action}-{vcid}");
    html! {
        form.action method="post" action={"/console/cards/" (card) "/actions"} {
            (csrf(chrome))
            input type="hidden" name="action" value=(action);
            input type="hidden" name="token" value=(vcid);
            (reason_field(&id))
            button type="submit" name="go" value=(action) { (label) }
        }
    }
}

pub struct CardPage<'a> {
    pub card: &'a CardView,
    pub tokens: &'a [TokenView],
    pub pending: &'a [OperationView],
    pub enrolments: &'a [EnrolmentLine],
    pub approvals: &'a [ApprovalView],
    pub notice: Option<&'a str>,
}

pub fn card_page(chrome: &Chrome<'_>, p: &CardPage<'_>) -> Markup {
    let c = p.card;
    let card = c.card_ref.as_str();
    let agent = chrome.role >= Role::Agent;
    let supervisor = chrome.role >= Role::Supervisor;
    layout(
        Some(chrome),
        &format!("Card {}", c.card_ref.as_str()),
        html! {
            @if let Some(n) = p.notice { p.message role="status" { (n) } }
            dl.facts {
                dt { "Card number" } dd { (c.bin) " •••• " (c.last4) }
                dt { "Expiry" } dd { (c.exp) }
                dt { "Status" } dd { (c.status) }
                dt { "Product" } dd { (c.product) }
                dt { "Language" } dd { @if let Some(l) = &c.language { (l) } @else { "-" } }
                dt { "Wallets" } dd { @for w in &c.wallets { (w) " " } }
                dt { "Phone" } dd { @if let Some(m) = &c.phone { (m) } @else { "-" } @if let Some(t) = &c.phone_changed { " (changed " (t) ")" } }
                dt { "E-mail" } dd { @if let Some(m) = &c.email { (m) } @else { "-" } @if let Some(t) = &c.email_changed { " (changed " (t) ")" } }
                dt { "Updated" } dd { (c.updated) }
            }
            @if agent {
                details.card-actions {
                    summary { "Actions on every token of this card" }
                    form.action method="post" action={"/console/cards/" (card) "/actions"} {
                        (csrf(chrome))
                        input type="hidden" name="action" value="SUSPEND";
                        (reason_field("reason-suspend-all"))
                        button type="submit" { "Suspend every token" }
                    }
                    form.action method="post" action={"/console/cards/" (card) "/block"} {
                        (csrf(chrome))
                        (reason_field("reason-block"))
                        button type="submit" { "Block the card" }
                    }
                    @if supervisor {
                        form.action method="post" action={"/console/cards/" (card) "/actions"} {
                            (csrf(chrome))
                            input type="hidden" name="action" value="DELETE";
                            (reason_field("reason-delete-all"))
                            button type="submit" { "Delete every token (a second supervisor approves)" }
                        }
                    }
                }
            }
            @if !p.approvals.is_empty() {
                section.approvals aria-label="Waiting for a second supervisor" {
                    h2 { "Waiting for a second supervisor" }
                    @for a in p.approvals {
                        p {
                            (a.action) " of every token, reason " (a.reason) ", requested by " (a.requested_by) " at " (a.at)
                            @if supervisor && a.requested_by.as_str() != chrome.name {
                                form.action method="post" action={"/console/cards/" (card) "/approvals/" (a.id)} {
                                    (csrf(chrome))
                                    button type="submit" { "Approve" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Tokens" }
            p { a href={"/console/cards/" (card) "?refresh=1"} { "Ask TSH for the tokens' own states (getCardInfo)" } }
            @if p.tokens.is_empty() { p { "No token." } }
            @for t in p.tokens {
                section.token aria-label={"Token " (t.virtual_card_id.as_str())} {
                    h3 {
                        (t.virtual_card_id) " · " (t.wallet) " · " span.state { (t.state) }
                        @if let Some(th) = &t.thales { " · " span.thales { "Thales: " (th) } }
                    }
                    p {
                        "Device " @if let Some(d) = &t.device { (d) } @else { "-" }
                        " · DPAN " @if let Some(d) = &t.dpan_last4 { "•••• " (d) } @else { "-" }
                        " · since " (t.created)
                    }
                    @if !t.history.is_empty() {
                        ol.history {
                            @for e in &t.history {
                                li { (e.at) " " (e.action) @if let Some(s) = &e.source { " (" (s) ")" } ": "
                                     @if let Some(b) = &e.before { (b) " → " } (e.after) }
                            }
                        }
                    }
                    @let state = t.state.as_str();
                    @let vcid = t.virtual_card_id.as_str();
                    div.actions {
                        @if agent && state == "active" { (token_form(chrome, card, vcid, "SUSPEND", "Suspend")) }
                        @if agent && state == "suspended" { (token_form(chrome, card, vcid, "RESUME", "Resume")) }
                        @if agent && state == "pending" {
                            form.action method="post" action={"/console/cards/" (card) "/actions"} {
                                (csrf(chrome))
                                input type="hidden" name="action" value="ACTIVATE";
                                input type="hidden" name="token" value=(vcid);
                                label for={"verification-" (vcid)} { "How the caller was verified" }
                                input id={"verification-" (vcid)} type="text" name="verification" required maxlength="64" placeholder="e.g. security questions";
                                button type="submit" { "Activate (caller verified)" }
                            }
                        }
                        @if supervisor && state != "deleted" { (token_form(chrome, card, vcid, "DELETE", "Delete")) }
                        @if agent && state != "deleted" {
                            @if let Some(d) = &t.device {
                                form.action method="post" action="/console/devices/actions" {
                                    (csrf(chrome))
                                    input type="hidden" name="device" value=(d.as_str());
                                    input type="hidden" name="card" value=(card);
                                    input type="hidden" name="action" value="SUSPEND";
                                    (reason_field(&format!("reason-device-{vcid}")))
                                    button type="submit" { "Suspend every token on this device" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Pending operations" }
            (operations_table(chrome, p.pending, false))
            h2 { "Enrolments" }
            (enrolments_table(p.enrolments))
        },
    )
}

pub fn operations_table(chrome: &Chrome<'_>, ops: &[OperationView], verbs: bool) -> Markup {
    let supervisor = chrome.role >= Role::Supervisor;
    html! {
        @if ops.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th { "Id" } th { "Operation" } th { "Card" } th { "Token" } th { "Reason" } th { "By" } th { "State" } th { "Attempts" } th { "Created" } @if verbs && supervisor { th { "" } } } }
                tbody {
                    @for o in ops {
                        tr {
                            td { (o.id) }
                            td { (o.kind) @if let Some(a) = &o.action { " " (a) } }
                            td { a href={"/console/cards/" (o.card_ref.as_str())} { (o.card_ref) } }
                            td { @if let Some(v) = &o.virtual_card_id { (v) } @else { "every token" } }
                            td { @if let Some(r) = &o.reason { (r) } }
                            td { @if let Some(r) = &o.operator { (r) } }
                            td.state { (o.state) @if let Some(e) = &o.last_error { br; small { (e) } } }
                            td { (o.attempts) }
                            td { (o.created) }
                            @if verbs && supervisor {
                                td {
                                    @if o.state.as_str() == "failed" {
                                        form method="post" action={"/console/operations/" (o.id) "/retry"} { (csrf(chrome)) button type="submit" { "Retry" } }
                                    }
                                    @if o.state.as_str() == "waiting" {
                                        form method="post" action={"/console/operations/" (o.id) "/cancel"} { (csrf(chrome)) button type="submit" { "Cancel" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn enrolments_table(list: &[EnrolmentLine]) -> Markup {
    html! {
        @if list.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th { "Correlation id" } th { "Card" } th { "Wallet" } th { "State" } th { "Decision" } th { "Rule" } th { "Started" } } }
                tbody {
                    @for e in list {
                        tr {
                            td { a href={"/console/enrolments/" (e.correlation_id.as_str())} { (e.correlation_id) } }
                            td { @if let Some(c) = &e.card_ref { a href={"/console/cards/" (c.as_str())} { (c) } } }
                            td { @if let Some(w) = &e.wallet { (w) } }
                            td { (e.state) }
                            td { @if let Some(d) = &e.decision { span class={"tone " (d.as_str())} { (d) } } }
                            td { @if let Some(r) = &e.rule { (r) } }
                            td { (e.at) }
                        }
                    }
                }
            }
        }
    }
}

pub fn enrolments_page(chrome: &Chrome<'_>, title: &str, list: &[EnrolmentLine]) -> Markup {
    layout(Some(chrome), title, enrolments_table(list))
}

pub struct EnrolmentPage<'a> {
    pub correlation_id: &'a Safe,
    pub card_ref: Option<&'a CardRef>,
    pub wallet: Option<&'a Safe>,
    pub state: &'a Safe,
    pub decision: Option<&'a Safe>,
    pub rule: Option<&'a Safe>,
    pub methods: &'a [TimelineLine],
    pub timeline: &'a [TimelineLine],
}

pub fn enrolment_page(chrome: &Chrome<'_>, p: &EnrolmentPage<'_>) -> Markup {
    layout(
        Some(chrome),
        &format!("Enrolment {}", p.correlation_id.as_str()),
        html! {
            dl.facts {
                dt { "Card" } dd { @if let Some(c) = p.card_ref { a href={"/console/cards/" (c.as_str())} { (c) } } @else { "-" } }
                dt { "Wallet" } dd { @if let Some(w) = p.wallet { (w) } @else { "-" } }
                dt { "State" } dd { (p.state) }
                dt { "Decision" } dd { @if let Some(d) = p.decision { span class={"tone " (d.as_str())} { (d) } } @else { "-" } @if let Some(r) = p.rule { " by rule " strong { (r) } } }
            }
            h2 { "Methods offered" }
            @if p.methods.is_empty() { p { "None." } }
            ul {
                @for m in p.methods {
                    li { (m.what) @for (k, v) in &m.detail { " · " (k) " " (v) } @if let Some(d) = &m.destination { " · " (d) } }
                }
            }
            h2 { "Timeline" }
            ol.timeline {
                @for l in p.timeline {
                    li {
                        (l.at) " " strong { (l.what) }
                        @if let Some(d) = &l.destination { " to " (d) }
                        @for (k, v) in &l.detail { " · " (k) " " (v) }
                    }
                }
            }
        },
    )
}

pub fn operations_page(chrome: &Chrome<'_>, state: &str, ops: &[OperationView]) -> Markup {
    let states = [
        "waiting",
        "sent",
        "unconfirmed",
        "confirmed",
        "failed",
        "refused",
        "cancelled",
    ];
    layout(
        Some(chrome),
        "Operations",
        html! {
            nav.tabs aria-label="Operation states" {
                @for s in states {
                    @if s == state { strong { (s) } } @else { a href={"/console/operations?state=" (s)} { (s) } }
                }
            }
            (operations_table(chrome, ops, true))
        },
    )
}

pub fn audit_page(chrome: &Chrome<'_>, lines: &[AuditLine], chain: &str) -> Markup {
    layout(
        Some(chrome),
        "Audit log",
        html! {
            p.message role="status" { (chain) }
            p { "Export as JSON lines for a SIEM: " code { "issuer-gateway operators audit-export" } "." }
            table {
                thead { tr { th { "#" } th { "When" } th { "Who" } th { "Via" } th { "What" } th { "Outcome" } th { "Card" } th { "Token" } th { "Operation" } th { "Reason" } th { "From" } } }
                tbody {
                    @for l in lines {
                        tr {
                            td { (l.seq) } td { (l.at) } td { (l.actor) } td { (l.channel) } td { (l.action) } td { (l.outcome) }
                            td { @if let Some(c) = &l.card_ref { a href={"/console/cards/" (c.as_str())} { (c) } } }
                            td { @if let Some(v) = &l.virtual_card_id { (v) } }
                            td { @if let Some(o) = l.operation_id { (o) } }
                            td { @if let Some(r) = &l.reason { (r) } }
                            td { @if let Some(s) = &l.source { (s) } }
                        }
                    }
                }
            }
        },
    )
}
