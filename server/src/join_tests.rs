//! Join codes (issue 15): round trips, every single mistyped character
//! refused by the checksum, versions and prefixes, and the QR code read back.

use super::*;

fn sample() -> JoinCode {
    JoinCode {
        quic: Address::parse("quic://origin.liangshan.example:7443", "quic").expect("quic"),
        https: Some(
            Address::parse("https://origin.liangshan.example:8443", "https").expect("https"),
        ),
        origin_key: std::array::from_fn(|i| i as u8),
        cert: std::array::from_fn(|i| 0xA0 ^ i as u8),
        token: std::array::from_fn(|i| 0xFF - i as u8),
    }
}

#[test]
fn issue_15_join_code_round_trips_and_ignores_case_spaces_and_dashes() {
    let code = sample();
    let text = code.encode();
    assert!(text.starts_with(PREFIX), "{text}");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'),
        "QR alphanumeric characters only: {text}"
    );
    assert!(text.len() < 260, "{} characters: {text}", text.len());
    assert_eq!(JoinCode::decode(&text).expect("decode"), code);
    let sloppy = format!(
        "  {} \n",
        text.to_lowercase().replace('-', " ").replacen(' ', "-", 3)
    );
    assert_eq!(JoinCode::decode(&sloppy).expect("decode sloppy"), code);
    let squashed: String = text.chars().filter(|c| *c != '-').collect();
    assert_eq!(JoinCode::decode(&squashed).expect("decode squashed"), code);
    assert_eq!(code.quic_url(), "quic://origin.liangshan.example:7443");
    assert_eq!(
        code.https_url().as_deref(),
        Some("https://origin.liangshan.example:8443")
    );
}

#[test]
fn issue_15_join_code_other_hosts_ipv6_and_no_fallback_round_trip() {
    let mut code = sample();
    code.https = Some(Address::parse("https://[::1]:443", "https").expect("v6"));
    assert_eq!(JoinCode::decode(&code.encode()).expect("decode"), code);
    code.https = None;
    code.quic = Address::parse("quic://127.0.0.1:4433", "quic").expect("v4");
    let decoded = JoinCode::decode(&code.encode()).expect("decode");
    assert_eq!(decoded, code);
    assert_eq!(decoded.https_url(), None);
    assert!(Address::parse("https://h:0", "https").is_err());
    assert!(Address::parse("quic://h", "quic").is_err());
    assert!(Address::parse("https://h:1", "quic").is_err());
}

#[test]
fn issue_15_every_single_mistyped_character_is_refused_with_the_checksum_error() {
    let text = JoinCode::encode(&sample());
    let chars: Vec<char> = text.chars().collect();
    let substitutes: Vec<char> = ALPHABET
        .iter()
        .map(|&b| char::from(b))
        .chain(['0', '1', '8', '9', '!', 'é', '-', ' '])
        .collect();
    let mut tried = 0;
    // Every character after the prefix, replaced by every other character.
    for position in PREFIX.len()..chars.len() {
        if chars[position] == '-' {
            continue;
        }
        for &substitute in &substitutes {
            if substitute == chars[position] {
                continue;
            }
            let mut changed = chars.clone();
            changed[position] = substitute;
            let changed: String = changed.into_iter().collect();
            let err = JoinCode::decode(&changed).expect_err(&changed);
            assert!(
                matches!(err, JoinError::Checksum | JoinError::BadCharacter { .. }),
                "{changed}: {err}"
            );
            assert!(err.to_string().contains("checksum"), "{changed}: {err}");
            tried += 1;
        }
    }
    assert!(tried > 5_000, "{tried} codes tried");
    // A character left out or one too many.
    for position in (PREFIX.len()..chars.len()).step_by(7) {
        if chars[position] == '-' {
            continue;
        }
        let mut shorter = chars.clone();
        shorter.remove(position);
        let shorter: String = shorter.into_iter().collect();
        let err = JoinCode::decode(&shorter).expect_err(&shorter);
        assert!(matches!(err, JoinError::Checksum), "{shorter}: {err}");
        let mut longer = chars.clone();
        longer.insert(position, 'Q');
        let longer: String = longer.into_iter().collect();
        let err = JoinCode::decode(&longer).expect_err(&longer);
        assert!(matches!(err, JoinError::Checksum), "{longer}: {err}");
    }
    // Two neighbours swapped.
    let swapped = {
        let mut swapped = chars.clone();
        let at = chars.len() / 2;
        let next = if chars[at + 1] == '-' { at + 2 } else { at + 1 };
        assert_ne!(chars[at], chars[next], "pick a pair that differs");
        swapped.swap(at, next);
        swapped.into_iter().collect::<String>()
    };
    assert!(matches!(
        JoinCode::decode(&swapped),
        Err(JoinError::Checksum)
    ));
}

