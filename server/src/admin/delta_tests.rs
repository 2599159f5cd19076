//! Signatures and deltas (issue 15).

use super::*;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn literal_bytes(ops: &[DeltaOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            DeltaOp::Literal(bytes) => bytes.len(),
            DeltaOp::Copy { .. } => 0,
        })
        .sum()
}

fn round_trip(base: &[u8], new: &[u8]) -> Vec<DeltaOp> {
    let ops = delta(&signature(base), new).expect("delta");
    assert_eq!(apply(base, &ops, new.len()).expect("apply"), new);
    ops
}

#[test]
fn issue_15_rolling_checksum_equals_a_fresh_one() {
    let bytes = random(3 * BLOCK, 1);
    let mut rolling = Rolling::of(&bytes[..BLOCK]);
    for at in 0..2 * BLOCK {
        rolling.roll(bytes[at], bytes[at + BLOCK]);
        assert_eq!(
            rolling.value(),
            Rolling::of(&bytes[at + 1..at + 1 + BLOCK]).value(),
            "at {at}"
        );
    }
}

#[test]
fn issue_15_all_match_is_one_copy() {
    let base = random(64 * BLOCK, 2);
    let ops = round_trip(&base, &base);
    assert_eq!(
        ops,
        vec![DeltaOp::Copy {
            block: 0,
            count: 64
        }]
    );
}

#[test]
fn issue_15_no_match_is_all_literal() {
    let base = random(16 * BLOCK, 3);
    let new = random(16 * BLOCK + 17, 4);
    let ops = round_trip(&base, &new);
    assert_eq!(ops, vec![DeltaOp::Literal(new.clone())]);
}

#[test]
fn issue_15_edit_in_the_middle_sends_about_the_edit() {
    let base = random(64 * BLOCK, 5);
    let mut new = base.clone();
    // 100 bytes overwritten inside block 30: that block travels, no more.
    new[30 * BLOCK + 200..30 * BLOCK + 300].copy_from_slice(&random(100, 6));
    let ops = round_trip(&base, &new);
    assert_eq!(literal_bytes(&ops), BLOCK);
    // Inserted bytes shift the rest: still found by the rolling checksum.
    let mut inserted = base.clone();
    inserted.splice(10 * BLOCK + 5..10 * BLOCK + 5, random(37, 7));
    let ops = round_trip(&base, &inserted);
    assert_eq!(literal_bytes(&ops), BLOCK + 37);
    assert!(wire_len(&ops) < 2 * BLOCK as u64, "{}", wire_len(&ops));
}

#[test]
fn issue_15_edits_at_block_edges() {
    let base = random(8 * BLOCK, 8);
    // Last byte of block 2 and first of block 3.
    let mut new = base.clone();
    new[3 * BLOCK - 1] ^= 0xff;
    new[3 * BLOCK] ^= 0xff;
    let ops = round_trip(&base, &new);
    assert_eq!(literal_bytes(&ops), 2 * BLOCK);
    // Bytes cut at a block edge, and a new chunk shorter than a block.
    let mut cut = base.clone();
    cut.drain(4 * BLOCK..5 * BLOCK);
    let ops = round_trip(&base, &cut);
    assert_eq!(literal_bytes(&ops), 0);
    round_trip(&base, &base[..BLOCK - 1]);
    round_trip(&base, &[]);
    // A base with a short tail: only its whole blocks are in the signature.
    let short = &base[..2 * BLOCK + 10];
    assert_eq!(signature(short).len(), 2 * SIGNATURE_ENTRY);
    let ops = round_trip(short, short);
    assert_eq!(literal_bytes(&ops), 10);
}

#[test]
fn issue_15_repeated_blocks_prefer_the_next_one() {
    let block = random(BLOCK, 9);
    let base: Vec<u8> = block.repeat(4);
    let ops = round_trip(&base, &base);
    assert_eq!(ops, vec![DeltaOp::Copy { block: 0, count: 4 }]);
}

#[test]
fn issue_15_limits_are_refused() {
    assert!(matches!(
        delta(&[0; SIGNATURE_ENTRY + 1], b"x"),
        Err(DeltaError::BadSignature { .. })
    ));
    let too_big = vec![0; (MAX_BASE_BYTES / BLOCK + 1) * SIGNATURE_ENTRY];
    assert!(matches!(
        delta(&too_big, b"x"),
        Err(DeltaError::BadSignature { .. })
    ));
    let base = random(4 * BLOCK, 10);
    // Copies outside the base, overflowing, too long, too short, too many runs.
    let outside = [DeltaOp::Copy { block: 3, count: 2 }];
    assert!(matches!(
        apply(&base, &outside, 2 * BLOCK),
        Err(DeltaError::CopyOutside { .. })
    ));
    let overflow = [DeltaOp::Copy {
        block: u32::MAX,
        count: u32::MAX,
    }];
    assert!(apply(&base, &overflow, BLOCK).is_err());
    let long = [DeltaOp::Literal(vec![1; 10])];
    assert_eq!(
        apply(&base, &long, 9),
        Err(DeltaError::WrongLength { got: 10, want: 9 })
    );
    assert_eq!(
        apply(&base, &long, 11),
        Err(DeltaError::WrongLength { got: 10, want: 11 })
    );
    let many = vec![DeltaOp::Literal(vec![1]); MAX_DELTA_OPS + 1];
    assert!(matches!(
        apply(&base, &many, MAX_DELTA_OPS + 1),
        Err(DeltaError::TooManyOps { .. })
    ));
}

#[test]
fn issue_15_a_delta_never_exceeds_the_run_limit() {
    // Every other block changed in the largest chunk: the most runs there are.
    let base = random(256 * BLOCK, 11);
    let mut new = base.clone();
    for block in (0..256).step_by(2) {
        new[block * BLOCK] ^= 1;
    }
    let ops = round_trip(&base, &new);
    assert!(ops.len() <= MAX_DELTA_OPS, "{}", ops.len());
}
