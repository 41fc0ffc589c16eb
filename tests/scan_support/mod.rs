//! Shared pieces of the `scan_proxy*` tests: pages written for the tests, scripted origins
//! serving them, and accessors for the verdict header and the running pipeline's counters.
#![allow(dead_code)]

use std::io::Write;

use sluice::scan::pipeline::StatsSnapshot;

use crate::common::{self, Origin, Sluice};

/// Obvious lottery / phishing spam, written for this test (every domain under `.example`).
pub const SPAM: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
<title>CONGRATULATIONS!!! You are our lucky WINNER</title></head><body>\
<h1>Dear Lucky Winner,</h1>\
<p>Your e-mail address has WON the sum of <b>$1,500,000.00 USD</b> in our international \
online lottery draw. You were selected from over 20,000,000 addresses!</p>\
<p>To claim your prize you must act now. Send your full name, bank account number and a \
processing fee of $150 by Western Union to our claims agent within 24 hours, or the money \
will be forfeited. This offer is 100% guaranteed and completely risk free.</p>\
<p>Your account has been suspended: verify your account and confirm your password at \
<a href=\"http://secure-login.bank.example.claims-office.example/verify-account.php?id=7\">\
CLICK HERE TO CLAIM YOUR PRIZE NOW</a></p>\
<p>Double your Bitcoin: send 0.1 BTC to our wallet and receive 0.2 BTC back instantly.</p>\
</body></html>";

/// An ordinary newsletter, written for this test.
pub const NEWSLETTER: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
<title>Riverside Library - November news</title></head><body>\
<h1>Riverside Library newsletter</h1>\
<p>Hello readers, here is what is happening at the library this month.</p>\
<h2>Reading group</h2>\
<p>The Thursday reading group meets in the upstairs room at seven. This month we are \
discussing a novel about a family of lighthouse keepers on the northern coast. New members \
are always welcome; copies are available at the front desk.</p>\
<h2>Opening hours</h2>\
<p>From the first of December the library opens at nine on Saturdays. The children's \
corner now has a new shelf of picture books donated by local families.</p>\
<p>See the full events calendar on <a href=\"https://library.example/events\">our website</a>.</p>\
<p>Thank you for reading, and see you soon.<br>The library team</p>\
</body></html>";

/// A `200` with `Content-Type`, `Content-Length`, extra header lines (each ending `\r\n`)
/// and `body`.
pub fn response(ctype: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// An origin answering every request with the same bytes.
pub async fn serving(answer: Vec<u8>) -> Origin {
    Origin::respond(move |_| answer.clone()).await
}

/// An origin answering every request with a non-cacheable `text/html` page.
pub async fn page(body: &str) -> Origin {
    serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: no-store\r\n",
        body.as_bytes(),
    ))
    .await
}

/// The running pipeline's counters.
pub fn stats(s: &Sluice) -> StatsSnapshot {
    s.running
        .as_ref()
        .expect("sluice is running")
        .proxy
        .pipeline
        .stats()
}

/// The `X-Sluice-Verdict` header, or "" when absent.
pub fn verdict(resp: &common::Response) -> String {
    resp.header("x-sluice-verdict").unwrap_or("").to_string()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}