#[test]
fn issue_15_a_bad_character_names_itself_and_its_position() {
    let text = JoinCode::encode(&sample());
    let mut chars: Vec<char> = text.chars().collect();
    chars[10] = '0';
    let changed: String = chars.into_iter().collect();
    let err = JoinCode::decode(&changed).expect_err("0 is not base32");
    assert!(
        matches!(
            err,
            JoinError::BadCharacter {
                character: '0',
                position: 11
            }
        ),
        "{err}"
    );
}

#[test]
fn issue_15_wrong_prefix_and_version_are_refused_as_such() {
    let text = JoinCode::encode(&sample());
    let body = &text[PREFIX.len()..];
    let err = JoinCode::decode(&format!("SL2-{body}")).expect_err("version 2");
    assert!(matches!(&err, JoinError::Version(v) if v == "2"), "{err}");
    assert!(err.to_string().contains("update shanlu"), "{err}");
    for wrong in [
        format!("XL1-{body}"),
        body.to_owned(),
        String::new(),
        "quic://origin:7443".to_owned(),
        "SL".to_owned(),
    ] {
        let err = JoinCode::decode(&wrong).expect_err(&wrong);
        assert!(matches!(err, JoinError::NotAJoinCode), "{wrong}: {err}");
        assert!(err.to_string().contains(PREFIX), "{err}");
    }
    // A version byte other than 1 under a valid checksum.
    let mut bytes = sample().payload();
    bytes[0] = 9;
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let err = JoinCode::decode(&format!("{PREFIX}{}", base32(&bytes))).expect_err("v9");
    assert!(matches!(&err, JoinError::Version(v) if v == "9"), "{err}");
    let huge = "A".repeat(MAX_TEXT + 1);
    assert!(matches!(
        JoinCode::decode(&huge),
        Err(JoinError::NotAJoinCode)
    ));
}

#[test]
fn issue_15_base32_matches_rfc_4648() {
    // RFC 4648 section 10, without padding.
    for (plain, encoded) in [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ] {
        assert_eq!(base32(plain.as_bytes()), encoded);
        let values: Vec<u8> = encoded
            .bytes()
            .map(|c| ALPHABET.iter().position(|&a| a == c).expect("alphabet") as u8)
            .collect();
        assert_eq!(unbase32(&values).expect("canonical"), plain.as_bytes());
    }
    // "MZ" has non-zero unused bits: not what base32 writes for any bytes.
    assert_eq!(unbase32(&[12, 25]), None);
    assert_eq!(
        unbase32(&[12, 25, 23]),
        None,
        "15 bits is no whole byte count"
    );
}

/// Reads the terminal rendering back into modules (each character is two
/// rows: upper and lower half) and decodes it with rqrr, as a phone would.
fn read_terminal_qr(text: &str) -> String {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let width = lines.iter().map(Vec::len).max().expect("lines");
    let height = lines.len() * 2;
    // Light modules are drawn: a drawn half is light, a blank one dark.
    let light = |x: usize, y: usize| -> bool {
        let c = lines[y / 2].get(x).copied().unwrap_or(' ');
        matches!((c, y % 2), ('█', _) | ('▀', 0) | ('▄', 1))
    };
    let scale = 4;
    // A white margin, as the paper or screen around a code would be.
    let margin = 8;
    let (w, h) = (width * scale + 2 * margin, height * scale + 2 * margin);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        if x < margin || y < margin || x >= w - margin || y >= h - margin {
            return 255;
        }
        if light((x - margin) / scale, (y - margin) / scale) {
            255
        } else {
            0
        }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    let (_, content) = grids[0].decode().expect("the QR code decodes");
    content
}

#[test]
fn issue_15_the_terminal_qr_code_decodes_back_to_the_join_code() {
    let text = JoinCode::encode(&sample());
    let drawn = qr(&text).expect("qr");
    assert!(drawn.contains('█') || drawn.contains('▀'), "{drawn}");
    let lines: Vec<&str> = drawn.lines().collect();
    assert!(lines.len() < 50, "{} lines: fits a terminal", lines.len());
    assert!(
        lines.iter().all(|l| l.chars().count() < 100),
        "fits a terminal"
    );
    let read = read_terminal_qr(&drawn);
    assert_eq!(read, text);
    assert_eq!(JoinCode::decode(&read).expect("decode"), sample());
}
