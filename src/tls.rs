//! The one TLS client setup of the binary: rustls with the ring provider and the system's trusted CAs, for the
//! external MQTT broker and webhooks alike (e-mail goes through lettre, built with the same provider).

use std::sync::Arc;

pub fn client_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A malformed system certificate is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        anyhow::bail!("no trusted CA certificates found on this system");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
