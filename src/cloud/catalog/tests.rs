use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::*;
use crate::apis::ec2nodeclass::KubeletConfiguration;
use crate::scheduling::resources::Resources;

const MI: i64 = 1 << 20;
const GI: i64 = 1 << 30;

fn t(name: &str) -> Arc<InstanceType> {
    embedded()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from the dataset"))
        .clone()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn dataset_loads() {
    let data = dataset::decode().expect("embedded dataset decodes");
    assert!(data.types.len() >= 1300, "{} types", data.types.len());
    // 1461 entries, 27 with null specs (see data/catalog/README.md, "Gaps").
    assert_eq!(data.types.len() + data.skipped.len(), 1461);
    assert_eq!(data.skipped.len(), 27);
    assert!(data.skipped.iter().any(|n| n == "c8g-flex.large"));
    assert!(data.types.windows(2).all(|w| w[0].name < w[1].name));
    assert_eq!(data.offerings.len(), 30);
    assert!(data.on_demand.contains_key("us-gov-west-1"));
    // Same data through the shared, decoded-once instance.
    assert!(std::ptr::eq(embedded(), embedded()));
    assert_eq!(embedded().types.len(), data.types.len());
}

#[test]
fn m5_large_facts() {
    let it = t("m5.large");
    assert_eq!(
        (
            it.family.as_str(),
            it.category.as_str(),
            it.generation,
            it.size.as_str()
        ),
        ("m5", "m", Some(5), "large")
    );
    assert_eq!(
        (it.vcpu, it.memory_mib, it.arch.as_str()),
        (2, 8192, "amd64")
    );
    assert_eq!(
        (it.max_enis, it.ipv4_per_eni, it.max_pods_eni),
        (Some(3), Some(10), Some(29))
    );
    assert_eq!(it.gpu_count, 0);
    assert_eq!(it.local_nvme_gb, 0);
    assert_eq!(it.network_bandwidth_mbps, Some(750));
    assert_eq!(it.hypervisor.as_deref(), Some("nitro"));
    assert!(!it.burstable && !it.bare_metal);
    assert!(t("t3.micro").burstable);
}

#[test]
fn m5_large_labels_match_karpenter() {
    // Karpenter's docs table for m5.large, minus labels the dataset does not carry
    // (cpu-manufacturer, clock speed, ebs-bandwidth, encryption-in-transit).
    let want = map(&[
        ("karpenter.k8s.aws/instance-capability-flex", "false"),
        ("karpenter.k8s.aws/instance-category", "m"),
        ("karpenter.k8s.aws/instance-cpu", "2"),
        ("karpenter.k8s.aws/instance-family", "m5"),
        ("karpenter.k8s.aws/instance-generation", "5"),
        ("karpenter.k8s.aws/instance-hypervisor", "nitro"),
        ("karpenter.k8s.aws/instance-memory", "8192"),
        ("karpenter.k8s.aws/instance-network-bandwidth", "750"),
        ("karpenter.k8s.aws/instance-size", "large"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
        ("node.kubernetes.io/instance-type", "m5.large"),
    ]);
    assert_eq!(labels(&t("m5.large")), want);
}

#[test]
fn labels_per_kind_of_type() {
    // (type, labels that must be present, label keys that must be absent)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "g4dn.xlarge",
            &[
                ("karpenter.k8s.aws/instance-gpu-count", "1"),
                ("karpenter.k8s.aws/instance-gpu-name", "t4"),
                ("karpenter.k8s.aws/instance-gpu-manufacturer", "nvidia"),
                ("karpenter.k8s.aws/instance-gpu-memory", "16384"),
                ("karpenter.k8s.aws/instance-local-nvme", "125"),
            ],
            &["karpenter.k8s.aws/instance-accelerator-name"],
        ),
        (
            "g4ad.xlarge",
            &[
                ("karpenter.k8s.aws/instance-gpu-name", "radeon-pro-v520"),
                ("karpenter.k8s.aws/instance-gpu-manufacturer", "amd"),
            ],
            &[],
        ),
        (
            "inf2.xlarge",
            &[
                ("karpenter.k8s.aws/instance-accelerator-name", "inferentia2"),
                ("karpenter.k8s.aws/instance-accelerator-manufacturer", "aws"),
                ("karpenter.k8s.aws/instance-accelerator-count", "1"),
            ],
            &[
                "karpenter.k8s.aws/instance-gpu-count",
                "karpenter.k8s.aws/instance-local-nvme",
            ],
        ),
        (
            "m6g.large",
            &[("kubernetes.io/arch", "arm64")],
            &["karpenter.k8s.aws/instance-gpu-name"],
        ),
        // Bare metal: Karpenter sets the hypervisor label to "".
        (
            "c5.metal",
            &[
                ("karpenter.k8s.aws/instance-hypervisor", ""),
                ("karpenter.k8s.aws/instance-size", "metal"),
            ],
            &[],
        ),
        (
            "c7i-flex.large",
            &[
                ("karpenter.k8s.aws/instance-capability-flex", "true"),
                ("karpenter.k8s.aws/instance-family", "c7i-flex"),
                ("karpenter.k8s.aws/instance-category", "c"),
            ],
            &[],
        ),
        (
            "mac-m4.metal",
            &[("karpenter.k8s.aws/instance-category", "mac")],
            &["karpenter.k8s.aws/instance-generation"],
        ),
    ];
    for (name, present, absent) in cases {
        let l = labels(&t(name));
        for (k, v) in *present {
            assert_eq!(l.get(*k).map(String::as_str), Some(*v), "{name} {k}");
        }
        for k in *absent {
            assert!(!l.contains_key(*k), "{name} should not have {k}");
        }
        assert_eq!(l["kubernetes.io/os"], "linux");
    }
}

