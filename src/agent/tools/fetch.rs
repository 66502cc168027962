//! `fetch_url`: GET a public web page for the model, size-capped, HTML turned into text.
//! Every address a host resolves to is checked, and the connection is pinned to the checked
//! addresses, so neither a DNS answer nor a redirect can reach private or loopback services.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Test-only: lets fetches reach 127.0.0.0/8 and ::1 (never other private ranges).
    pub allow_loopback: bool,
    pub max_bytes: usize,
    pub timeout: Duration,
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy { allow_loopback: false, max_bytes: 2 * 1024 * 1024, timeout: Duration::from_secs(20), max_redirects: 5 }
    }
}

/// Why an address may not be fetched, if it may not.
pub fn address_refusal(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_refusal(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_refusal(v4, allow_loopback);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                (!allow_loopback).then_some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if seg[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if seg[0] == 0x64 && seg[1] == 0xff9b {
                // NAT64 embeds an IPv4 address in the last 32 bits.
                let v4 = Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8);
                v4_refusal(v4, allow_loopback)
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

fn v4_refusal(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        (!allow_loopback).then_some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("shared (carrier-grade NAT)")
    } else if o[0] == 198 && (o[1] == 18 || o[1] == 19) {
        Some("benchmarking")
    } else if ip.is_multicast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignment")
    } else {
        None
    }
}

/// A fetched body.
pub struct Fetched {
    /// The URL without its query string (which may hold keys), for messages.
    pub shown: String,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The body was longer than the cap and was cut.
    pub cut: bool,
}

/// GETs `url` under the policy, following redirects (each hop checked), up to `max_bytes`.
pub async fn fetch_bytes(url: &str, policy: &FetchPolicy, max_bytes: usize) -> Result<Fetched, String> {
    let mut current = url::Url::parse(url.trim()).map_err(|e| format!("not a URL: {e}"))?;
    for hop in 0..=policy.max_redirects {
        let (client, shown) = pinned_client(&current, policy).await?;
        let resp = client
            .get(current.clone())
            .header(reqwest::header::ACCEPT, "text/html, application/json, text/plain, application/yaml, */*;q=0.5")
            .send()
            .await
            .map_err(|e| format!("GET {shown} failed: {}", e.without_url()))?;
        let status = resp.status();
        if status.is_redirection() {
            let Some(loc) = resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()) else {
                return Err(format!("GET {shown}: HTTP {status} without a Location"));
            };
            current = current.join(loc).map_err(|e| format!("GET {shown}: bad redirect target {loc:?}: {e}"))?;
            if hop == policy.max_redirects {
                return Err(format!("too many redirects (more than {})", policy.max_redirects));
            }
            continue;
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let (body, cut) = read_capped(resp, max_bytes).await.map_err(|e| format!("GET {shown}: {e}"))?;
        return Ok(Fetched { shown, status: status.as_u16(), content_type, body, cut });
    }
    unreachable!("the loop returns on its last hop")
}

/// Fetches `url` and returns readable text (the caller trims it for the model).
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<String, String> {
    let Fetched { shown, status, content_type: ctype, body, cut } = fetch_bytes(url, policy, policy.max_bytes).await?;
    let looks_binary = body.iter().take(1024).any(|b| *b == 0);
    if looks_binary || ctype.starts_with("image/") || ctype.starts_with("audio/") || ctype.starts_with("video/") || ctype.contains("pdf") || ctype.contains("octet-stream") {
        return Err(format!("GET {shown}: HTTP {status}, {ctype:?} is not text"));
    }
    let raw = String::from_utf8_lossy(&body);
    let is_html = ctype.contains("html") || (ctype.is_empty() && raw.trim_start().to_ascii_lowercase().starts_with("<!doctype html"));
    let text = if is_html { html_to_text(&raw) } else { raw.into_owned() };
    let mut out = format!("GET {shown} → HTTP {status}{}\n\n{text}", if ctype.is_empty() { String::new() } else { format!(" ({ctype})") });
    if cut {
        out.push_str(&format!("\n[body cut at {} bytes]", policy.max_bytes));
    }
    Ok(out)
}

/// A client that can reach only the checked addresses of this URL's host.
async fn pinned_client(url: &url::Url, policy: &FetchPolicy) -> Result<(reqwest::Client, String), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("refused: only http and https URLs can be fetched, not {}:", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("refused: URLs with credentials in them are not fetched".into());
    }
    let mut shown = url.clone();
    shown.set_query(None);
    let shown = shown.to_string();
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for a in &addrs {
        if let Some(why) = address_refusal(a.ip(), policy.allow_loopback) {
            return Err(format!("refused: {host} resolves to {}, a {why} address; only public addresses are fetched", a.ip()));
        }
    }
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .user_agent(concat!("connector-factory/", env!("CARGO_PKG_VERSION")));
    if bare.parse::<IpAddr>().is_err() {
        b = b.resolve_to_addrs(bare, &addrs);
    }
    Ok((b.build().map_err(|e| format!("cannot build an HTTP client: {e}"))?, shown))
}

async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<(Vec<u8>, bool), String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading the body: {}", e.without_url()))? {
        let room = max - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// Readable text from HTML: scripts and styles dropped, headings, list items, paragraphs and
