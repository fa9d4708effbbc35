//! Cutting a long block range's fills into journal writes.
//!
//! A backfill after downtime can bring tens of thousands of fills in one range. Journaled in one
//! write, none of them could be copied before all were journaled; in parts of about a thousand,
//! the first copies are under way while the rest is journaled. A part ends only between blocks:
//! the checkpoint moves to a part's last block, and a checkpoint must be a block all of whose
//! fills are journaled.

use crate::domain::TargetFill;

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

/// A range's fills (in block order) cut into journal writes at block boundaries; one empty part
/// when there are none (the checkpoint still moves).
#[must_use]
pub fn split_at_blocks(mut fills: Vec<TargetFill>) -> Vec<Vec<TargetFill>> {
    let blocks: Vec<u64> = fills.iter().map(|f| f.block_number).collect();
    let cuts = cuts_at_blocks(&blocks, PART_FILLS);
    let mut parts = Vec::with_capacity(cuts.len().max(1));
    let mut taken = 0;
    for cut in cuts {
        let rest = fills.split_off(cut - taken);
        parts.push(std::mem::replace(&mut fills, rest));
        taken = cut;
    }
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_splits_into_whole_blocks_and_an_empty_range_into_one_empty_part() {
        let fill = |block: u64| TargetFill {
            block_number: block,
            ..crate::domain::test_fill(crate::domain::Side::Buy, crate::domain::Shares(1), crate::domain::Price(1))
        };
        assert_eq!(split_at_blocks(Vec::new()), vec![Vec::<TargetFill>::new()]);
        // 1,200 fills in 6 blocks of 200: a part of 1,000 (five blocks), then the last block.
        let fills: Vec<TargetFill> = (0..1200u64).map(|i| fill(10 + i / 200)).collect();
        let parts = split_at_blocks(fills);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [1000, 200]);
        assert_eq!(parts[0].last().map(|f| f.block_number), Some(14));
        assert!(parts[1].iter().all(|f| f.block_number == 15));
    }

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