#[test]
fn us_east_1_prices_are_the_datasets() {
    let c = Catalog::for_region("us-east-1", None);
    let zone_names: Vec<&str> = c.zones().iter().map(|z| z.name.as_str()).collect();
    assert_eq!(
        zone_names,
        [
            "us-east-1a",
            "us-east-1b",
            "us-east-1c",
            "us-east-1d",
            "us-east-1e",
            "us-east-1f"
        ]
    );
    let m5 = c.get("m5.large").unwrap();
    let od = c
        .offering("m5.large", "us-east-1a", CapacityType::OnDemand)
        .unwrap();
    assert_eq!(od.price_per_hour, 0.096);
    assert_eq!(od.price_source, PriceSource::Embedded);
    assert_eq!(od.zone_id.as_deref(), Some("use1-az1"));
    assert!(od.available);
    // m5.large is not offered in use1-az3 (us-east-1c by our naming): 5 zones × 2 capacity types.
    assert_eq!(m5.offerings.len(), 10);
    assert!(
        c.offering("m5.large", "us-east-1c", CapacityType::OnDemand)
            .is_none()
    );

    let spot = c
        .offering("m5.large", "us-east-1a", CapacityType::Spot)
        .unwrap();
    assert_eq!(spot.price_source, PriceSource::SpotEstimate);
    assert_eq!(spot.price_per_hour, 0.0336); // 0.096 × 0.35
    assert!(spot.price_per_hour < od.price_per_hour);
    assert_eq!(m5.cheapest_available(at(0)), Some(spot));
    assert!(c.has_estimated_prices()); // spot is always an estimate until refreshed
}

#[test]
fn spot_is_cheaper_than_on_demand_everywhere() {
    for region in ["us-east-1", "us-west-2", "eu-west-1", "us-gov-west-1"] {
        let c = Catalog::for_region(region, None);
        assert!(c.len() > 200, "{region}: {} types", c.len());
        for e in c.iter() {
            for spot in e
                .offerings
                .iter()
                .filter(|o| o.capacity_type == CapacityType::Spot)
            {
                let od = e
                    .offerings
                    .iter()
                    .find(|o| o.zone == spot.zone && o.capacity_type == CapacityType::OnDemand)
                    .unwrap();
                if spot.price_source == PriceSource::Missing {
                    assert_eq!(od.price_source, PriceSource::Missing);
                    continue;
                }
                assert!(
                    spot.price_per_hour > 0.0 && spot.price_per_hour < od.price_per_hour,
                    "{region} {} {}: spot {} od {}",
                    e.instance_type.name,
                    spot.zone,
                    spot.price_per_hour,
                    od.price_per_hour
                );
            }
        }
    }
}

