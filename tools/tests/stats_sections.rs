//! The stats document of `mdfh run` lists every TCP subscriber with its slow-consumer policy and
//! counters, and the WebSocket bridge's counters.

mod support;

use std::time::Duration;

use mdfh_publisher::client::Client;
use mdfh_publisher::protocol::SlowConsumerPolicy;
use support::{handler_config, temp_dir, Handler, UDP_INPUT};

#[test]
fn stats_list_subscribers_and_web_counters() {
    let dir = temp_dir("stats_sections");
    let mut handler = Handler::start(&dir, &handler_config(UDP_INPUT));
    let mut client = Client::connect(handler.subscribers, Duration::from_secs(5)).unwrap();
    client.set_policy(SlowConsumerPolicy::Conflate).unwrap();
    client.subscribe(None, 10).unwrap();

    let stats = handler.wait_stats("one conflating subscriber", |stats| {
        stats["subscribers"].as_array().is_some_and(|subs| {
            subs.len() == 1 && subs[0]["policy"] == "conflate" && subs[0]["conflated_updates"] == 0
        })
    });
    let web = &stats["web"];
    assert_eq!(web["clients"], 0, "stats: {stats}");
    assert_eq!(web["protocol_errors"], 0, "stats: {stats}");
    assert!(web["connections_accepted"].is_u64(), "stats: {stats}");

    drop(client);
    handler.wait_stats("no subscriber", |stats| stats["subscribers"].as_array().is_some_and(|subs| subs.is_empty()));
    let status = handler.stop();
    assert!(status.success(), "mdfh run exited with {status}");
}
