//! `mdfh sim`: serve a recorded file as a live feed, as MoldUDP64 over UDP or as a SoupBinTCP
//! server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mdfh_feed::soupbintcp::{SoupServer, SoupServerConfig};

use crate::sim::{self, Messages, UdpSimConfig};

/// Arguments of `mdfh sim`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["udp", "soup"])))]
pub struct Args {
    /// BinaryFILE, pcap or pcapng to replay.
    pub file: PathBuf,
    /// Messages per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Send MoldUDP64 datagrams to this address (unicast, or a multicast group).
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<SocketAddr>,
    /// Serve the file as a SoupBinTCP session on this address.
    #[arg(long, value_name = "ADDR")]
    pub soup: Option<SocketAddr>,
    /// UDP: replay the file again after each pass, each pass a new session, until interrupted.
    #[arg(long)]
    pub repeat: bool,
    /// SoupBinTCP: the session id announced at login (up to 10 characters).
    #[arg(long, default_value = "SIM0000001")]
    pub session: String,
    /// SoupBinTCP: require this user name and password at login, as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub credentials: Option<String>,
    /// SoupBinTCP: send End of Session after the last message and close the connection.
    #[arg(long)]
    pub end_of_session: bool,
}

/// Runs `mdfh sim`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let messages = Messages::load(&args.file)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("failed to install the signal handler")?;
    }
    if let Some(target) = args.udp {
        let config = UdpSimConfig {
            target,
            rate: args.rate,
            repeat: args.repeat,
            pause_between_passes: Duration::from_millis(500),
        };
        eprintln!("mdfh sim: {} messages from {} to udp://{target} at {}", messages.len(), args.file.display(), rate_text(args.rate));
        let report = sim::run_udp(&messages, &config, &stop)?;
        eprintln!("mdfh sim: sent {} messages in {} packets ({} passes)", report.messages, report.packets, report.passes);
        return Ok(());
    }
    let Some(bind) = args.soup else {
        anyhow::bail!("one of --udp or --soup is required");
    };
    let credentials = match &args.credentials {
        Some(text) => {
            let (user, password) = text.split_once(':').context("--credentials must be USER:PASSWORD")?;
            Some((user.to_string(), password.to_string()))
        }
        None => None,
    };
    let config = SoupServerConfig {
        bind,
        session: args.session.clone(),
        credentials,
        messages_per_second: args.rate,
        end_of_session: args.end_of_session,
        ..SoupServerConfig::default()
    };
    let list: Arc<[Box<[u8]>]> = messages.iter().map(|m| m.to_vec().into_boxed_slice()).collect();
    let server = SoupServer::start(config, list).with_context(|| format!("failed to start the SoupBinTCP server on {bind}"))?;
    eprintln!(
        "mdfh sim: serving {} messages from {} as SoupBinTCP session {} on {} at {}; Ctrl-C stops",
        messages.len(),
        args.file.display(),
        args.session,
        server.local_addr(),
        rate_text(args.rate)
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let counters = server.counters();
    eprintln!("mdfh sim: {} connections, {} messages sent", counters.connections, counters.messages_sent);
    Ok(())
}

fn rate_text(rate: u64) -> String {
    match rate {
        0 => "full speed".to_string(),
        n => format!("{n} msg/s"),
    }
}