#[test]
fn spot_rule() {
    let cases = [
        // type, factor
        ("m5.large", Some(pricing::SPOT_FACTOR_DEFAULT)),
        ("t3.micro", Some(pricing::SPOT_FACTOR_DEFAULT)),
        ("g4dn.xlarge", Some(pricing::SPOT_FACTOR_ACCELERATED)),
        ("p4d.24xlarge", Some(pricing::SPOT_FACTOR_ACCELERATED)),
        ("inf2.xlarge", Some(pricing::SPOT_FACTOR_ACCELERATED)),
        ("trn1.2xlarge", Some(pricing::SPOT_FACTOR_ACCELERATED)),
        ("u-6tb1.112xlarge", None),
        ("mac2.metal", None),
        ("hpc7g.16xlarge", None),
    ];
    for (name, factor) in cases {
        assert_eq!(pricing::spot_factor(&t(name)), factor, "{name}");
    }
    // No spot market, no spot offering.
    let c = Catalog::for_region("us-east-1", None);
    let u = c.get("u-6tb1.112xlarge").unwrap();
    assert!(
        u.offerings
            .iter()
            .all(|o| o.capacity_type == CapacityType::OnDemand)
    );
}

#[test]
fn other_regions_borrow_us_east_1_prices() {
    let c = Catalog::for_region("us-west-2", None);
    let zones: Vec<(String, Option<String>)> = c
        .zones()
        .iter()
        .map(|z| (z.name.clone(), z.id.clone()))
        .collect();
    assert_eq!(
        zones,
        (1..=4)
            .map(|n| (
                format!("us-west-2{}", (b'a' + n as u8 - 1) as char),
                Some(format!("usw2-az{n}"))
            ))
            .collect::<Vec<_>>()
    );
    let od = c
        .offering("m5.large", "us-west-2b", CapacityType::OnDemand)
        .unwrap();
    assert_eq!(od.price_per_hour, 0.096);
    assert_eq!(od.price_source, PriceSource::EstimatedFromUsEast1);
    assert!(od.price_source.is_estimate());
    let sources = c.price_sources();
    assert_eq!(sources.get(&PriceSource::Embedded), None);
    assert!(sources[&PriceSource::EstimatedFromUsEast1] > 1000);

    // Per-zone offerings come from the data: vt1 only in usw2-az1.
    let vt1: Vec<&str> = c
        .get("vt1.3xlarge")
        .unwrap()
        .offerings
        .iter()
        .map(|o| o.zone.as_str())
        .collect();
    assert_eq!(vt1, ["us-west-2a", "us-west-2a"]);
    // Types offered nowhere in the region are not in its catalog.
    assert!(c.get("p3.2xlarge").is_none());
}

#[test]
fn govcloud_has_its_own_prices_and_placeholder_zones() {
    let c = Catalog::for_region("us-gov-west-1", None);
    let names: Vec<&str> = c.zones().iter().map(|z| z.name.as_str()).collect();
    assert_eq!(
        names,
        ["us-gov-west-1a", "us-gov-west-1b", "us-gov-west-1c"]
    );
    let od = c
        .offering("m5.large", "us-gov-west-1a", CapacityType::OnDemand)
        .unwrap();
    assert_eq!(
        (od.price_per_hour, od.price_source),
        (0.121, PriceSource::Embedded)
    );
    assert_eq!(od.zone_id, None);
    // Without offerings data, GovCloud offers what its price table lists.
    assert_eq!(c.len(), 768); // 770 priced, 2 of them without specs

    // A region the data does not know: placeholder zones, every type, us-east-1 prices.
    let c = Catalog::for_region("xx-new-1", None);
    assert_eq!(c.zones().len(), 3);
    assert_eq!(c.len(), embedded().types.len());
    let od = c
        .offering("m5.large", "xx-new-1b", CapacityType::OnDemand)
        .unwrap();
    assert_eq!(
        (od.price_per_hour, od.price_source),
        (0.096, PriceSource::EstimatedFromUsEast1)
    );
}

