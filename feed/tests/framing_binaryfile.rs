//! BinaryFILE framing: real ITCH messages written and read back, format detection, files on
//! disk, and damaged lengths.

mod framing_support;

use framing_support::{decode_all, pcap_path};
use mdfh_feed::binaryfile::{self, Reader};
use mdfh_feed::error::DecodeError;
use mdfh_feed::file::{self, FeedFile, FileError, Format};
use mdfh_feed::itch::Message;

const MULTIPLE_PACKETS: &str = "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap";

/// Decodes the 39 messages of the real capture.
fn real_messages() -> Vec<Message> {
    let feed = file::open(&pcap_path(MULTIPLE_PACKETS)).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert!(errors.is_empty(), "errors: {errors:?}");
    decoded.into_iter().map(|d| d.message).collect()
}

fn binary_file(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        binaryfile::write_message(&mut out, message);
    }
    out
}

#[test]
fn real_messages_round_trip() {
    let messages = real_messages();
    let bytes = binary_file(&messages);
    assert_eq!(Format::detect(&bytes), Format::BinaryFile);

    let mut expected_prefix = 0;
    for (item, message) in Reader::new(&bytes).zip(&messages) {
        let (prefix_offset, raw) = item.unwrap();
        assert_eq!(prefix_offset, expected_prefix);
        assert_eq!(raw.len(), message.encoded_len());
        assert_eq!(bytes[prefix_offset..prefix_offset + 2], (raw.len() as u16).to_be_bytes());
        expected_prefix += 2 + raw.len();
    }
    assert_eq!(expected_prefix, bytes.len());

    let feed = FeedFile::from_bytes(bytes).unwrap();
    assert_eq!(feed.format(), Format::BinaryFile);
    assert!(feed.packets().is_none());
    let (decoded, errors) = decode_all(&feed);
    assert!(errors.is_empty(), "errors: {errors:?}");
    assert_eq!(decoded.iter().map(|d| d.message).collect::<Vec<_>>(), messages);
    for d in &decoded {
        assert_eq!((d.sequence, d.session, d.capture_ts_ns), (None, None, None));
    }
}

#[test]
fn open_reads_file_from_disk() {
    let messages = real_messages();
    let path = std::env::temp_dir().join(format!("mdfh-framing-binaryfile-{}.itch", std::process::id()));
    std::fs::write(&path, binary_file(&messages)).unwrap();
    let feed = file::open(&path);
    std::fs::remove_file(&path).unwrap();

    let feed = feed.unwrap();
    assert_eq!(feed.format(), Format::BinaryFile);
    let (decoded, errors) = decode_all(&feed);
    assert!(errors.is_empty(), "errors: {errors:?}");
    assert_eq!(decoded.len(), messages.len());
}

#[test]
fn missing_file_is_io_error() {
    let path = std::env::temp_dir().join("mdfh-framing-no-such-file.itch");
    let err = file::open(&path).unwrap_err();
    assert!(matches!(&err, FileError::Io { path: p, .. } if *p == path), "got {err:?}");
    assert_eq!(err.offset(), None);
    assert!(err.to_string().contains("mdfh-framing-no-such-file.itch"), "message: {err}");
}

#[test]
fn length_past_end_ends_reading() {
    let messages = real_messages();
    let mut bytes = binary_file(&messages[..2]);
    let bad_offset = bytes.len();
    bytes.extend_from_slice(&[0, 40, b'A', 1, 2, 3, 4]);

    let items: Vec<_> = Reader::new(&bytes).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok());
    assert!(items[1].is_ok());
    assert_eq!(items[2], Err(DecodeError::FilePastEnd { offset: bad_offset, len: 40, remaining: 5 }));

    let feed = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert_eq!(decoded.len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset(), Some(bad_offset));
}

#[test]
fn zero_length_is_skipped() {
    let messages = real_messages();
    let mut bytes = binary_file(&messages[..1]);
    let empty_offset = bytes.len();
    bytes.extend_from_slice(&[0, 0]);
    binaryfile::write_message(&mut bytes, &messages[1]);

    let items: Vec<_> = Reader::new(&bytes).collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[1], Err(DecodeError::EmptyMessage { offset: empty_offset }));
    assert_eq!(items[2].as_ref().map(|(offset, _)| *offset), Ok(empty_offset + 2));

    let feed = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert_eq!(decoded.iter().map(|d| d.message).collect::<Vec<_>>(), messages[..2]);
    assert_eq!(errors.len(), 1);
}
