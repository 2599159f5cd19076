//! Reading a request head: [`parse_head`] decides, from the bytes read so
//! far, whether a request is a plain one the front door may answer itself,
//! one for hyper, one still arriving, or one refused for its length.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use super::{MAX_HEAD, MAX_TARGET};

const MAX_HEADERS: usize = 48;

/// A request this front answers itself.
pub(super) struct Plain {
    pub(super) head_len: usize,
    pub(super) method: Method,
    pub(super) target: String,
    pub(super) headers: HeaderMap,
    pub(super) close: bool,
}

pub(super) enum Head {
    Plain(Plain),
    Partial,
    /// Anything hyper should see.
    Other,
    /// Refused here with this status (414, 431), the connection then closed.
    TooLong(u16),
}

pub(super) fn parse_head(buffer: &[u8]) -> Head {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let parsed = request.parse(buffer);
    // The request line: method, target and version take a few bytes more than the target.
    let line_len = buffer.iter().position(|&byte| byte == b'\n');
    if request.path.is_some_and(|path| path.len() > MAX_TARGET)
        || line_len.unwrap_or(buffer.len()) > MAX_TARGET + 32
    {
        return Head::TooLong(414);
    }
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Head::TooLong(431),
        Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) => return Head::TooLong(431),
        // More headers than parsed here: still a head to finish (within
        // MAX_HEAD and the head timeout) before hyper may have it.
        Err(httparse::Error::TooManyHeaders) if !buffer.windows(4).any(|w| w == b"\r\n\r\n") => {
            return if buffer.len() < MAX_HEAD {
                Head::Partial
            } else {
                Head::TooLong(431)
            };
        }
        Err(_) => return Head::Other,
    };
    let method = match request.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Head::Other,
    };
    if request.version != Some(1) {
        return Head::Other;
    }
    let Some(target) = request.path.map(str::to_owned) else {
        return Head::Other;
    };
    // A path over the router's limit is refused there, with its message.
    let path_len = target.split('?').next().map_or(0, str::len);
    if path_len > crate::classroom::MAX_PATH_LEN {
        return Head::Other;
    }
    let mut headers = HeaderMap::new();
    let mut close = false;
    for slot in request.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(slot.name.as_bytes()),
            HeaderValue::from_bytes(slot.value),
        ) else {
            return Head::Other;
        };
        if name == header::CONTENT_LENGTH && value.as_bytes() != b"0"
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Head::Other;
        }
        if name == header::CONNECTION
            && value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        {
            close = true;
        }
        headers.append(name, value);
    }
    Head::Plain(Plain {
        head_len,
        method,
        target,
        headers,
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_requests_stay_here() {
        let plain = b"GET /courses/a/b/c.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\nGET";
        let Head::Plain(request) = parse_head(plain) else {
            panic!("a plain GET is answered here");
        };
        assert_eq!(request.head_len, plain.len() - 3);
        assert_eq!(
            request.headers.get(header::RANGE).map(|v| v.as_bytes()),
            Some(&b"bytes=0-1"[..])
        );
        assert!(!request.close);
        assert!(matches!(
            parse_head(b"GET /files/ab HTTP/1.1\r\nHost"),
            Head::Partial
        ));
        for other in [
            &b"POST /files/ab HTTP/1.1\r\n\r\n"[..],
            b"GET /files/ab HTTP/1.0\r\n\r\n",
            b"GET /files/ab HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /files/ab HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /files/ab HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(other), Head::Other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let Head::Plain(closing) =
            parse_head(b"HEAD /x HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n")
        else {
            panic!("HEAD is answered here");
        };
        assert!(closing.close);
    }

    /// Issue 11: long targets and heads are refused here, not handed on.
    #[test]
    fn oversized_targets_and_heads_are_refused_issue_11() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(MAX_TARGET)
        );
        assert!(matches!(
            parse_head(long_target.as_bytes()),
            Head::TooLong(414)
        ));
        // A request line still arriving but already too long.
        let partial_line = format!("GET /{}", "a".repeat(MAX_TARGET + 64));
        assert!(matches!(
            parse_head(partial_line.as_bytes()),
            Head::TooLong(414)
        ));
        let filler = "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(MAX_HEAD / 40);
        let partial_head = format!("GET / HTTP/1.1\r\n{filler}");
        assert!(matches!(
            parse_head(partial_head.as_bytes()),
            Head::TooLong(431)
        ));
        let few_long = format!("GET / HTTP/1.1\r\nX-Big: {}", "b".repeat(MAX_HEAD));
        assert!(matches!(
            parse_head(few_long.as_bytes()),
            Head::TooLong(431)
        ));
        // Many headers still arriving are waited for, a finished head goes to hyper.
        let many = "X-A: b\r\n".repeat(MAX_HEADERS + 1);
        assert!(matches!(
            parse_head(format!("GET / HTTP/1.1\r\n{many}").as_bytes()),
            Head::Partial
        ));
        assert!(matches!(
            parse_head(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Head::Other
        ));
        // A target within the limit whose path is over the router's limit
        // goes to the router, which answers 414 with its message.
        let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET - 1));
        assert!(matches!(parse_head(at_limit.as_bytes()), Head::Other));
        let longest_path = format!(
            "GET /{}?{} HTTP/1.1\r\n\r\n",
            "a".repeat(crate::classroom::MAX_PATH_LEN - 1),
            "q".repeat(MAX_TARGET - crate::classroom::MAX_PATH_LEN - 1)
        );
        assert!(matches!(
            parse_head(longest_path.as_bytes()),
            Head::Plain(_)
        ));
    }
}