#[test]
fn zone_mapping() {
    let data = embedded();
    let cases = [
        ("us-west-2", "usw2-az1", Some("us-west-2a")),
        ("us-west-2", "usw2-az4", Some("us-west-2d")),
        ("us-east-1", "use1-az6", Some("us-east-1f")),
        ("us-west-1", "usw1-az3", Some("us-west-1c")),
        ("us-west-2", "usw2-az0", None),
        ("us-west-2", "usw2-az27", None),
        ("us-west-2", "usw2-lax1-az1x", None),
        ("us-west-2", "garbage", None),
    ];
    for (region, id, name) in cases {
        assert_eq!(zone_name_for_id(region, id).as_deref(), name, "{id}");
        if let Some(name) = name {
            assert_eq!(
                zone_id_for_name(data, region, name).as_deref(),
                Some(id),
                "{name}"
            );
        }
    }
    assert_eq!(zone_id_for_name(data, "us-west-1", "us-west-1b"), None); // no usw1-az2 in data
    assert_eq!(
        zone_id_for_name(data, "us-west-2", "us-west-2-lax-1a"),
        None
    );
    assert_eq!(
        zone_id_for_name(data, "us-gov-west-1", "us-gov-west-1a"),
        None
    );
}

#[test]
fn caller_zones_restrict_and_fall_back_to_the_region() {
    let zones = vec![
        "us-west-2b".to_string(),
        "us-west-2-lax-1a".to_string(),
        "us-west-2b".to_string(),
    ];
    let c = Catalog::for_region("us-west-2", Some(&zones));
    assert_eq!(
        c.zones(),
        [
            Zone {
                name: "us-west-2b".into(),
                id: Some("usw2-az2".into())
            },
            Zone {
                name: "us-west-2-lax-1a".into(),
                id: None
            },
        ]
    );
    // vt1 is only in usw2-az1: absent from 2b; the unknown zone gets the region-wide list.
    let vt1: Vec<&str> = c
        .get("vt1.3xlarge")
        .unwrap()
        .offerings
        .iter()
        .map(|o| o.zone.as_str())
        .collect();
    assert_eq!(vt1, ["us-west-2-lax-1a", "us-west-2-lax-1a"]);

    // Real zone-ID pairs from the account override the naming rule.
    let real = [Zone {
        name: "us-west-2a".into(),
        id: Some("usw2-az4".into()),
    }];
    let c = Catalog::for_zones("us-west-2", &real);
    let trn1n = c
        .offering("trn1n.32xlarge", "us-west-2a", CapacityType::OnDemand)
        .unwrap();
    assert_eq!(trn1n.zone_id.as_deref(), Some("usw2-az4"));
    assert!(c.get("vt1.3xlarge").is_none());
}

#[test]
fn missing_prices_make_offerings_unavailable_until_set() {
    // r9g has no price in any embedded table.
    let mut c = Catalog::for_region("us-west-2", None);
    let name = "r9g.large";
    let zone = c.get(name).unwrap().offerings[0].zone.clone();
    for o in &c.get(name).unwrap().offerings {
        assert_eq!(o.price_source, PriceSource::Missing);
        assert!(!o.available && !o.is_available(at(0)));
    }
    assert_eq!(c.available_offerings(name, at(0)).count(), 0);

    c.set_price(name, &zone, CapacityType::OnDemand, 0.1)
        .unwrap();
    let od = c.offering(name, &zone, CapacityType::OnDemand).unwrap();
    assert_eq!(
        (od.price_per_hour, od.price_source, od.available),
        (0.1, PriceSource::Live, true)
    );
    // The zone's spot estimate follows the new on-demand price.
    let spot = c.offering(name, &zone, CapacityType::Spot).unwrap();
    assert_eq!(
        (spot.price_per_hour, spot.price_source, spot.available),
        (0.035, PriceSource::SpotEstimate, true)
    );

    // A live spot price is kept when on-demand changes again.
    c.set_price(name, &zone, CapacityType::Spot, 0.02).unwrap();
    c.set_price(name, &zone, CapacityType::OnDemand, 0.2)
        .unwrap();
    let spot = c.offering(name, &zone, CapacityType::Spot).unwrap();
    assert_eq!(
        (spot.price_per_hour, spot.price_source),
        (0.02, PriceSource::Live)
    );

    assert_eq!(c.set_on_demand_price(name, 0.3), Ok(4));
    assert!(
        c.get(name)
            .unwrap()
            .offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::OnDemand)
            .all(|o| o.price_per_hour == 0.3 && o.available)
    );
}

