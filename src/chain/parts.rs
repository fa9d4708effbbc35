//! Cutting a long block range's fills into journal writes.
//!
//! A backfill after downtime can bring tens of thousands of fills in one range. Journaled in one
//! write, none of them could be copied before all were journaled; in parts of about a thousand,
//! the first copies are under way while the rest is journaled. A part ends only between blocks:
//! the checkpoint moves to a part's last block, and a checkpoint must be a block all of whose
//! fills are journaled.

/// Fills per journal write of a long range, at least (a part ends at the next block boundary).
pub const PART_FILLS: usize = 1_000;

/// Where to cut fills (in block order, given by their block numbers) into parts of at least `min`
/// fills, only between blocks: the end index of each part. Empty for no fills.
#[must_use]
pub fn cuts_at_blocks(blocks: &[u64], min: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut since = 0;
    for (i, b) in blocks.iter().enumerate() {
        since += 1;
        let block_ends = blocks.get(i + 1) != Some(b);
        if block_ends && (since >= min || i + 1 == blocks.len()) {
            cuts.push(i + 1);
            since = 0;
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_between_blocks_and_always_at_the_end() {
        // (blocks of the fills, min, cuts)
        let cases: &[(&[u64], usize, &[usize])] = &[
            (&[], 2, &[]),
            (&[7], 2, &[1]),
            (&[1, 1, 2, 2, 2, 3], 2, &[2, 5, 6]),
            // A block bigger than a part is never split.
            (&[1, 1, 1, 1, 1], 2, &[5]),
            // Below the minimum: one part.
            (&[1, 2, 3], 10, &[3]),
            (&[1, 2, 3, 4], 1, &[1, 2, 3, 4]),
            (&[1, 1, 2, 3, 3, 3, 4], 3, &[3, 6, 7]),
        ];
        for (blocks, min, want) in cases {
            assert_eq!(cuts_at_blocks(blocks, *min), *want, "{blocks:?} min {min}");
        }
    }
}
