//! Every bundled NASDAQ and BX capture read through `FeedFile`: message counts and types against
//! the inventory in tests/data/itch-pcaps/SOURCE.md, and the decoded anchor values listed there.

mod framing_support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use framing_support::{decode_all, pcap_path, type_counts, Decoded, PCAP_DIR};
use mdfh_feed::file::{self, FeedFile, Format};
use mdfh_feed::itch::{Message, Side, Stock};
use mdfh_feed::pcap::CaptureSummary;

const NASDAQ_SESSION: [u8; 10] = *b"000010059B";
const BX_SESSION: [u8; 10] = *b"000010059D";
const NASDAQ_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(233, 54, 12, 111), 26477);
const BX_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(233, 49, 196, 40), 25475);
const ZEROED: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

/// MoldUDP64 header and destination of the packets of one capture.
#[derive(Clone, Copy, Debug)]
enum Header {
    /// Session, sequence and destination zeroed when the capture was published.
    Zeroed,
    Real { session: [u8; 10], group: SocketAddrV4 },
}

const NASDAQ: Header = Header::Real { session: NASDAQ_SESSION, group: NASDAQ_GROUP };
const BX: Header = Header::Real { session: BX_SESSION, group: BX_GROUP };

/// The inventory table: file, size in bytes, UDP packets, messages by type, header.
const INVENTORY: &[(&str, usize, u64, &str, Header)] = &[
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/AddOrderMpidAttributionMessage.pcap", 644, 5, "Fx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/AddOrderNoMpidAttributionMessage.pcap", 624, 5, "Ax5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/NonCrossTradeMessage.pcap", 664, 5, "Px5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderCancelMessage.pcap", 559, 5, "Xx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderDeleteMessage.pcap", 539, 5, "Dx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderExecutedMessage.pcap", 599, 5, "Ex5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderExecutedWithPriceMessage.pcap", 624, 5, "Cx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderReplaceMessage.pcap", 619, 5, "Ux5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/RegShoShortSalePriceTestRestrictedIndicatorMessage.pcap", 544, 5, "Yx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/RetailInterestMessage.pcap", 544, 5, "Nx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/StockTradingActionMessage.pcap", 569, 5, "Hx5", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/SystemEventMessage.pcap", 120, 1, "Sx1", Header::Zeroed),
    ("Bx.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap", 144, 1, "Ax1", BX),
    ("Bx.Equities.TotalView.Itch.v5.0/OrderDeleteMessage.pcap", 127, 1, "Dx1", BX),
    ("Bx.Equities.TotalView.Itch.v5.0/OrderReplaceMessage.pcap", 143, 1, "Ux1", BX),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/AddOrderNoMPID.pcap", 624, 5, "Ax5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/AddOrderWithMPID.pcap", 644, 5, "Fx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/CrossTrade.pcap", 644, 5, "Qx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/LULDAuctionCollar.pcap", 619, 5, "Jx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/MarketParticipantPosition.pcap", 574, 5, "Lx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/NetOrderImbalanceIndicator.pcap", 694, 5, "Ix5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/NonCrossTrade.pcap", 664, 5, "Px5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderCancel.pcap", 559, 5, "Xx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderDelete.pcap", 539, 5, "Dx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderExecuted.pcap", 599, 5, "Ex5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderExecutedWithPrice.pcap", 624, 5, "Cx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderReplace.pcap", 619, 5, "Ux5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/RegSHORestriction.pcap", 544, 5, "Yx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/StockTradingAction.pcap", 569, 5, "Hx5", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/SystemEvent.pcap", 120, 1, "Sx1", Header::Zeroed),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap", 144, 1, "Ax1", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/MarketParticipantPositionMessage.pcap", 134, 1, "Lx1", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap", 1661, 2, "Ax36 Dx1 Fx2", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/NetOrderImbalanceIndicatorMessage.pcap", 158, 1, "Ix1", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/OrderDeleteMessage.pcap", 127, 1, "Dx1", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/OrderExecutedMessage.pcap", 139, 1, "Ex1", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/OrderReplaceMessage.pcap", 143, 1, "Ux1", NASDAQ),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/StockTradingActionMessage.pcap", 133, 1, "Hx1", NASDAQ),
];

