//! Request framing and smuggling on the client side (RFC 9112 §6, §11): every ambiguous or
//! malformed request gets a 4xx and a closed connection, reaches no origin, and leaves the
//! proxy serving the next client normally.

use crate::common;

use common::attacks::{attack, request_attacks};
use common::{config, get, start, Origin};
use tokio::net::TcpListener;

#[tokio::test]
async fn every_ambiguous_or_malformed_request_is_refused_and_never_forwarded() {
    let origin = Origin::respond(|req| common::ok(req.target())).await;
    let sluice = start(config()).await;
    let mut failures = Vec::new();
    let cases = request_attacks(&origin.url("/attack"), &origin.addr().to_string());
    for (i, (name, want, bytes)) in cases.iter().enumerate() {
        let before = origin.requests().len();
        let got = attack(sluice.addr, bytes).await;
        let forwarded = origin.requests().len() - before;
        if got.status != Some(*want) || !got.closed || forwarded != 0 {
            failures.push(format!(
                "{name}: want {want} + close + nothing forwarded, got {got:?}, forwarded {forwarded}"
            ));
        }
        // The next client on a new connection is served normally.
        let ok = sluice.fetch(&origin.url(&format!("/after-{i}"))).await;
        if ok.status() != 200 || ok.text() != format!("/after-{i}") {
            failures.push(format!("{name}: the next request got {}", ok.status()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A second origin on 127.0.0.2, which the proxy's destination guard refuses: a request
/// smuggled to it past the proxy's checks would show up in its log.
async fn guarded_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    Origin::serve(
        listener,
        |s| async move { Some(Box::new(s) as Box<dyn common::origin::Io>) },
        |mut conn| async move {
            while let Some(req) = conn.read_request().await {
                if conn.write(common::ok(req.target())).await.is_err() {
                    return;
                }
            }
        },
    )
}

async fn smuggling_setup() -> (Origin, Origin, common::Sluice) {
    let front =
        Origin::respond(|req| common::ok(&format!("{} {}", req.target(), req.body.len()))).await;
    let hidden = guarded_origin().await;
    let mut cfg = config();
    cfg.upstream.allow = vec!["127.0.0.1/32".parse().expect("CIDR")];
    (front, hidden, start(cfg).await)
}

#[tokio::test]
async fn a_request_hidden_in_a_content_length_body_stays_body_bytes() {
    let (front, hidden, sluice) = smuggling_setup().await;
    let inner = get(&hidden.url("/smuggled"));
    for method in ["POST", "GET", "PUT"] {
        let mut c = sluice.client().await;
        let r = c
            .exchange(common::request(method, &front.url("/front"), &[], &inner))
            .await;
        assert_eq!(
            (r.status(), r.text()),
            (200, format!("/front {}", inner.len())),
            "{method}"
        );
        // The connection is in sync: the next answer is for the next request.
        let r = c.exchange(get(&front.url("/next"))).await;
        assert_eq!(r.text(), "/next 0", "{method}");
    }
    let seen = front.requests();
    assert_eq!(seen.len(), 6);
    assert!(seen
        .iter()
        .filter(|r| r.target() == "/front")
        .all(|r| r.body == inner));
    assert_eq!(
        hidden.requests().len(),
        0,
        "the hidden request reached its origin"
    );
}

#[tokio::test]
async fn a_request_hidden_in_a_chunked_body_stays_body_bytes() {
    let (front, hidden, sluice) = smuggling_setup().await;
    let inner = get(&hidden.url("/smuggled"));
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        front.url("/front"),
        front.addr(),
        inner.len()
    )
    .into_bytes();
    req.extend(&inner);
    req.extend(b"\r\n0\r\n\r\n");
    let mut c = sluice.client().await;
    let r = c.exchange(&req).await;
    assert_eq!(r.text(), format!("/front {}", inner.len()));
    assert_eq!(c.exchange(get(&front.url("/next"))).await.text(), "/next 0");
    assert_eq!(front.requests()[0].body, inner);
    assert_eq!(hidden.requests().len(), 0);
}

#[tokio::test]
async fn nothing_pipelined_behind_an_ambiguous_request_is_processed() {
    let (front, hidden, sluice) = smuggling_setup().await;
    let inner = get(&hidden.url("/smuggled"));
    let next = get(&front.url("/pipelined"));
    let heads: [&[u8]; 4] = [
        // CL says the body is 4 bytes, chunked says it is empty: either way a desync.
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"Content-Length: 0\r\nContent-Length: 30\r\n\r\n",
        b"Transfer-Encoding: chunked\n\n0\n\n",
    ];
    for head in heads {
        let mut bytes = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\n",
            front.url("/front"),
            front.addr()
        )
        .into_bytes();
        bytes.extend(head);
        bytes.extend(&inner);
        bytes.extend(&next);
        let got = attack(sluice.addr, &bytes).await;
        assert_eq!(
            (got.status, got.closed),
            (Some(400), true),
            "{}",
            String::from_utf8_lossy(head)
        );
    }
    assert_eq!(front.requests().len(), 0, "{:?}", front.requests());
    assert_eq!(hidden.requests().len(), 0);
    assert_eq!(sluice.fetch(&front.url("/ok")).await.status(), 200);
}

/// A request sluice answers itself (OPTIONS with `Max-Forwards: 0`) without reading its
/// body: the body is skipped by its framing, never parsed as the next request.
#[tokio::test]
async fn the_unread_body_of_a_request_answered_locally_stays_body_bytes() {
    let origin = Origin::ok("fine").await;
    let sluice = common::start_default().await;
    let mut c = sluice.client().await;
    let hidden = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/hidden"),
        origin.addr()
    );
    let mut batch = common::request(
        "OPTIONS",
        &origin.url("/o"),
        &["Max-Forwards: 0"],
        hidden.as_bytes(),
    );
    batch.extend(get(&origin.url("/after")));
    c.send(batch).await;
    let r = c.read_response().await;
    assert_eq!((r.status(), r.header("allow").is_some()), (200, true));
    let r = c.read_response().await;
    assert_eq!((r.status(), r.text()), (200, "fine".to_string()));
    let seen: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| r.target().to_string())
        .collect();
    assert_eq!(seen, ["/after"]);
}
