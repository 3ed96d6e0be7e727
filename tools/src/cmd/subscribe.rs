//! `mdfh subscribe`: a TCP subscriber that prints what it receives and its own receive latency
//! (the handler's send timestamp to this process's receive, both wall clock).

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;
use mdfh_feed::itch::Side;
use mdfh_matcher::QualityState;
use mdfh_publisher::client::Client;
use mdfh_publisher::client_book::ClientBook;
use mdfh_publisher::protocol::{Level, OwnedFrame};

use crate::latency::Percentiles;
use crate::stats::format_price;

/// Arguments of `mdfh subscribe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the handler's subscriber port, e.g. 127.0.0.1:9100.
    pub addr: SocketAddr,
    /// Instrument to subscribe to; every instrument when left out.
    #[arg(long)]
    pub symbol: Option<String>,
    /// Levels per side; 0 for the full book.
    #[arg(long, default_value_t = 10)]
    pub depth: u16,
    /// `text`: one line per frame. `book-csv`: after every data frame about the subscribed
    /// instrument, its book in LOBSTER's orderbook layout, as `mdfh book` prints it. One ITCH
    /// message can change two levels (a replace), so rows also show the state between them.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    BookCsv,
}

/// LOBSTER's placeholder prices for empty levels.
const EMPTY_ASK: i64 = 9_999_999_999;
const EMPTY_BID: i64 = -9_999_999_999;

/// Runs `mdfh subscribe`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut client = Client::connect(args.addr, Duration::from_secs_f64(args.connect_timeout))
        .with_context(|| format!("failed to connect to {}", args.addr))?;
    client.set_read_timeout(Duration::from_millis(200)).context("failed to set the read timeout")?;
    client.subscribe(args.symbol.as_deref(), args.depth).context("failed to send the subscription")?;
    eprintln!("mdfh subscribe: connected to {}, subscribed to {} at depth {}", args.addr, args.symbol.as_deref().unwrap_or("all instruments"), args.depth);

    let deadline = args.duration.map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let mut book = ClientBook::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("failed to create the latency histogram")?;
    let mut frames = 0u64;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut ended = "the duration elapsed".to_string();
    while deadline.is_none_or(|d| Instant::now() < d) {
        let frame = match client.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(error) if matches!(error.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) => {
                ended = "the server closed the connection".into();
                break;
            }
            Err(error) => return Err(error).context("failed to read from the handler"),
        };
        frames += 1;
        if let Err(error) = book.apply(&frame) {
            eprintln!("mdfh subscribe: {error}");
        }
        if let (OutputFormat::BookCsv, OwnedFrame::FeedQuality(q)) = (args.format, &frame) {
            // The CSV rows on standard output keep LOBSTER's layout, so quality changes go to
            // standard error in this format.
            eprintln!("mdfh subscribe: feed quality {} since={} feed_seq={}", quality_name(q.quality.state), q.quality.since, q.feed_seq);
        }
        if let Some(send_ns) = send_time(&frame) {
            let _ = latency.record(wall_clock_ns().saturating_sub(send_ns).max(1));
        }
        let goodbye = matches!(frame, OwnedFrame::Goodbye { .. });
        let written = match args.format {
            OutputFormat::Text => writeln!(out, "{}", describe(&frame, &book)),
            OutputFormat::BookCsv => match (frame.seq(), args.symbol.as_deref()) {
                (Some(_), Some(symbol)) if book.book(symbol).is_some() => writeln!(out, "{}", book_row(&book, symbol, args.depth)),
                _ => Ok(()),
            },
        };
        if written.is_err() {
            // Standard output closed (a pipe's reader went away): stop quietly.
            return Ok(());
        }
        if let OwnedFrame::Goodbye { reason, text, .. } = &frame {
            ended = format!("goodbye from the handler: {reason:?}: {text}");
        }
        if goodbye {
            break;
        }
    }
    let _ = out.flush();
    eprintln!(
        "mdfh subscribe: {frames} frames, {} sequence gaps, receive latency {}; stopped: {ended}",
        book.gaps(),
        Percentiles::of(&latency)
    );
    Ok(())
}

fn wall_clock_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn send_time(frame: &OwnedFrame) -> Option<u64> {
    match frame {
        OwnedFrame::LevelUpdate(u) => Some(u.send_ns),
        OwnedFrame::Trade(t) => Some(t.send_ns),
        _ => None,
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "bid",
        Side::Sell => "ask",
    }
}

fn describe(frame: &OwnedFrame, book: &ClientBook) -> String {
    let symbol = |locate: u16| book.book(locate).map(|b| b.stock.as_str().to_string()).unwrap_or_else(|| format!("locate {locate}"));
    let latency = |send_ns: u64| crate::latency::format_ns(wall_clock_ns().saturating_sub(send_ns));
    match frame {
        OwnedFrame::Snapshot(s) => format!(
            "seq={} snapshot {} (locate {}) status={:?} feed_seq={} bids={} asks={}{}",
            s.header.seq,
            s.header.stock,
            s.header.locate,
            s.header.status,
            s.header.feed_seq,
            s.bids.len(),
            s.asks.len(),
            best(&s.bids, &s.asks)
        ),
        OwnedFrame::LevelUpdate(u) => format!(
            "seq={} level {} {} {} shares={} orders={} feed_seq={} latency={}",
            u.seq,
            symbol(u.locate),
            side_name(u.side),
            format_price(u.level.price),
            u.level.shares,
            u.level.orders,
            u.feed_seq,
            latency(u.send_ns)
        ),
        OwnedFrame::Trade(t) => format!(
            "seq={} trade {} {} @ {} match={} feed_seq={} latency={}",
            t.seq,
            symbol(t.locate),
            t.trade.shares,
            format_price(t.trade.price),
            t.trade.match_number,
            t.feed_seq,
            latency(t.send_ns)
        ),
        OwnedFrame::Heartbeat { last_seq, .. } => format!("heartbeat last_seq={last_seq}"),
        OwnedFrame::FeedQuality(q) => format!(
            "seq={} quality {} since={} feed_seq={}",
            q.seq,
            quality_name(q.quality.state),
            q.quality.since,
            q.feed_seq
        ),
        other => format!("{other:?}"),
    }
}

fn quality_name(state: QualityState) -> &'static str {
    match state {
        QualityState::Ok => "ok",
        QualityState::Recovering => "recovering",
        QualityState::Recovered => "recovered",
        QualityState::Stale => "stale",
    }
}

fn best(bids: &[Level], asks: &[Level]) -> String {
    let side = |levels: &[Level]| levels.first().map(|l| format!("{} @ {}", l.shares, format_price(l.price))).unwrap_or_else(|| "-".into());
    format!(" best bid {} | ask {}", side(bids), side(asks))
}

/// Formats the book of `symbol` as one LOBSTER orderbook row of `depth` levels.
fn book_row(book: &ClientBook, symbol: &str, depth: u16) -> String {
    let (bids, asks) = book.levels(symbol).unwrap_or((&[], &[]));
    // Depth 0 is the full book: as many levels as the deeper side has, at least one.
    let depth = match depth {
        0 => bids.len().max(asks.len()).max(1),
        n => usize::from(n),
    };
    let mut fields = Vec::with_capacity(depth * 4);
    for i in 0..depth {
        match asks.get(i) {
            Some(l) => fields.extend([i64::from(l.price), l.shares as i64]),
            None => fields.extend([EMPTY_ASK, 0]),
        }
        match bids.get(i) {
            Some(l) => fields.extend([i64::from(l.price), l.shares as i64]),
            None => fields.extend([EMPTY_BID, 0]),
        }
    }
    fields.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(",")
}