#[test]
fn set_price_errors() {
    let mut c = Catalog::for_region("us-east-1", None);
    let cases = [
        (
            "nope.large",
            "us-east-1a",
            1.0,
            CatalogError::UnknownInstanceType("nope.large".into()),
        ),
        (
            "m5.large",
            "us-east-1c",
            1.0,
            CatalogError::UnknownOffering {
                instance_type: "m5.large".into(),
                zone: "us-east-1c".into(),
                capacity_type: CapacityType::OnDemand,
            },
        ),
        (
            "m5.large",
            "us-east-1a",
            0.0,
            CatalogError::InvalidPrice {
                instance_type: "m5.large".into(),
                price: 0.0,
            },
        ),
        (
            "m5.large",
            "us-east-1a",
            -1.0,
            CatalogError::InvalidPrice {
                instance_type: "m5.large".into(),
                price: -1.0,
            },
        ),
    ];
    for (name, zone, price, err) in cases {
        assert_eq!(
            c.set_price(name, zone, CapacityType::OnDemand, price),
            Err(err)
        );
    }
    assert!(
        c.set_price("m5.large", "us-east-1a", CapacityType::OnDemand, f64::NAN)
            .is_err()
    );
    let msg = c
        .set_available("m5.large", "us-east-1c", CapacityType::Spot, false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "instance type \"m5.large\" has no spot offering in zone \"us-east-1c\""
    );
}

#[test]
fn mark_unavailable_hides_an_offering_until_then() {
    let mut c = Catalog::for_region("us-east-1", None);
    let (name, zone, ct) = ("m5.large", "us-east-1a", CapacityType::Spot);
    c.mark_unavailable(name, zone, ct, at(180)).unwrap();
    // An earlier mark does not shorten it.
    c.mark_unavailable(name, zone, ct, at(60)).unwrap();

    let cases = [(0, false), (179, false), (180, true), (500, true)];
    for (now, available) in cases {
        assert_eq!(
            c.offering(name, zone, ct).unwrap().is_available(at(now)),
            available,
            "t={now}"
        );
    }
    // Only that offering: the on-demand one and other zones are untouched.
    assert!(
        c.offering(name, zone, CapacityType::OnDemand)
            .unwrap()
            .is_available(at(0))
    );
    assert_eq!(c.available_offerings(name, at(0)).count(), 9);
    assert_eq!(c.available_offerings(name, at(180)).count(), 10);
    // While spot in 1a is out, the cheapest is spot elsewhere.
    let cheapest = c.get(name).unwrap().cheapest_available(at(0)).unwrap();
    assert_eq!(
        (cheapest.zone.as_str(), cheapest.capacity_type),
        ("us-east-1b", CapacityType::Spot)
    );

    assert_eq!(c.clear_expired(at(100)), 0);
    assert_eq!(c.clear_expired(at(180)), 1);
    assert_eq!(c.offering(name, zone, ct).unwrap().unavailable_until, None);

    c.set_available(name, zone, ct, false).unwrap();
    assert!(!c.offering(name, zone, ct).unwrap().is_available(at(1000)));
    assert!(
        c.mark_unavailable("m5.large", "us-east-1c", ct, at(1))
            .is_err()
    );
}

#[test]
fn kube_reserved_cpu_tiers() {
    // 6% of core 1, 1% of core 2, 0.5% of cores 3-4, 0.25% beyond (truncated millicores).
    let cases = [
        (1, 60),
        (2, 70),
        (3, 75),
        (4, 80),
        (8, 90),
        (48, 190),
        (96, 310),
        (192, 550),
    ];
    for (vcpu, millis) in cases {
        assert_eq!(kube_reserved_cpu_millis(vcpu), millis, "{vcpu} vCPU");
    }
}

fn resources(
    cpu: i64,
    memory: i64,
    storage: i64,
    pods: i64,
    extended: &[(&str, i64)],
) -> Resources {
    let mut r = Resources {
        cpu_millis: cpu,
        memory_bytes: memory,
        ephemeral_storage_bytes: storage,
        pods,
        ..Resources::default()
    };
    for (k, v) in extended {
        r.set_extended(k, *v);
    }
    r
}

