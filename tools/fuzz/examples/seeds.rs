//! Writes the seed inputs of every target into `tools/fuzz/corpus/<target>/`
//! (`seed-*` files), made by shanlu's own encoders so each starts from valid
//! frames, objects, chunks, headers and toml files:
//!
//! ```sh
//! cargo run -p shanlu-fuzz --example seeds
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use catalog::testdata::{sample_catalog, sample_course, sample_lesson, sample_manifest};
use catalog::{Catalog, Hash, Object, OriginKey};
use server::codec;
use server::protocol::{self, ChunkWant, Request, Response};

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    for (target, name, bytes) in seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    println!("wrote {written} seeds under {}", root.display());
    Ok(())
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_owned(), bytes));
    };

    // Frames: each request and response alone, as a bare body, and all in one stream.
    let requests = [
        Request::Hello {
            version: protocol::VERSION,
            token: "edge-token-0123".into(),
        },
        Request::GetCatalog {
            have_sequence: Some(7),
        },
        Request::GetCatalog {
            have_sequence: None,
        },
        Request::GetObjects {
            hashes: vec![Hash::of(b"a"), Hash::of(b"b")],
        },
        Request::GetChunks {
            wants: vec![
                ChunkWant {
                    hash: Hash::of(b"c"),
                    bases: vec![],
                },
                ChunkWant {
                    hash: Hash::of(b"d"),
                    bases: vec![Hash::of(b"e")],
                },
            ],
        },
        Request::ReportStatus {
            status: r#"{"name":"school-1","courses":2}"#.into(),
        },
        Request::GetFileChunks {
            files: vec![protocol::FileWants {
                file: Hash::of(b"f"),
                wants: vec![ChunkWant {
                    hash: Hash::of(b"g"),
                    bases: vec![Hash::of(b"h")],
                }],
            }],
        },
    ];
    let signed = OriginKey::from_bytes(&[42; 32]).sign(&sample_catalog());
    let responses = [
        Response::Welcome {
            version: protocol::VERSION,
            edge_name: "彝文小学".into(),
        },
        Response::Catalog {
            signed: Some(signed.encode()),
        },
        Response::Catalog { signed: None },
        Response::Object {
            hash: Hash::of(b"o"),
            bytes: Object::from(sample_manifest()).encode(),
        },
        Response::Chunk {
            hash: Hash::of(b"k"),
            encoding: codec::Encoding::Zstd,
            bytes: codec::encode(&[b'a'; 300], None).1,
        },
        Response::Missing {
            hash: Hash::of(b"m"),
        },
        Response::Ok,
        Response::Error {
            message: "token refused".into(),
        },
    ];
    let mut stream = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let frame = protocol::encode(request);
        add("frame", &format!("request-{index}"), frame.clone());
        add(
            "frame",
            &format!("request-body-{index}"),
            frame[4..].to_vec(),
        );
        stream.extend(frame);
    }
    add("frame", "request-stream", std::mem::take(&mut stream));
    for (index, response) in responses.iter().enumerate() {
        let frame = protocol::encode(response);
        add("frame", &format!("response-{index}"), frame.clone());
        add(
            "frame",
            &format!("response-body-{index}"),
            frame[4..].to_vec(),
        );
        stream.extend(frame);
    }
    add("frame", "response-stream", stream);

    // Objects, and signed catalogs: one by a key nobody should trust, one by
    // the fuzz target's own key so the verified path runs too.
    add(
        "object",
        "manifest",
        Object::from(sample_manifest()).encode(),
    );
    add("object", "lesson", Object::from(sample_lesson()).encode());
    add("object", "course", Object::from(sample_course()).encode());
    add("object", "catalog", Object::from(sample_catalog()).encode());
    add(
        "object",
        "catalog-empty",
        Object::from(Catalog::empty(0)).encode(),
    );
    add("object", "signed-catalog", signed.encode());
    add(
        "object",
        "signed-catalog-fuzz-key",
        OriginKey::from_bytes(&[7; 32])
            .sign(&sample_catalog())
            .encode(),
    );

    // Chunks: selector, expected length (2 bytes), dictionary length, dictionary, bytes.
    let text = "<p>二十以内的加法 addition within twenty</p>\n"
        .repeat(8)
        .into_bytes();
    let mut edited = text.clone();
    edited[40..48].copy_from_slice(b"EDITED!!");
    let dictionary = &text[..200];
    let chunk = |selector: u8, expected: usize, dictionary: &[u8], bytes: &[u8]| {
        let mut input = vec![selector];
        input.extend_from_slice(&(expected as u16).to_le_bytes());
        input.push(dictionary.len() as u8);
        input.extend_from_slice(dictionary);
        input.extend_from_slice(bytes);
        input
    };
    add("chunk", "raw", chunk(0, 5, &[], b"hello"));
    add(
        "chunk",
        "zstd",
        chunk(1, text.len(), &[], &codec::encode(&text, None).1),
    );
    add(
        "chunk",
        "delta",
        chunk(
            2,
            200,
            dictionary,
            &codec::encode(&edited[..200], Some(dictionary)).1,
        ),
    );
    add(
        "chunk",
        "delta-without-base",
        chunk(
            0x82,
            200,
            dictionary,
            &codec::encode(&edited[..200], Some(dictionary)).1,
        ),
    );

    // Range headers: length, newline, header.
    for (index, header) in [
        "1000\nbytes=0-0",
        "1000\nbytes=-100",
        "1000\nbytes=990-",
        "1000\nbytes=500-99999",
        "1000\nbytes=0-1, 10-19",
        "1000\nbytes=1000-",
        "1000\nbytes=-0",
        "1000\nbytes=5-1",
        "0\nbytes=0-0",
        "18446744073709551615\nbytes=18446744073709551614-18446744073709551615",
        "1000\nbytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16",
        "1000",
    ]
    .into_iter()
    .enumerate()
    {
        add("range", &format!("{index}"), header.as_bytes().to_vec());
    }

    // Request heads, as tablets and browsers send them.
    for (index, head) in [
        &b"GET /courses/a/b/c.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\nGET"[..],
        b"GET /courses/%E6%95%B0%E5%AD%A6/01/video/a%20b.mp4?x=1 HTTP/1.1\r\nHost: 10.0.0.2:8080\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nIf-Range: \"abc\"\r\n\r\n",
        b"GET /assets/c/cover.png HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"ea8f\"\r\n\r\n",
        b"GET /files/ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /x HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n",
        b"GET /files/ab HTTP/1.1\r\nHost",
        b"POST /files/ab HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /files/ab HTTP/1.0\r\n\r\n",
        b"GET /files/ab HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /files/ab HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GARBAGE\r\n\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        add("head", &format!("{index}"), head.to_vec());
    }

    // course.toml and lesson.toml: the sample courses' own, and the other forms.
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-courses");
    for file in [
        "grade3-math/course.toml",
        "grade3-math/01-counting/lesson.toml",
        "yi-literacy/course.toml",
        "yi-literacy/03-nuosu-script/lesson.toml",
    ] {
        if let Ok(bytes) = std::fs::read(samples.join(file)) {
            add("toml", &file.replace('/', "-"), bytes);
        }
    }
    for (index, text) in [
        "id = \"01\"\nentry = \"./video/a.mp4\"\nduration = \"1h20m\"\n",
        "duration = 600\n",
        "duration = \"12:30\"\n[title]\nzh = \"数数\"\n",
        "entry = \"../x.html\"\n",
        "id = \"a/b\"\ngrade = 3\n",
        "title = 5\n",
        "unknown = true\n",
        "[title\nzh = \"未闭合\"\n",
    ]
    .into_iter()
    .enumerate()
    {
        add("toml", &format!("{index}"), text.as_bytes().to_vec());
    }
    out
}
