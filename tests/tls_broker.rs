//! The worker over TLS to a broker that only speaks TLS.
//!
//! Neither broker here terminates TLS itself, so the test puts a TLS-terminating proxy in front
//! of a Tansu process and has Tansu advertise the proxy's address: every connection a client
//! makes, bootstrap and broker alike, is TLS, with a server certificate signed by a certificate
//! authority made for the test. The worker, configured only through `kafka.client`
//! (`security.protocol = "SSL"`, `ssl.ca.location`), must score every record; a plaintext
//! client and a client trusting another authority must not get through.
//!
//! Needs Tansu (`scripts/setup.sh --with-tansu`); without it the test fails saying so.

use credit_testkit::reliability;

use credit_core::decision::OwnedDecision;
use credit_testkit::scenarios::{
    applicant_records, scenario_config, write_test_model, RunningWorker, Topics,
};
use credit_worker::config::Config;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reliability::{free_address, log_dir, Storage, Tansu};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

const RECORDS: usize = 500;
const PARTITIONS: i32 = 3;

/// A key pair on P-256 (fast to generate, accepted by every TLS 1.2/1.3 client).
fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(common_name: &str) -> openssl::x509::X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", common_name).unwrap();
    name.build()
}

fn builder(serial: u32, subject: &str, key: &PKey<Private>) -> X509Builder {
    let mut builder = X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
    builder.set_serial_number(&serial).unwrap();
    builder.set_subject_name(&name(subject)).unwrap();
    builder.set_pubkey(key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    builder
}

/// A self-signed certificate authority.
fn authority(common_name: &str) -> (X509, PKey<Private>) {
    let key = key();
    let mut builder = builder(1, common_name, &key);
    builder.set_issuer_name(&name(common_name)).unwrap();
    builder
        .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    builder
        .append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    (builder.build(), key)
}

/// A server certificate for 127.0.0.1 signed by `ca`.
fn server_certificate(ca: &X509, ca_key: &PKey<Private>) -> (X509, PKey<Private>) {
    let key = key();
    let mut builder = builder(2, "127.0.0.1", &key);
    builder.set_issuer_name(ca.subject_name()).unwrap();
    let names = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&builder.x509v3_context(Some(ca), None))
        .unwrap();
    builder.append_extension(names).unwrap();
    builder
        .append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    builder.sign(ca_key, MessageDigest::sha256()).unwrap();
    (builder.build(), key)
}

/// Accepts TLS on `listen` and forwards the plaintext to `upstream`, one task per connection.
async fn tls_proxy(listener: tokio::net::TcpListener, acceptor: SslAcceptor, upstream: SocketAddr) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(ssl) = Ssl::new(acceptor.context()) else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, client) else {
                return;
            };
            // A client that does not speak TLS, or does not trust the certificate, ends here.
            if Pin::new(&mut tls).accept().await.is_err() {
                return;
            }
            if let Ok(mut broker) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            }
        });
    }
}

/// Client settings for TLS trusting the CA file at `ca`.
fn tls_client(bootstrap: &str, ca: &Path) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca.display().to_string());
    config
}

/// Whether a client with `config` can read the cluster's metadata within a few seconds.
fn reaches_the_broker(config: &ClientConfig) -> bool {
    let consumer: BaseConsumer = config.create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .is_ok()
}

#[test]
fn the_worker_scores_every_record_over_tls_and_plaintext_or_untrusted_clients_are_refused() {
    let runtime = reliability::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_key) = authority("credit-risk test CA");
    let (certificate, key) = server_certificate(&ca, &ca_key);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.to_pem().unwrap()).unwrap();
    let (other_ca, _) = authority("some other CA");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca.to_pem().unwrap()).unwrap();

    // Tansu on a private port; clients are told to use the proxy's.
    let logs = log_dir("tls").unwrap();
    let (broker_address, proxy_address) = (free_address().unwrap(), free_address().unwrap());
    let _tansu = Tansu::start_advertising(Storage::Memory, &logs, broker_address, proxy_address)
        .unwrap_or_else(|failure| panic!("{failure}"));
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_private_key(&key).unwrap();
    acceptor.set_certificate(&certificate).unwrap();
    let acceptor = acceptor.build();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(proxy_address))
        .unwrap();
    runtime.spawn(tls_proxy(listener, acceptor, broker_address));
    let bootstrap = proxy_address.to_string();

    // Only TLS clients that trust the authority get through.
    assert!(
        reaches_the_broker(&tls_client(&bootstrap, &ca_file)),
        "a TLS client trusting the CA reaches the broker"
    );
    let mut plaintext = ClientConfig::new();
    plaintext.set("bootstrap.servers", &bootstrap);
    assert!(
        !reaches_the_broker(&plaintext),
        "a plaintext client must not get through"
    );
    assert!(
        !reaches_the_broker(&tls_client(&bootstrap, &other_ca_file)),
        "a client trusting another CA must reject the broker's certificate"
    );

    let topics = Topics::unique("tls");
    let model_dir = dir.path().join("model");
    let version = write_test_model(&model_dir, 0.5, 7).unwrap();
    let mut config: Config = scenario_config(&bootstrap, &topics, &model_dir).unwrap();
    for (key, value) in [
        ("security.protocol", "SSL".to_owned()),
        ("ssl.ca.location", ca_file.display().to_string()),
    ] {
        config.kafka.client.insert(key.to_owned(), value);
    }
    config.validate().unwrap();

    runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> =
            tls_client(&bootstrap, &ca_file).create().unwrap();
        let new_topics: Vec<NewTopic<'_>> = [&topics.input, &topics.output, &topics.dead_letter]
            .iter()
            .map(|name| NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1)))
            .collect();
        for result in admin
            .create_topics(&new_topics, &AdminOptions::new())
            .await
            .unwrap()
        {
            result.unwrap();
        }

        let producer: FutureProducer = tls_client(&bootstrap, &ca_file).create().unwrap();
        let records = applicant_records(RECORDS).unwrap();
        for record in &records {
            let key = record.key.as_deref().unwrap();
            let payload = record.payload.as_deref().unwrap();
            producer
                .send(
                    FutureRecord::to(&topics.input).key(key).payload(payload),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
        }

        let worker = RunningWorker::start(config).await.unwrap();
        worker.wait_ready(Duration::from_secs(60)).await.unwrap();

        let reader: BaseConsumer = tls_client(&bootstrap, &ca_file)
            .set("group.id", format!("{}-reader", topics.group))
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment
                .add_partition_offset(&topics.output, partition, Offset::Beginning)
                .unwrap();
        }
        reader.assign(&assignment).unwrap();
        let mut answered = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while answered.len() < RECORDS && Instant::now() < deadline {
            let polled = tokio::task::block_in_place(|| reader.poll(Duration::from_millis(200)));
            if let Some(Ok(message)) = polled {
                let decision = OwnedDecision::from_json(message.payload().unwrap()).unwrap();
                assert_eq!(decision.model_version, version);
                answered.insert(decision.application_id);
            }
        }
        let report = worker.stop().await.unwrap();
        assert_eq!(
            answered.len(),
            RECORDS,
            "every record scored over TLS ({} answered)",
            answered.len()
        );
        println!(
            "TLS: {RECORDS} records produced, scored and read back through the TLS proxy; \
             worker report {report:?}"
        );
    });
}