#[test]
fn allocatable_with_eks_defaults_matches_karpenter() {
    // Every row equals the Resources table of Karpenter's instance-types reference page.
    //
    // m5.large: 2 vCPU, 8192 MiB, ENI pods 3 × (10 − 1) + 2 = 29.
    //   cpu     2000m − kube-reserved (60 + 10) = 1930m
    //   memory  8192 − ceil(8192 × 0.075 = 614.4) = 7577 MiB capacity
    //           − kube-reserved 11 × 29 + 255 = 574 − eviction 100 = 6903 MiB
    //   storage 20Gi − kube-reserved 1Gi − eviction 10% (2Gi) = 17Gi
    // c5.xlarge: 4 vCPU → 80m reserved; 58 pods → 893 MiB; 7577 − 893 − 100 = 6584 MiB.
    // g4dn.xlarge: 16384 → 15155 MiB; 29 pods → 574; 14481 MiB; 1 nvidia.com/gpu.
    // g4ad.xlarge: 8 pods → 343; 15155 − 343 − 100 = 14712 MiB; 1 amd.com/gpu.
    // p4d.24xlarge: 96 vCPU → 60+10+10+230 = 310m; 1179648 − 88474 = 1091174 MiB
    //   − (11 × 737 + 255 = 8362) − 100 = 1082712 MiB; 8 nvidia.com/gpu.
    // trn1.2xlarge: 8 vCPU → 90m; 32768 − 2458 − 893 − 100 = 29317 MiB; 1 Neuron device.
    // m6g.large (arm64): 8192 − 64 (CMA) = 8128 − ceil(609.6) = 7518 − 574 − 100 = 6844 MiB.
    // m7g.medium (arm64): 1 vCPU → 60m; 4032 − 303 − 343 − 100 = 3286 MiB.
    // t3.micro: 1024 − 77 = 947 − (11 × 4 + 255 = 299) − 100 = 548 MiB.
    // dl1.24xlarge (not in the docs table): 786432 − 58983 − 8362 − 100 = 718987 MiB; 8 Gaudi.
    let cases: &[(&str, Resources)] = &[
        (
            "m5.large",
            resources(1930, 6903 * MI, 17 * GI, 29, &[(POD_ENI, 9)]),
        ),
        (
            "c5.xlarge",
            resources(3920, 6584 * MI, 17 * GI, 58, &[(POD_ENI, 18)]),
        ),
        (
            "g4dn.xlarge",
            resources(
                3920,
                14481 * MI,
                17 * GI,
                29,
                &[(NVIDIA_GPU, 1), (POD_ENI, 39)],
            ),
        ),
        (
            "g4ad.xlarge",
            resources(3920, 14712 * MI, 17 * GI, 8, &[(AMD_GPU, 1), (POD_ENI, 12)]),
        ),
        (
            "p4d.24xlarge",
            resources(
                95690,
                1082712 * MI,
                17 * GI,
                737,
                &[(NVIDIA_GPU, 8), (POD_ENI, 62)],
            ),
        ),
        (
            "trn1.2xlarge",
            resources(
                7910,
                29317 * MI,
                17 * GI,
                58,
                &[(AWS_NEURON, 1), (POD_ENI, 17)],
            ),
        ),
        (
            "inf2.xlarge",
            resources(
                3920,
                14162 * MI,
                17 * GI,
                58,
                &[(AWS_NEURON, 1), (POD_ENI, 18)],
            ),
        ),
        (
            "m6g.large",
            resources(1930, 6844 * MI, 17 * GI, 29, &[(POD_ENI, 9)]),
        ),
        (
            "m7g.medium",
            resources(940, 3286 * MI, 17 * GI, 8, &[(POD_ENI, 4)]),
        ),
        ("t3.micro", resources(1930, 548 * MI, 17 * GI, 4, &[])),
        (
            "c5.metal",
            resources(95690, 173400 * MI, 17 * GI, 737, &[(POD_ENI, 107)]),
        ),
        (
            "dl1.24xlarge",
            resources(
                95690,
                718987 * MI,
                17 * GI,
                737,
                &[(HABANA_GAUDI, 8), (POD_ENI, 62)],
            ),
        ),
    ];
    for (name, want) in cases {
        assert_eq!(&allocatable(&t(name), None).unwrap(), want, "{name}");
    }
    // Capacity, before overhead, as a NodeClaim's status.capacity would carry it.
    let cap = capacity(&t("m5.large"), &AllocatableSettings::default());
    assert_eq!(
        cap,
        resources(2000, 7577 * MI, 20 * GI, 29, &[(POD_ENI, 9)])
    );
}