/// table cells kept apart, links kept with their targets, entities decoded.
pub fn html_to_text(html: &str) -> String {
    use regex::Regex;
    let mut s = Regex::new(r"(?s)<!--.*?-->").unwrap().replace_all(html, "").into_owned();
    for tag in ["script", "style", "noscript", "svg", "template", "iframe"] {
        let re = Regex::new(&format!(r"(?is)<{tag}\b.*?</{tag}\s*>")).unwrap();
        s = re.replace_all(&s, " ").into_owned();
    }
    let heading = Regex::new(r"(?i)<h([1-6])\b[^>]*>").unwrap();
    s = heading.replace_all(&s, |c: &regex::Captures| format!("\n\n{} ", "#".repeat(c[1].parse().unwrap_or(1)))).into_owned();
    let link = Regex::new(r#"(?is)<a\b[^>]*?href\s*=\s*["']([^"']*)["'][^>]*>(.*?)</a\s*>"#).unwrap();
    s = link
        .replace_all(&s, |c: &regex::Captures| {
            let target = &c[1];
            if target.starts_with('#') || target.starts_with("javascript:") { c[2].to_string() } else { format!("[{}]({target})", &c[2]) }
        })
        .into_owned();
    let rules: [(&str, &str); 6] = [
        (r"(?i)<li\b[^>]*>", "\n- "),
        (r"(?i)<br\s*/?>", "\n"),
        (r"(?i)<(td|th)\b[^>]*>", " | "),
        (r"(?i)<pre\b[^>]*>", "\n```\n"),
        (r"(?i)</pre\s*>", "\n```\n"),
        (r"(?i)</?(p|div|section|article|main|header|footer|nav|aside|tr|table|thead|tbody|ul|ol|dl|dt|dd|blockquote|h[1-6]|title|form)\b[^>]*>", "\n"),
    ];
    for (pat, rep) in rules {
        s = Regex::new(pat).unwrap().replace_all(&s, rep).into_owned();
    }
    s = Regex::new(r"(?s)<[^>]*>").unwrap().replace_all(&s, "").into_owned();
    let s = decode_entities(&s);
    let mut out = String::new();
    let mut blank = 0;
    for line in s.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank += 1;
            if blank == 1 && !out.is_empty() {
                out.push('\n');
            }
            continue;
        }
        blank = 0;
        out.push_str(&line);
        out.push('\n');
    }
    out.trim().to_string()
}

fn decode_entities(s: &str) -> String {
    let re = regex::Regex::new(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});").unwrap();
    re.replace_all(s, |c: &regex::Captures| {
        let e = &c[1];
        let decoded = if let Some(hex) = e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).map(String::from)
        } else if let Some(dec) = e.strip_prefix('#') {
            dec.parse::<u32>().ok().and_then(char::from_u32).map(String::from)
        } else {
            match e {
                "amp" => Some("&"),
                "lt" => Some("<"),
                "gt" => Some(">"),
                "quot" => Some("\""),
                "apos" => Some("'"),
                "nbsp" => Some(" "),
                "mdash" => Some("—"),
                "ndash" => Some("–"),
                "hellip" => Some("…"),
                "copy" => Some("©"),
                _ => None,
            }
            .map(String::from)
        };
        decoded.unwrap_or_else(|| c[0].to_string())
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_policy() {
        let no = |s: &str| address_refusal(s.parse().unwrap(), false);
        for bad in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "224.0.0.1", "::"] {
            assert!(no(bad).is_some(), "{bad} must be refused");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(no(good).is_none(), "{good} must be allowed");
        }
        assert!(address_refusal("127.0.0.1".parse().unwrap(), true).is_none());
        assert!(address_refusal("::ffff:127.0.0.1".parse().unwrap(), true).is_none());
        assert!(address_refusal("10.0.0.1".parse().unwrap(), true).is_some(), "the test setting opens loopback only");
    }

    #[test]
    fn html_becomes_text() {
        let t = html_to_text(
            "<html><head><title>Docs</title><style>p{}</style><script>var x='<p>';</script></head><body><h2>List widgets</h2><p>Returns a <a href=\"/v1/widgets\">page</a> of widgets &amp; gadgets&#33;</p><ul><li>limit</li><li>cursor</li></ul><!-- hidden --></body></html>",
        );
        assert!(t.contains("## List widgets"), "{t}");
        assert!(t.contains("[page](/v1/widgets) of widgets & gadgets!"), "{t}");
        assert!(t.contains("- limit\n- cursor"), "{t}");
        assert!(!t.contains("var x") && !t.contains("hidden") && !t.contains("p{}"), "{t}");
    }

    #[tokio::test]
    async fn refuses_private_targets_before_connecting() {
        let p = FetchPolicy::default();
        for url in ["http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "http://user:pw@example.com/"] {
            let e = fetch(url, &p).await.unwrap_err();
            assert!(e.starts_with("refused"), "{url}: {e}");
        }
    }
}

/// Fetches `url` under the policy into `dir` (for a description the generator then reads),, keeping the URL's file name so its format is recognised.
pub async fn fetch_to_file(url: &str, policy: &FetchPolicy, dir: &std::path::Path, max_bytes: usize) -> anyhow::Result<String> {
    use anyhow::{Context, bail};
    let got = fetch_bytes(url, policy, max_bytes).await.map_err(anyhow::Error::msg)?;
    if !(200..300).contains(&got.status) {
        bail!("GET {} answered HTTP {}", got.shown, got.status);
    }
    if got.cut {
        bail!("{} is larger than {max_bytes} bytes", got.shown);
    }
    let name = url::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
        .filter(|n| !n.is_empty() && !n.contains(['\\', '/']) && n != ".." && n != ".")
        .unwrap_or_else(|| "openapi".into());
    let path = dir.join(name);
    std::fs::write(&path, &got.body).with_context(|| format!("saving {}", got.shown))?;
    Ok(path.display().to_string())
}
