//! The security matrix: a 3-broker cluster with mutual TLS between brokers, etcd over
//! TLS, required authentication and ACLs. Every RPC of every service is called with each
//! kind of credential, and each answer must be the expected one: refused before any
//! service without valid credentials, `PERMISSION_DENIED` for a principal without the ACL,
//! served for one with it, and replication served only to brokers. Then the attacks the
//! issue names: a forged `ReplicaFetch` from a client principal (denied, high watermark
//! unmoved) and a producer id forged from another principal's (denied, the owner's batch
//! still appended, not dropped as a duplicate).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/jwt.rs"]
mod jwt;
#[path = "common/pki.rs"]
mod pki;

use std::path::Path;
use std::time::Duration;

use shale::client::Client;
use shale::client::tls::TlsOptions;
use shale::proto::pb;
use tonic::Code;

use common::wait_until;

const ISSUER: &str = "https://issuer.shale.test";
const ALICE: &str = "alice-0123456789abcdef";
const NOBODY: &str = "nobody-0123456789abcdef";
const BOB: &str = "bob-0123456789abcdef";

macro_rules! rpcs {
    ($($rpc:ident),* $(,)?) => {
        /// Every RPC of every service, in an order in which a permitted caller's calls
        /// succeed (its topic is created first and deleted last; it joins its group before
        /// committing).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Rpc {
            $($rpc,)*
        }

        const RPCS: &[Rpc] = &[$(Rpc::$rpc,)*];
    };
}

rpcs!(
    CreateTopic,
    DescribeTopic,
    AlterTopicConfig,
    ListTopics,
    DescribeCluster,
    GetMetadata,
    WhoAmI,
    Produce,
    ProduceStream,
    Fetch,
    FetchMany,
    ListOffsets,
    InitProducerId,
    Heartbeat,
    CommitOffsets,
    FetchOffsets,
    ResetOffsets,
    DeleteGroup,
    ListGroups,
    DescribeGroup,
    InitTransactions,
    SendOffsets,
    DescribeTransaction,
    ListTransactions,
    EndTransaction,
    AbortTransaction,
    CreateAcls,
    DescribeAcls,
    DeleteAcls,
    ReplicaFetch,
    OffsetForLeaderEpoch,
    WriteTxnMarker,
    AddPartitionToTxn,
    DeleteRecords,
    DeleteTopic,
);

/// One caller: a label, its client, and what it learned (its group membership, its
/// transactional producer id and epoch).
struct Caller {
    label: &'static str,
    client: Client,
    member: Option<(String, i32)>,
    txn: Option<(i64, i32)>,
}

/// How a call was refused: with a status from a broker, or at the connection (the TLS
/// handshake failed, so no service ever saw the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Status(Code),
    Connection,
}

/// A status as a refusal: one without Shale's error details and with a transport code
/// (tonic says "transport error", Unknown or Cancelled, or Unavailable) is the connection's.
fn code(s: tonic::Status) -> Refused {
    let transport = matches!(s.code(), Code::Unknown | Code::Cancelled | Code::Unavailable);
    if transport && s.details().is_empty() {
        Refused::Connection
    } else {
        Refused::Status(s.code())
    }
}

/// The answer's code; errors carried in a stream's messages count as the stream's.
fn in_band(e: &Option<pb::Error>) -> Result<(), Refused> {
    match e {
        None => Ok(()),
        Some(e) => Err(Refused::Status(Code::from(e.code))),
    }
}