#[test]
fn allocatable_with_kubelet_overrides() {
    let kubelet = |f: &dyn Fn(&mut KubeletConfiguration)| {
        let mut k = KubeletConfiguration::default();
        f(&mut k);
        k
    };
    let m5 =
        |cpu, mem_mi, storage, pods| resources(cpu, mem_mi * MI, storage, pods, &[(POD_ENI, 9)]);
    let cases: Vec<(&str, &str, KubeletConfiguration, Resources)> = vec![
        (
            "m5.large",
            "empty kubelet = defaults",
            kubelet(&|_| {}),
            m5(1930, 6903, 17 * GI, 29),
        ),
        // AL2023 sizes kube-reserved memory from the ENI pods (29) even with maxPods set.
        (
            "m5.large",
            "maxPods",
            kubelet(&|k| k.max_pods = Some(110)),
            m5(1930, 6903, 17 * GI, 110),
        ),
        (
            "m5.large",
            "podsPerCore caps ENI pods",
            kubelet(&|k| k.pods_per_core = Some(10)),
            m5(1930, 6903, 17 * GI, 20),
        ),
        (
            "m5.large",
            "podsPerCore above ENI pods",
            kubelet(&|k| k.pods_per_core = Some(50)),
            m5(1930, 6903, 17 * GI, 29),
        ),
        (
            "m5.large",
            "podsPerCore 0 is off",
            kubelet(&|k| k.pods_per_core = Some(0)),
            m5(1930, 6903, 17 * GI, 29),
        ),
        (
            "c5.xlarge",
            "podsPerCore caps maxPods",
            kubelet(&|k| {
                k.max_pods = Some(110);
                k.pods_per_core = Some(4);
            }),
            resources(3920, 6584 * MI, 17 * GI, 16, &[(POD_ENI, 18)]),
        ),
        (
            "m5.large",
            "systemReserved adds to kube-reserved",
            kubelet(&|k| {
                k.system_reserved = Some(map(&[
                    ("cpu", "100m"),
                    ("memory", "100Mi"),
                    ("ephemeral-storage", "1Gi"),
                    ("pid", "1000"),
                ]))
            }),
            m5(1830, 6803, 16 * GI, 29),
        ),
        (
            "m5.large",
            "kubeReserved replaces defaults key by key",
            kubelet(&|k| k.kube_reserved = Some(map(&[("cpu", "200m"), ("memory", "1Gi")]))),
            // memory 7577 − 1024 − 100; ephemeral-storage keeps its 1Gi default.
            m5(1800, 6453, 17 * GI, 29),
        ),
        (
            "m5.large",
            "evictionHard memory as a percentage of capacity",
            // 5% of 7577 MiB = 397253017.6 bytes, rounded up.
            kubelet(&|k| k.eviction_hard = Some(map(&[("memory.available", "5%")]))),
            resources(
                1930,
                7577 * MI - 574 * MI - 397_253_018,
                17 * GI,
                29,
                &[(POD_ENI, 9)],
            ),
        ),
        (
            "m5.large",
            "evictionHard absolute memory and nodefs percentage",
            kubelet(&|k| {
                k.eviction_hard = Some(map(&[
                    ("memory.available", "500Mi"),
                    ("nodefs.available", "15%"),
                ]))
            }),
            // 20Gi − 1Gi − 3Gi
            m5(1930, 7577 - 574 - 500, 16 * GI, 29),
        ),
        (
            "m5.large",
            "evictionHard 100% disables the threshold",
            kubelet(&|k| k.eviction_hard = Some(map(&[("memory.available", "100%")]))),
            m5(1930, 7003, 17 * GI, 29),
        ),
        (
            "m5.large",
            "evictionSoft does not reduce allocatable",
            kubelet(&|k| {
                k.eviction_soft = Some(map(&[("memory.available", "1Gi")]));
                k.eviction_soft_grace_period = Some(map(&[("memory.available", "1m")]));
            }),
            m5(1930, 6903, 17 * GI, 29),
        ),
    ];
    for (name, what, k, want) in cases {
        assert_eq!(
            allocatable(&t(name), Some(&k)).unwrap(),
            want,
            "{name}: {what}"
        );
    }

    // Bottlerocket counts the real max pods for kube-reserved memory: 11 × 110 + 255 = 1465 MiB.
    let mut s =
        AllocatableSettings::from_kubelet(Some(&kubelet(&|k| k.max_pods = Some(110)))).unwrap();
    s.kube_reserved_memory_from_eni_pods = false;
    assert_eq!(
        allocatable_with(&t("m5.large"), &s).memory_bytes,
        (7577 - 1465 - 100) * MI
    );

    // Instance-store RAID0: ephemeral storage is the NVMe (125 GB on g4dn.xlarge).
    let s = AllocatableSettings {
        instance_store_raid0: true,
        ..AllocatableSettings::default()
    };
    let storage = 125_000_000_000i64;
    assert_eq!(
        allocatable_with(&t("g4dn.xlarge"), &s).ephemeral_storage_bytes,
        storage - GI - storage / 10
    );

    // A tiny type with a huge reservation has nothing left, not negative amounts.
    let s = AllocatableSettings {
        system_reserved: Reserved {
            memory_bytes: Some(4 * GI),
            ..Reserved::default()
        },
        ..AllocatableSettings::default()
    };
    assert_eq!(allocatable_with(&t("t3.micro"), &s).memory_bytes, 0);
}

