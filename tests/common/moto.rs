//! moto's EC2 and SQS server for tests (`.venv/bin/moto_server`, installed by scripts/venv.sh): started
//! on a free loopback port and killed on drop, plus a tagged VPC, subnets, security group and
//! images to resolve EC2NodeClasses against. Without the binary `Moto::start` prints why and
//! returns None, except under `CI=true`, where it panics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use capstan::cloud::aws::{AwsSettings, StaticCredentials};

pub const REGION: &str = "us-west-2";
pub const CLUSTER: &str = "moto-test";
pub const DISCOVERY: &str = "karpenter.sh/discovery";

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    pub child: Child,
    pub url: String,
}

impl Moto {
    /// None (after printing why) when moto is not installed and this is not CI.
    pub fn start() -> Option<Moto> {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        if !bin.exists() {
            let why = format!(
                "{} not found: run scripts/venv.sh (installs moto[server,ec2])",
                bin.display()
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipping the moto test: {why}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_ready(port);
        Some(moto)
    }

    /// Until moto answers an HTTP request (it listens a little before it serves).
    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && buf.starts_with(b"HTTP/1.")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on port {port} within 30 s");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn settings(url: &str) -> AwsSettings {
    AwsSettings {
        region: REGION.into(),
        endpoint_url: Some(url.into()),
        cluster_name: CLUSTER.into(),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
        zones: None,
    }
}

pub async fn ec2(url: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

pub fn tag_spec(rt: ResourceType, kv: &[(&str, &str)]) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(rt);
    for (k, v) in kv {
        b = b.tags(Tag::builder().key(*k).value(*v).build());
    }
    b.build()
}

/// What the test created in moto.
pub struct Network {
    pub subnet_a: String,
    pub subnet_b: String,
    pub subnet_untagged: String,
    pub sg: String,
    pub ami: String,
    pub other_ami: String,
}

pub async fn network(client: &Client) -> Network {
    let vpc = client
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("vpc");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let mut subnets = Vec::new();
    for (zone, cidr, tagged) in [
        ("us-west-2a", "10.0.1.0/24", true),
        ("us-west-2b", "10.0.2.0/24", true),
        ("us-west-2c", "10.0.3.0/24", false),
    ] {
        let mut req = client
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .availability_zone(zone);
        if tagged {
            req = req.tag_specifications(tag_spec(ResourceType::Subnet, &[(DISCOVERY, CLUSTER)]));
        }
        let s = req.send().await.expect("subnet");
        subnets.push(
            s.subnet()
                .and_then(|s| s.subnet_id())
                .expect("id")
                .to_string(),
        );
    }
    let sg = client
        .create_security_group()
        .group_name("capstan-nodes")
        .description("nodes")
        .vpc_id(&vpc_id)
        .tag_specifications(tag_spec(
            ResourceType::SecurityGroup,
            &[(DISCOVERY, CLUSTER)],
        ))
        .send()
        .await
        .expect("security group")
        .group_id()
        .expect("sg id")
        .to_string();
    // moto ships ~1,300 public images; tag two x86_64 ones as "ours".
    let images = client
        .describe_images()
        .owners("amazon")
        .filters(
            Filter::builder()
                .name("architecture")
                .values("x86_64")
                .build(),
        )
        .send()
        .await
        .expect("images");
    let mut ids = images
        .images()
        .iter()
        .filter_map(|i| i.image_id().map(str::to_string));
    let ami = ids.next().expect("an image");
    let other_ami = ids.next().expect("a second image");
    client
        .create_tags()
        .resources(&ami)
        .tags(Tag::builder().key(DISCOVERY).value(CLUSTER).build())
        .send()
        .await
        .expect("tag image");
    Network {
        subnet_a: subnets[0].clone(),
        subnet_b: subnets[1].clone(),
        subnet_untagged: subnets[2].clone(),
        sg,
        ami,
        other_ami,
    }
}

/// An SQS client for moto (moto_server serves SQS on the same port as EC2).
pub async fn sqs(url: &str) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// The venv's Python (with boto3, which moto brings), beside `moto_server`.
pub fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}