/// Calls `rpc` at `addr` (the leader of topic `m`) as `c`; `Ok` or the refusal's code.
async fn call(rpc: Rpc, c: &mut Caller, addr: &str, epoch: i32) -> Result<(), Refused> {
    let own_topic = format!("m-{}-t", c.label);
    let group = format!("m-{}-g", c.label);
    let empty_group = format!("m-{}-e", c.label);
    let cl = &c.client;
    let mut admin = cl.admin_rpc_at(addr).unwrap();
    let mut log = cl.log_rpc(addr).unwrap();
    let channel = || cl.channel(addr).unwrap();
    let mut groups = pb::groups_client::GroupsClient::with_interceptor(channel(), cl.credentials());
    let mut replica =
        pb::replica_client::ReplicaClient::with_interceptor(channel(), cl.credentials());
    let mut txns =
        pb::transactions_client::TransactionsClient::with_interceptor(channel(), cl.credentials());
    let txn_id = format!("m-{}-x", c.label);
    let (pid, pepoch) = c.txn.unwrap_or((42, 0));
    let record = || pb::ProduceRequest {
        topic: "m".into(),
        partition: 0,
        acks: pb::Acks::Leader as i32,
        payload: Some(pb::produce_request::Payload::Records(pb::Records {
            records: vec![pb::Record { value: Some(b"v".to_vec().into()), ..Default::default() }],
            ..Default::default()
        })),
        ..Default::default()
    };
    match rpc {
        Rpc::CreateTopic => admin
            .create_topic(pb::CreateTopicRequest {
                name: own_topic,
                partitions: 1,
                replication_factor: 1,
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::DescribeTopic => admin
            .describe_topic(pb::DescribeTopicRequest { name: "m".into() })
            .await
            .map(drop)
            .map_err(code),
        Rpc::AlterTopicConfig => admin
            .alter_topic_config(pb::AlterTopicConfigRequest {
                name: own_topic,
                set: [("retention.ms".to_string(), "86400000".to_string())].into(),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::ListTopics => {
            admin.list_topics(pb::ListTopicsRequest {}).await.map(drop).map_err(code)
        }
        Rpc::DescribeCluster => {
            admin.describe_cluster(pb::DescribeClusterRequest {}).await.map(drop).map_err(code)
        }
        Rpc::GetMetadata => admin
            .get_metadata(pb::GetMetadataRequest { topics: vec!["m".into()] })
            .await
            .map(drop)
            .map_err(code),
        Rpc::WhoAmI => admin.who_am_i(pb::WhoAmIRequest {}).await.map(drop).map_err(code),
        Rpc::Produce => log.produce(record()).await.map(drop).map_err(code),
        Rpc::ProduceStream => {
            let requests = tokio_stream::iter(vec![record()]);
            let mut answers = log.produce_stream(requests).await.map_err(code)?.into_inner();
            match answers.message().await.map_err(code)? {
                Some(a) => in_band(&a.error),
                None => panic!("{}: ProduceStream ended without an answer", c.label),
            }
        }
        Rpc::Fetch => {
            let request = pb::FetchRequest {
                topic: "m".into(),
                partition: 0,
                offset: 0,
                stop_at_end: true,
                ..Default::default()
            };
            let mut stream = log.fetch(request).await.map_err(code)?.into_inner();
            stream.message().await.map(drop).map_err(code)
        }
        Rpc::FetchMany => {
            let add = pb::FetchPosition { topic: "m".into(), partition: 0, offset: 0, tag: 1 };
            let request =
                pb::FetchManyRequest { add: vec![add], stop_at_end: true, ..Default::default() };
            let requests = tokio_stream::iter(vec![request]);
            let mut answers = log.fetch_many(requests).await.map_err(code)?.into_inner();
            match answers.message().await.map_err(code)? {
                Some(a) => in_band(&a.error),
                None => panic!("{}: FetchMany ended without an answer", c.label),
            }
        }
        Rpc::ListOffsets => log
            .list_offsets(pb::ListOffsetsRequest { topic: "m".into(), partition: 0, spec: None })
            .await
            .map(drop)
            .map_err(code),
        Rpc::InitProducerId => {
            log.init_producer_id(pb::InitProducerIdRequest {}).await.map(drop).map_err(code)
        }
        Rpc::Heartbeat => {
            let joined = groups
                .heartbeat(pb::HeartbeatRequest {
                    group: group.clone(),
                    member_epoch: 0,
                    topics: vec!["m".into()],
                    ..Default::default()
                })
                .await
                .map_err(code)?
                .into_inner();
            c.member = Some((joined.member_id, joined.member_epoch));
            Ok(())
        }
        Rpc::InitTransactions => {
            let req = pb::InitTransactionsRequest {
                transactional_id: txn_id,
                transaction_timeout_ms: 60_000,
            };
            let got = txns.init_transactions(req).await.map_err(code)?.into_inner();
            c.txn = Some((got.producer_id, got.producer_epoch));
            Ok(())
        }
        // Offsets of a group with no members: the transaction opens with them.
        Rpc::SendOffsets => txns
            .send_offsets(pb::SendOffsetsRequest {
                transactional_id: txn_id,
                producer_id: pid,
                producer_epoch: pepoch,
                group: empty_group.clone(),
                offsets: vec![pb::OffsetCommit {
                    topic: "m".into(),
                    partition: 0,
                    offset: 0,
                    metadata: String::new(),
                }],
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::DescribeTransaction => txns
            .describe_transaction(pb::DescribeTransactionRequest { transactional_id: txn_id })
            .await
            .map(drop)
            .map_err(code),
        Rpc::ListTransactions => {
            let req = pb::ListTransactionsRequest::default();
            txns.list_transactions(req).await.map(drop).map_err(code)
        }
        Rpc::EndTransaction => txns
            .end_transaction(pb::EndTransactionRequest {
                transactional_id: txn_id,
                producer_id: pid,
                producer_epoch: pepoch,
                commit: true,
            })
            .await
            .map(drop)
            .map_err(code),
        // Committed just before: past authorization, the coordinator has nothing to abort.
        Rpc::AbortTransaction => txns
            .abort_transaction(pb::AbortTransactionRequest { transactional_id: txn_id })
            .await
            .map(drop)
            .map_err(code),
        Rpc::CommitOffsets => {
            let (member_id, member_epoch) = c.member.clone().unwrap_or_default();
            groups
                .commit_offsets(pb::CommitOffsetsRequest {
                    group,
                    member_id,
                    member_epoch,
                    offsets: vec![pb::OffsetCommit {
                        topic: "m".into(),
                        partition: 0,
                        offset: 0,
                        metadata: String::new(),
                    }],
                })
                .await
                .map(drop)
                .map_err(code)
        }
        Rpc::FetchOffsets => groups
            .fetch_offsets(pb::FetchOffsetsRequest {
                group,
                topics: vec!["m".into()],
                require_stable: false,
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::ResetOffsets => groups
            .reset_offsets(pb::ResetOffsetsRequest {
                group: empty_group,
                topic: "m".into(),
                to: Some(pb::reset_offsets_request::To::Earliest(true)),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::DeleteGroup => groups
            .delete_group(pb::DeleteGroupRequest { group: empty_group })
            .await
            .map(drop)
            .map_err(code),
        Rpc::ListGroups => {
            groups.list_groups(pb::ListGroupsRequest {}).await.map(drop).map_err(code)
        }
        Rpc::DescribeGroup => {
            groups.describe_group(pb::DescribeGroupRequest { group }).await.map(drop).map_err(code)
        }
        Rpc::CreateAcls => admin
            .create_acls(pb::CreateAclsRequest { bindings: vec![extra_binding(c.label)] })
            .await
            .map(drop)
            .map_err(code),
        Rpc::DescribeAcls => admin
            .describe_acls(pb::DescribeAclsRequest { filter: None })
            .await
            .map(drop)
            .map_err(code),
        Rpc::DeleteAcls => admin
            .delete_acls(pb::DeleteAclsRequest {
                filter: Some(pb::AclFilter {
                    principal: extra_binding(c.label).principal,
                    ..Default::default()
                }),
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::ReplicaFetch => {
            // As an unknown replica (id 99): a broker is told so in the stream, moving
            // nothing; anyone else must not get that far.
            let request = pb::ReplicaFetchRequest {
                topic: "m".into(),
                partition: 0,
                replica_id: 99,
                fetch_offset: 0,
                ..Default::default()
            };
            let mut stream =
                replica.replica_fetch(tokio_stream::iter(vec![request])).await.map_err(code)?;
            stream.get_mut().message().await.map(drop).map_err(code)
        }
        Rpc::OffsetForLeaderEpoch => replica
            .offset_for_leader_epoch(pb::OffsetForLeaderEpochRequest {
                topic: "m".into(),
                partition: 0,
                leader_epoch: epoch,
                current_leader_epoch: epoch,
            })
            .await
            .map(drop)
            .map_err(code),
        // A marker that ends nothing (producer 42 has no transaction here).
        Rpc::WriteTxnMarker => replica
            .write_txn_marker(pb::WriteTxnMarkerRequest {
                topic: "m".into(),
                partition: 0,
                producer_id: 42,
                producer_epoch: 0,
                commit: false,
                coordinator_epoch: 0,
                tv2: true,
            })
            .await
            .map(drop)
            .map_err(code),
        // An id with no transaction: past authorization, the coordinator says so.
        Rpc::AddPartitionToTxn => replica
            .add_partition_to_txn(pb::AddPartitionToTxnRequest {
                transactional_id: "no-such-id".into(),
                producer_id: 42,
                producer_epoch: 0,
                topic: "m".into(),
                partition: 0,
                add: false,
            })
            .await
            .map(drop)
            .map_err(code),
        // Below offset 0: nothing goes, but Delete on the topic is checked all the same.
        Rpc::DeleteRecords => admin
            .delete_records(pb::DeleteRecordsRequest {
                topic: "m".into(),
                partition: 0,
                offset: 0,
                timeout_ms: 10_000,
            })
            .await
            .map(drop)
            .map_err(code),
        Rpc::DeleteTopic => admin
            .delete_topic(pb::DeleteTopicRequest { name: own_topic })
            .await
            .map(drop)
            .map_err(code),
    }
}

/// A binding each permitted caller creates and deletes again.
fn extra_binding(label: &str) -> pb::AclBinding {
    pb::AclBinding {
        principal: format!("User:extra-{label}"),
        resource_type: "topic".into(),
        pattern_type: "literal".into(),
        resource_name: "x".into(),
        operation: "read".into(),
        permission: "allow".into(),
    }
}

/// What `label` must get for `rpc`.
fn expected(label: &str, rpc: Rpc) -> Result<(), Refused> {
    let replication = matches!(
        rpc,
        Rpc::ReplicaFetch
            | Rpc::OffsetForLeaderEpoch
            | Rpc::WriteTxnMarker
            | Rpc::AddPartitionToTxn
    );
    match label {
        "none" | "expired-token" | "wrong-audience" => Err(Refused::Status(Code::Unauthenticated)),
        // The TLS handshake fails: no call reaches a service.
        "untrusted-cert" => Err(Refused::Connection),
        // Listing is filtered, not refused; WhoAmI is anyone's.
        "no-acl"
            if matches!(
                rpc,
                Rpc::ListTopics | Rpc::ListGroups | Rpc::ListTransactions | Rpc::WhoAmI
            ) =>
        {
            Ok(())
        }
        "no-acl" => Err(Refused::Status(Code::PermissionDenied)),
        "with-acl" if replication => Err(Refused::Status(Code::PermissionDenied)),
        // Authorized, and answered by the coordinator: the id has no producer.
        "broker" if rpc == Rpc::AddPartitionToTxn => Err(Refused::Status(Code::FailedPrecondition)),
        "with-acl" | "broker" if rpc == Rpc::AbortTransaction => {
            Err(Refused::Status(Code::InvalidArgument))
        }
        "with-acl" | "broker" => Ok(()),
        other => panic!("unknown caller {other}"),
    }
}

/// The broker settings file: TLS with optional client certificates, required
/// authentication (token file, JWTs from a JWKS file, certificates), ACLs on.
fn settings_file(dir: &Path, ca: &Path, broker: &pki::Files, jwks: &Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("User:alice {ALICE}\nUser:nobody {NOBODY}\nUser:bob {BOB}\n"))
        .unwrap();
    let path = dir.join("shale.toml");
    let p = |p: &Path| p.to_string_lossy().to_string();
    std::fs::write(
        &path,
        format!(
            r#"
[tls]
cert_file = "{cert}"
key_file = "{key}"
ca_file = "{ca}"
client_auth = "optional"

[auth]
require = true
token_file = "{tokens}"
broker_principals = ["User:broker"]

[auth.jwt]
issuer = "{ISSUER}"
audience = "shale"
jwks_file = "{jwks}"

[acl]
super_users = ["User:admin"]
"#,
            cert = p(&broker.cert),
            key = p(&broker.key),
            ca = p(ca),
            tokens = p(&tokens),
            jwks = p(jwks),
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn every_rpc_answers_each_credential_as_the_acls_say() {
    let pki_dir = tempfile::tempdir().unwrap();
    let dir = pki_dir.path();
    let ca = pki::Ca::new("cluster CA");
    let ca_file = ca.write(&dir.join("ca.crt"));
    let broker = ca.write_leaf(dir, "broker", "broker");
    let etcd_files = ca.write_leaf(dir, "etcd", "etcd");
    let admin_files = ca.write_leaf(dir, "admin", "admin");
    let rogue = pki::Ca::new("rogue CA").write_leaf(dir, "mallory", "admin");
    let (signer, jwk) = jwt::es256_key("k1");
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let config = settings_file(dir, &ca_file, &broker, &jwks);

    let etcd = cluster::EtcdServer::start_tls(&ca_file, &etcd_files.cert, &etcd_files.key);
    let p = |p: &Path| p.to_string_lossy().to_string();
    let (config, ca_path, cert, key) = (p(&config), p(&ca_file), p(&broker.cert), p(&broker.key));
    let args = [
        "--config",
        &config,
        "--etcd-tls-ca",
        &ca_path,
        "--etcd-tls-cert",
        &cert,
        "--etcd-tls-key",
        &key,
    ];
    let c = cluster::Cluster::start_on(etcd, 3, "secure", &args);
    let all: Vec<String> = (0..3).map(|i| c.addr(i)).collect();
    let tls = |identity: Option<&pki::Files>| {
        TlsOptions::from_files(
            Some(&ca_file),
            identity.map(|f| f.cert.as_path()),
            identity.map(|f| f.key.as_path()),
        )
        .unwrap()
    };
    let client = |identity: Option<&pki::Files>, token: Option<&str>| {
        let b = Client::builder(&all.join(",")).tls(tls(identity));
        match token {
            Some(t) => b.token(t).unwrap().build().unwrap(),
            None => b.build().unwrap(),
        }
    };

    // The super-user sets the stage: topic m (RF 3), alice's ACLs, bob's Write on m.
    let admin = client(Some(&admin_files), None);
    wait_until(Duration::from_secs(30), "three live brokers over TLS", || {
        let admin = admin.clone();
        async move { admin.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == 3) }
    })
    .await;
    admin.admin().create_topic("m", 1, 3, Default::default()).await.unwrap();
    let allow = |principal: &str, kind: &str, pattern: &str, name: &str, op: &str| pb::AclBinding {
        principal: principal.into(),
        resource_type: kind.into(),
        pattern_type: pattern.into(),
        resource_name: name.into(),
        operation: op.into(),
        permission: "allow".into(),
    };
    admin
        .admin()
        .create_acls(vec![
            allow("User:alice", "topic", "prefixed", "m", "all"),
            allow("User:alice", "group", "prefixed", "m-", "all"),
            allow("User:alice", "cluster", "literal", "cluster", "all"),
            allow("User:alice", "transactional_id", "prefixed", "m-", "all"),
            allow("User:bob", "topic", "literal", "m", "write"),
        ])
        .await
        .unwrap();
    let (leader, epoch) = wait_for_leader(&admin).await;
    let addr = c.addr(leader as usize - 1);

    let mut callers = vec![
        Caller { label: "none", client: client(None, None), member: None, txn: None },
        Caller {
            label: "untrusted-cert",
            client: client(Some(&rogue), None),
            member: None,
            txn: None,
        },
        Caller {
            label: "expired-token",
            client: client(None, Some(&jwt::token(&signer, "k1", ISSUER, "shale", "alice", -600))),
            member: None,
            txn: None,
        },
        Caller {
            label: "wrong-audience",
            client: client(None, Some(&jwt::token(&signer, "k1", ISSUER, "kafka", "alice", 600))),
            member: None,
            txn: None,
        },
        Caller { label: "no-acl", client: client(None, Some(NOBODY)), member: None, txn: None },
        Caller { label: "with-acl", client: client(None, Some(ALICE)), member: None, txn: None },
        Caller { label: "broker", client: client(Some(&broker), None), member: None, txn: None },
    ];
    let mut unexpected = Vec::new();
    let mut cells = 0;
    for caller in &mut callers {
        for &rpc in RPCS {
            let got = call(rpc, caller, &addr, epoch).await;
            cells += 1;
            let want = expected(caller.label, rpc);
            if got != want {
                unexpected
                    .push(format!("{} {rpc:?}: got {got:?}, expected {want:?}", caller.label));
            }
        }
    }
    println!(
        "security matrix: {cells} cells ({} RPCs x {} credentials)",
        RPCS.len(),
        callers.len()
    );
    assert!(unexpected.is_empty(), "unexpected answers:\n{}", unexpected.join("\n"));
    assert_eq!(cells, 245);

    // A client whose certificate the brokers do not trust is told so in one line.
    let e = client(Some(&rogue), None).admin().who_am_i().await.unwrap_err();
    println!("untrusted certificate: {e}");
    let said = e.to_string();
    assert!(said.contains("refused the TLS handshake") && said.contains("UnknownCA"), "{said}");

    // Listing shows only what the caller may describe.
    let nobody = client(None, Some(NOBODY));
    assert!(nobody.admin().list_topics().await.unwrap().is_empty(), "no-acl sees topics");
    let alice = client(None, Some(ALICE));
    let seen: Vec<String> =
        alice.admin().list_topics().await.unwrap().into_iter().map(|t| t.name).collect();
    assert!(seen.contains(&"m".to_string()), "alice sees {seen:?}");

    on_behalf_of_is_believed_only_from_brokers(&nobody, &addr).await;
    patterns_assign_only_readable_topics(&admin, &client(None, Some(BOB)), &addr).await;
    forged_replica_fetch_moves_nothing(&alice, &admin, &addr).await;
    forged_producer_id_is_refused(&alice, &client(None, Some(BOB)), &addr).await;
}

/// The leader of `m`/0 and its epoch, once it has one and all three replicas are in sync.
async fn wait_for_leader(admin: &Client) -> (i32, i32) {
    let found = std::sync::Arc::new(std::sync::Mutex::new((-1, -1)));
    wait_until(Duration::from_secs(30), "m/0 led with three replicas in sync", || {
        let (admin, found) = (admin.clone(), found.clone());
        async move {
            let Ok(md) = admin.admin().metadata(&["m".to_string()]).await else { return false };
            let p = &md.topics[0].partitions[0];
            *found.lock().unwrap() = (p.leader_id, p.leader_epoch);
            p.leader_id > 0 && p.isr.len() == 3
        }
    })
    .await;
    *found.lock().unwrap()
}

/// Bob may read topic `m` but not `m2`; subscribed to the pattern `m*`, his member is
/// assigned `m`'s partition and never `m2`'s.
async fn patterns_assign_only_readable_topics(admin: &Client, bob: &Client, addr: &str) {
    admin.admin().create_topic("m2", 1, 1, Default::default()).await.unwrap();
    let read = |kind: &str, pattern: &str, name: &str| pb::AclBinding {
        principal: "User:bob".into(),
        resource_type: kind.into(),
        pattern_type: pattern.into(),
        resource_name: name.into(),
        operation: "read".into(),
        permission: "allow".into(),
    };
    admin
        .admin()
        .create_acls(vec![read("topic", "literal", "m"), read("group", "prefixed", "p-")])
        .await
        .unwrap();
    let mut groups = pb::groups_client::GroupsClient::with_interceptor(
        bob.channel(addr).unwrap(),
        bob.credentials(),
    );
    let beat = |member_id: String, member_epoch: i32| pb::HeartbeatRequest {
        group: "p-bob".into(),
        member_id,
        member_epoch,
        topic_pattern: "m*".into(),
        ..Default::default()
    };
    // A new binding is in force on a broker one watch round trip after it is stored.
    let mut answer = common::wait_for(Duration::from_secs(30), "bob's read on p- in force", || {
        let mut groups = groups.clone();
        let beat = beat(String::new(), 0);
        async move {
            match groups.heartbeat(beat).await {
                Ok(answer) => Ok(answer.into_inner()),
                Err(s) if s.code() == Code::PermissionDenied => Err(s.message().to_string()),
                Err(s) => panic!("bob's first heartbeat: {s:?}"),
            }
        }
    })
    .await;
    for _ in 0..20 {
        if !answer.assignment.is_empty() {
            break;
        }
        answer = groups
            .heartbeat(beat(answer.member_id.clone(), answer.member_epoch))
            .await
            .unwrap()
            .into_inner();
    }
    let topics: Vec<&str> = answer.assignment.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(topics, vec!["m"], "bob's assignment for pattern m*");
}

/// A client claiming to forward a heartbeat for alice (the header brokers use when they
/// forward to the group's coordinator) is refused: only brokers are believed.
async fn on_behalf_of_is_believed_only_from_brokers(nobody: &Client, addr: &str) {
    let mut groups = pb::groups_client::GroupsClient::with_interceptor(
        nobody.channel(addr).unwrap(),
        nobody.credentials(),
    );
    let mut request = tonic::Request::new(pb::HeartbeatRequest {
        group: "m-with-acl-g".into(),
        member_epoch: 0,
        topics: vec!["m".into()],
        ..Default::default()
    });
    request.metadata_mut().insert("x-shale-on-behalf-of", "User:alice".parse().unwrap());
    let e = groups.heartbeat(request).await.expect_err("a client acted on behalf of alice");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
}

/// A client principal (alice, with every ACL) calls ReplicaFetch claiming to be each
/// follower at the leader's log end: refused, and the high watermark does not move past
/// what the real followers hold.
async fn forged_replica_fetch_moves_nothing(alice: &Client, admin: &Client, addr: &str) {
    let before = hw(admin, addr).await;
    let md = admin.admin().metadata(&["m".to_string()]).await.unwrap();
    let p = &md.topics[0].partitions[0];
    let mut replica = pb::replica_client::ReplicaClient::with_interceptor(
        alice.channel(addr).unwrap(),
        alice.credentials(),
    );
    for follower in p.replicas.iter().filter(|r| **r != p.leader_id) {
        let request = pb::ReplicaFetchRequest {
            topic: "m".into(),
            partition: 0,
            replica_id: *follower,
            leader_epoch: p.leader_epoch,
            fetch_offset: i64::MAX / 2,
            ..Default::default()
        };
        let e = replica
            .replica_fetch(tokio_stream::iter(vec![request]))
            .await
            .expect_err("a client principal was served ReplicaFetch");
        assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    }
    assert_eq!(hw(admin, addr).await, before, "the forged fetches moved the high watermark");
}

async fn hw(admin: &Client, addr: &str) -> i64 {
    let r = admin
        .log_rpc(addr)
        .unwrap()
        .list_offsets(pb::ListOffsetsRequest { topic: "m".into(), partition: 0, spec: None })
        .await
        .unwrap();
    r.into_inner().high_watermark
}

/// Bob, who may write to `m`, sends a batch under alice's producer id with a sequence far
/// ahead: refused. Alice's own first batch is then appended, not dropped as a duplicate.
async fn forged_producer_id_is_refused(alice: &Client, bob: &Client, addr: &str) {
    use shale::record::{BatchBuilder, Compression, Record};
    let batch = |pid: i64, seq: i32, value: &str| {
        let mut b = BatchBuilder::new(Compression::None).with_producer(pid, 0, seq);
        b.push(Record {
            key: None,
            value: Some(value.to_string().into_bytes().into()),
            headers: vec![],
            timestamp_ms: 1,
        });
        b.build()
    };
    let produce = |client: &Client, bytes: bytes::Bytes| {
        let mut log = client.log_rpc(addr).unwrap();
        async move {
            log.produce(pb::ProduceRequest {
                topic: "m".into(),
                partition: 0,
                acks: pb::Acks::All as i32,
                payload: Some(pb::produce_request::Payload::Batches(bytes)),
                ..Default::default()
            })
            .await
        }
    };
    let pid = alice
        .log_rpc(addr)
        .unwrap()
        .init_producer_id(pb::InitProducerIdRequest {})
        .await
        .unwrap()
        .into_inner()
        .producer_id;
    let e = produce(bob, batch(pid, 0, "forged")).await.expect_err("bob wrote under alice's id");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.message().contains(&pid.to_string()), "the refusal names the id: {e}");
    let ok = produce(alice, batch(pid, 0, "real")).await.expect("alice's own batch");
    let r = ok.into_inner();
    assert!(r.base_offset >= 0, "alice's batch was not appended: {r:?}");
    // Bob's own id works for bob.
    let bobs = bob
        .log_rpc(addr)
        .unwrap()
        .init_producer_id(pb::InitProducerIdRequest {})
        .await
        .unwrap()
        .into_inner()
        .producer_id;
    produce(bob, batch(bobs, 0, "bob")).await.expect("bob's batch under his own id");
}