#[test]
fn kubelet_errors() {
    let cases: Vec<(KubeletConfiguration, &str)> = vec![
        (
            KubeletConfiguration {
                kube_reserved: Some(map(&[("cpu", "lots")])),
                ..Default::default()
            },
            "kubelet.kubeReserved[\"cpu\"]: invalid quantity \"lots\"",
        ),
        (
            KubeletConfiguration {
                system_reserved: Some(map(&[("memory", "1GB")])),
                ..Default::default()
            },
            "kubelet.systemReserved[\"memory\"]: invalid quantity \"1GB\": unknown suffix \"GB\"",
        ),
        (
            KubeletConfiguration {
                eviction_hard: Some(map(&[("memory.available", "x%")])),
                ..Default::default()
            },
            "kubelet.evictionHard[\"memory.available\"]: invalid percentage \"x%\"",
        ),
        (
            KubeletConfiguration {
                eviction_hard: Some(map(&[("nodefs.available", "150%")])),
                ..Default::default()
            },
            "kubelet.evictionHard[\"nodefs.available\"]: invalid percentage \"150%\"",
        ),
        (
            KubeletConfiguration {
                max_pods: Some(-1),
                ..Default::default()
            },
            "kubelet.maxPods must not be negative, got -1",
        ),
    ];
    for (k, want) in cases {
        let err = allocatable(&t("m5.large"), Some(&k))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(want),
            "{err}\n  does not start with\n{want}"
        );
    }
}

#[test]
fn offering_and_node_labels() {
    let c = Catalog::for_region("us-west-2", None);
    let o = c
        .offering("m5.large", "us-west-2c", CapacityType::Spot)
        .unwrap();
    assert_eq!(
        offering_labels(o),
        map(&[
            ("karpenter.sh/capacity-type", "spot"),
            ("topology.k8s.aws/zone-id", "usw2-az3"),
            ("topology.kubernetes.io/zone", "us-west-2c"),
        ])
    );
    let l = node_labels(c.region(), &t("m5.large"), o);
    assert_eq!(l["topology.kubernetes.io/region"], "us-west-2");
    assert_eq!(l["node.kubernetes.io/instance-type"], "m5.large");
    assert_eq!(l["karpenter.sh/capacity-type"], "spot");
    assert_eq!(
        CapacityType::parse("on-demand"),
        Some(CapacityType::OnDemand)
    );
    assert_eq!(CapacityType::parse("reserved"), None);
    assert_eq!(
        serde_json::to_value(CapacityType::OnDemand).unwrap(),
        "on-demand"
    );
    assert_eq!(
        serde_json::to_value(PriceSource::EstimatedFromUsEast1).unwrap(),
        "estimated-from-us-east-1"
    );
}
