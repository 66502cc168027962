//! An RSA key pair made for the test run, so no private key is committed to the repository.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use std::sync::OnceLock;

pub struct TestKey {
    /// PKCS#8 PEM, as `GITHUB_PRIVATE_KEY` would hold it.
    pub private_pem: String,
    /// PKCS#1 `RSAPublicKey` DER, what the fake checks JWT signatures with.
    pub public_der: Vec<u8>,
}

impl TestKey {
    pub fn generate() -> TestKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("generating an RSA key");
        let pkcs8 = pair.as_der().expect("PKCS#8 encoding");
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let mut private_pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            private_pem.push_str(std::str::from_utf8(line).unwrap());
            private_pem.push('\n');
        }
        private_pem.push_str("-----END PRIVATE KEY-----\n");
        TestKey { private_pem, public_der: pair.public_key().as_ref().to_vec() }
    }

    /// One key per test binary: generating is cheap, but there is no reason to repeat it.
    pub fn shared() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(TestKey::generate)
    }
}
