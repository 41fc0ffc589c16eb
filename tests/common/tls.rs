//! A throwaway certificate authority and TLS origins for `https://` tests.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::origin::{Conn, Io, Origin};

/// A CA certificate (PEM, for `upstream.ca_file`) and a server certificate it signed.
pub struct TestCa {
    /// The CA certificate in PEM.
    pub ca_pem: String,
    /// A TLS acceptor presenting the server certificate.
    pub acceptor: TlsAcceptor,
}

/// Makes a CA and a server certificate for `names` (DNS names or IP literals).
pub fn test_ca(names: &[&str]) -> TestCa {
    test_ca_with(names, |_| {})
}

/// [`test_ca`], with `edit` applied to the server certificate's parameters before it is
/// signed (validity dates, for one).
pub fn test_ca_with(names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> TestCa {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sluice test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");

    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut leaf = CertificateParams::new(names).expect("server params");
    leaf.distinguished_name
        .push(DnType::CommonName, "sluice test origin");
    edit(&mut leaf);
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server TLS config");
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    TestCa {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(server)),
    }
}

/// A raw origin on 127.0.0.1 that speaks TLS with `ca`'s server certificate; `script` runs
/// on the decrypted stream. Connections whose handshake fails are still counted.
pub async fn tls_origin<F, Fut>(ca: &TestCa, script: F) -> Origin
where
    F: Fn(Conn) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let acceptor = ca.acceptor.clone();
    Origin::serve(
        listener,
        move |tcp| {
            let acceptor = acceptor.clone();
            async move {
                match acceptor.accept(tcp).await {
                    Ok(s) => Some(Box::new(s) as Box<dyn Io>),
                    Err(_) => None,
                }
            }
        },
        script,
    )
}
