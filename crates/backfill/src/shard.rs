//! `--shard K/N`: a deterministic split of one input between N machines.
//!
//! Row `i` (0-based position in the input file, header excluded) belongs to shard `i mod N`.
//! Every machine reads the whole file but decodes and scores only its own rows, so the shards
//! need no coordination, together cover every row exactly once, and a rerun of a shard always
//! picks the same rows. Row numbers and default application ids stay those of the whole file.
//!
//! A Kafka input is split by partition instead (partition `p` to shard `p mod N`, see
//! [`super::topic`]): every machine reads only its own partitions. The split is static rather
//! than left to a consumer group's rebalancing because the exactly-once resume rests on the
//! input position being saved together with the output; a rebalance that moved a partition
//! from one machine's output to another's would break that.

use std::fmt;
use std::str::FromStr;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// This machine's shard, `0..count`.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

/// `--shard` text that is not `K/N` with `0 <= K < N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard `{0}`: expected K/N with 0 <= K < N, e.g. 0/4")]
pub struct ShardError(String);

impl Shard {
    /// The whole input.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the row at 0-based position `row_index` belongs to this shard.
    pub fn contains(self, row_index: u64) -> bool {
        row_index % self.count == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ShardError(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(error)?;
        let index: u64 = index.trim().parse().map_err(|_| error())?;
        let count: u64 = count.trim().parse().map_err(|_| error())?;
        if count == 0 || index >= count {
            return Err(error());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "1/0", "a/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_partition_rows() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for row in 0..100 {
            assert_eq!(shards.iter().filter(|s| s.contains(row)).count(), 1);
        }
    }
}
