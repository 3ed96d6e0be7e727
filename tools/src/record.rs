//! Recording of received feed packets to pcap files (being written).

use serde::Deserialize;

/// The `[record]` section of the `mdfh run` configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    pub enabled: bool,
}
