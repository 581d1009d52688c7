//! Property tests of the listener's parsers, which take outside input (`PROFILIS_LISTEN`,
//! `Exporter::listen`, `Exporter::allow`): they never panic, accept exactly what they document
//! and name the value they refuse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use profilis_exporters::listener::{
    parse_allow_list, parse_allowed_network, parse_listen_addr, IpNet, ListenerError,
};
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

/// Whitespace the parsers ignore around a value.
fn padding() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

proptest! {
    #[test]
    fn listen_addresses_never_panic_and_name_what_they_refuse(s in any::<String>()) {
        match parse_listen_addr(&s) {
            Ok(_) => {}
            Err(ListenerError::InvalidAddr { value }) => prop_assert_eq!(value, s),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn every_socket_address_and_localhost_port_parses_to_itself(
        ip in ip(),
        port in any::<u16>(),
        before in padding(),
        after in padding(),
    ) {
        let addr = SocketAddr::new(ip, port);
        prop_assert_eq!(parse_listen_addr(&format!("{before}{addr}{after}")).unwrap(), addr);
        let localhost = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        prop_assert_eq!(parse_listen_addr(&format!("{before}localhost:{port}{after}")).unwrap(), localhost);
    }

    #[test]
    fn a_listen_address_without_a_valid_port_is_refused(
        ip in ip(),
        port in prop_oneof![Just(String::new()), "[1-9][0-9]{5,7}", "[a-z]{1,4}", Just("-1".to_owned())],
    ) {
        let given = match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        };
        let refused = matches!(parse_listen_addr(&given), Err(ListenerError::InvalidAddr { .. }));
        prop_assert!(refused, "{} was accepted", given);
        let refused = matches!(
            parse_listen_addr(&format!("localhost:{port}")),
            Err(ListenerError::InvalidAddr { .. })
        );
        prop_assert!(refused, "localhost:{} was accepted", port);
    }

    #[test]
    fn allow_lists_never_panic_and_name_what_they_refuse(s in any::<String>()) {
        match parse_allow_list(&s) {
            Ok(networks) => prop_assert!(!networks.is_empty()),
            Err(ListenerError::EmptyAllowList { value }) => {
                prop_assert_eq!(&value, &s);
                prop_assert!(s.split(',').all(|entry| entry.trim().is_empty()));
            }
            Err(ListenerError::InvalidNetwork { value }) => {
                prop_assert!(s.split(',').any(|entry| entry == value), "{value:?} is not an entry of {s:?}");
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn allow_lists_of_addresses_and_networks_keep_every_entry(
        entries in prop::collection::vec((ip(), any::<u8>(), any::<bool>()), 1..6),
        before in padding(),
        after in padding(),
    ) {
        let mut expected = Vec::new();
        let mut text = Vec::new();
        for (ip, prefix, with_prefix) in entries {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = prefix % (max + 1);
            let net = if with_prefix {
                text.push(format!("{before}{ip}/{prefix}{after}"));
                IpNet::new(ip, prefix).unwrap().trunc()
            } else {
                text.push(format!("{before}{ip}{after}"));
                IpNet::from(ip)
            };
            expected.push(net);
        }
        let parsed = parse_allow_list(&text.join(",")).unwrap();
        prop_assert_eq!(parsed.len(), expected.len());
        for (parsed, net) in parsed.iter().zip(&expected) {
            // IPv4-mapped entries are kept as the IPv4 network they mean; the rest as given.
            match (net.addr(), net.prefix_len()) {
                (IpAddr::V6(v6), prefix) if v6.to_ipv4_mapped().is_some() && prefix >= 96 => {
                    let v4 = v6.to_ipv4_mapped().unwrap();
                    prop_assert_eq!(*parsed, IpNet::new(v4.into(), prefix - 96).unwrap());
                }
                _ => prop_assert_eq!(parsed, net),
            }
            prop_assert!(parsed.contains(&net.addr()) || net.addr().to_canonical() != net.addr());
        }
    }

    #[test]
    fn one_bad_entry_fails_the_list_and_is_named(
        good in ip(),
        bad in prop_oneof!["[a-z]{1,8}", "[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{3}", Just("10.0.0.0/33".to_owned())],
    ) {
        let list = format!("{good},{bad}");
        match parse_allow_list(&list) {
            Err(ListenerError::InvalidNetwork { value }) => prop_assert_eq!(&value, &bad),
            other => prop_assert!(false, "{list:?} gave {other:?}"),
        }
        let refused = matches!(parse_allowed_network(&bad), Err(ListenerError::InvalidNetwork { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn lists_of_nothing_but_commas_and_spaces_are_refused(s in "[ ,\t]{0,8}") {
        let refused = matches!(parse_allow_list(&s), Err(ListenerError::EmptyAllowList { .. }));
        prop_assert!(refused, "{:?} was accepted", s);
    }
}
