//! The checksum `hello` prints is the one the host computes.

use hello::{
    checksum_line, expected_checksum, fill_pattern, fnv1a64, EXPECTED_CHECKSUM, PATTERN_LEN,
    PATTERN_SEED,
};

#[test]
fn fnv1a64_reference_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn buffer_and_streaming_checksums_agree() {
    let mut buf = vec![0u8; PATTERN_LEN];
    fill_pattern(&mut buf, PATTERN_SEED);
    assert_eq!(fnv1a64(&buf), expected_checksum(PATTERN_LEN, PATTERN_SEED));
    assert_eq!(fnv1a64(&buf), EXPECTED_CHECKSUM);
    // Odd lengths truncate the last word.
    let mut odd = vec![0u8; 13];
    fill_pattern(&mut odd, 7);
    assert_eq!(fnv1a64(&odd), expected_checksum(13, 7));
    assert_eq!(&odd[..8], &buf_for(7)[..8]);
}

fn buf_for(seed: u64) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    fill_pattern(&mut b, seed);
    b
}

#[test]
fn pattern_is_not_trivial() {
    let b = buf_for(PATTERN_SEED);
    assert_ne!(b[..8], b[8..]);
    assert!(b.iter().any(|&x| x != 0));
    // A zero seed still produces a pattern.
    assert!(buf_for(0).iter().any(|&x| x != 0));
}

#[test]
fn checksum_line_format() {
    let line = checksum_line(EXPECTED_CHECKSUM, PATTERN_LEN).to_string();
    assert_eq!(
        line,
        format!("hello: checksum fnv1a64={EXPECTED_CHECKSUM:#018x} bytes=1048576")
    );
    assert_eq!(
        checksum_line(0xab, 3).to_string(),
        "hello: checksum fnv1a64=0x00000000000000ab bytes=3"
    );
}