fn open_nasdaq(name: &str) -> FeedFile {
    file::open(&pcap_path(&format!("Nasdaq.Equities.TotalView.Itch.v5.0/{name}"))).unwrap()
}

/// Decodes a capture that must decode without error.
fn decode_clean(feed: &FeedFile) -> Vec<Decoded> {
    let (decoded, errors) = decode_all(feed);
    assert!(errors.is_empty(), "errors: {errors:?}");
    decoded
}

#[test]
fn inventory_lists_every_capture() {
    let mut on_disk = BTreeSet::new();
    for folder in std::fs::read_dir(PCAP_DIR).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "pcap") {
                on_disk.insert(path.strip_prefix(PCAP_DIR).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let listed: BTreeSet<String> = INVENTORY.iter().map(|row| row.0.to_owned()).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn every_capture_matches_inventory() {
    for &(name, bytes, packets, types, header) in INVENTORY {
        let feed = file::open(&pcap_path(name)).unwrap();
        assert_eq!(feed.bytes().len(), bytes, "{name}: file size");
        assert_eq!(feed.format(), Format::Pcap, "{name}: format");

        let (decoded, errors) = decode_all(&feed);
        assert!(errors.is_empty(), "{name}: errors {errors:?}");
        assert_eq!(type_counts(&decoded), types, "{name}: message types");

        let mut messages = feed.messages();
        for item in messages.by_ref() {
            item.unwrap();
        }
        let summary = messages.capture_summary().unwrap();
        let expected = CaptureSummary { frames: packets, udp_datagrams: packets, ..CaptureSummary::default() };
        assert_eq!(summary, expected, "{name}: capture summary");

        for datagram in feed.packets().unwrap() {
            let datagram = datagram.unwrap();
            match header {
                Header::Zeroed => assert_eq!(datagram.dst, ZEROED, "{name}: destination"),
                Header::Real { group, .. } => assert_eq!(datagram.dst, group, "{name}: destination"),
            }
        }
        for d in &decoded {
            match header {
                Header::Zeroed => {
                    assert_eq!(d.session, Some([0; 10]), "{name}: session");
                    assert_eq!(d.sequence, Some(0), "{name}: sequence");
                }
                Header::Real { session, .. } => {
                    assert_eq!(d.session, Some(session), "{name}: session");
                    assert!(d.sequence.is_some_and(|seq| seq > 0), "{name}: sequence");
                }
            }
            // 2023-08-22 13:00 to 14:00 UTC: the captures were taken around the 09:30 New York open.
            let ts = d.capture_ts_ns.unwrap();
            assert!((1_692_709_200_000_000_000..1_692_712_800_000_000_000).contains(&ts), "{name}: capture time {ts}");
        }
    }
}

#[test]
fn add_order_anchor() {
    let decoded = decode_clean(&open_nasdaq("AddOrderNoMpidAttributionMessage.pcap"));
    assert_eq!(decoded.len(), 1);
    let d = &decoded[0];
    assert_eq!(d.capture_ts_ns, Some(1_692_711_000_000_059_094));
    assert_eq!(d.session, Some(NASDAQ_SESSION));
    assert_eq!(d.sequence, Some(14_757_721));
    let Message::AddOrder(add) = d.message else { panic!("expected an add order, got {:?}", d.message) };
    assert_eq!(d.message.msg_type(), b'A');
    assert_eq!(add.header.stock_locate, 5528);
    assert_eq!(add.header.tracking_number, 0);
    assert_eq!(add.header.timestamp, 34_199_999_894_278);
    assert_eq!(add.order_ref, 23_508_286);
    assert_eq!(add.side, Side::Buy);
    assert_eq!(add.shares, 1600);
    assert_eq!(add.stock, Stock(*b"IVOO    "));
    assert_eq!(add.price, 873_900);
    assert_eq!(add.attribution, None);
}

#[test]
fn order_executed_anchor() {
    let decoded = decode_clean(&open_nasdaq("OrderExecutedMessage.pcap"));
    assert_eq!(decoded.len(), 1);
    let d = &decoded[0];
    assert_eq!(d.session, Some(NASDAQ_SESSION));
    assert_eq!(d.sequence, Some(14_757_745));
    let Message::OrderExecuted(executed) = d.message else { panic!("expected an execution, got {:?}", d.message) };
    assert_eq!(executed.header.stock_locate, 2345);
    assert_eq!(executed.header.tracking_number, 2);
    assert_eq!(executed.header.timestamp, 34_199_999_934_561);
    assert_eq!(executed.order_ref, 23_499_418);
    assert_eq!(executed.executed_shares, 25);
    assert_eq!(executed.match_number, 255_547);
}

#[test]
fn order_replace_anchor() {
    let decoded = decode_clean(&open_nasdaq("OrderReplaceMessage.pcap"));
    assert_eq!(decoded.len(), 1);
    let d = &decoded[0];
    assert_eq!(d.session, Some(NASDAQ_SESSION));
    assert_eq!(d.sequence, Some(14_757_701));
    let Message::OrderReplace(replace) = d.message else { panic!("expected a replace, got {:?}", d.message) };
    assert_eq!(replace.header.stock_locate, 7603);
    assert_eq!(replace.header.timestamp, 34_199_999_836_649);
    assert_eq!(replace.original_order_ref, 15_108_479);
    assert_eq!(replace.new_order_ref, 21_361_351);
    assert_eq!(replace.shares, 100);
    assert_eq!(replace.price, 1_062_600);
}

#[test]
fn multiple_packets_anchor() {
    let feed = open_nasdaq("Multiple.Packets.pcap");
    let packets: Vec<_> = feed.packets().unwrap().map(Result::unwrap).collect();
    assert_eq!(packets.len(), 2);

    let decoded = decode_clean(&feed);
    assert_eq!(decoded.len(), 39);

    // Packet 1: one delete at sequence 14764496.
    let first = &decoded[0];
    assert_eq!(first.session, Some(NASDAQ_SESSION));
    assert_eq!(first.sequence, Some(14_764_496));
    let Message::OrderDelete(delete) = first.message else { panic!("expected a delete, got {:?}", first.message) };
    assert_eq!(delete.order_ref, 23_485_802);
    assert_eq!(delete.header.stock_locate, 2737);

    // Packet 2: the other 38 messages, numbered on from sequence 19009117. SOURCE.md describes
    // this packet as 39 messages with one delete, but that is the file's total: the bytes contain 38
    // message blocks (count field 38), 36 `A` and 2 `F`.
    let second = &decoded[1..];
    assert_eq!(second.len(), 38);
    for (i, d) in second.iter().enumerate() {
        assert_eq!(d.sequence, Some(19_009_117 + i as u64), "message {i} of packet 2");
        assert_eq!(d.capture_ts_ns, second[0].capture_ts_ns, "message {i} of packet 2");
    }
    assert_eq!(type_counts(second), "Ax36 Fx2");
    assert_eq!(packets[1].payload.get(18..20), Some(&38u16.to_be_bytes()[..]));

    let first_add = second.iter().find(|d| d.message.msg_type() == b'A').unwrap();
    let Message::AddOrder(add) = first_add.message else { unreachable!() };
    assert_eq!(add.header.stock_locate, 6514);
    assert_eq!(add.order_ref, 7_942_047);
    assert_eq!(add.side, Side::Buy);
    assert_eq!(add.shares, 1);
    assert_eq!(add.stock, Stock(*b"META    "));
    assert_eq!(add.price, 805_200);
}
