//! Issue form → [`ConnectorRequest`].
//!
//! GitHub renders a submitted issue form as Markdown: one `### <field label>` heading per field,
//! then the answer, with `_No response_` for an optional field left blank. The labels in
//! `.github/ISSUE_TEMPLATE/connector-request.yml` must be exactly the [`Field`] headings below (a
//! test checks both ways).
//!
//! Validation looks at every field before answering, so the requester gets one comment listing
//! all that needs fixing rather than one problem per round trip.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The label that marks an issue as a connector request (applied by the issue form).
pub const LABEL: &str = "connector-request";

/// What GitHub writes for an optional field left empty.
const NO_RESPONSE: &str = "_No response_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Name,
    DocsUrl,
    OpenapiUrl,
    Auth,
    Streams,
    Language,
    Notes,
}

impl Field {
    pub const ALL: [Field; 7] =
        [Field::Name, Field::DocsUrl, Field::OpenapiUrl, Field::Auth, Field::Streams, Field::Language, Field::Notes];

    /// The form label, which is also the heading in the rendered issue.
    pub fn heading(self) -> &'static str {
        match self {
            Field::Name => "Connector name",
            Field::DocsUrl => "API docs URL",
            Field::OpenapiUrl => "OpenAPI description URL",
            Field::Auth => "Auth type",
            Field::Streams => "Streams wanted",
            Field::Language => "Language",
            Field::Notes => "Notes",
        }
    }

    fn from_heading(text: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.heading().eq_ignore_ascii_case(text.trim()))
    }
}

/// Every heading this parser knows, in form order.
pub fn headings() -> Vec<&'static str> {
    Field::ALL.iter().map(|f| f.heading()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    ApiKey,
    BearerToken,
    Basic,
    Oauth2,
    None,
    /// The requester does not know; the agent finds out from the docs.
    NotSure,
}

impl Auth {
    pub const ALL: [Auth; 6] = [Auth::ApiKey, Auth::BearerToken, Auth::Basic, Auth::Oauth2, Auth::None, Auth::NotSure];

    /// The dropdown option text.
    pub fn label(self) -> &'static str {
        match self {
            Auth::ApiKey => "API key",
            Auth::BearerToken => "Bearer token",
            Auth::Basic => "Basic",
            Auth::Oauth2 => "OAuth2",
            Auth::None => "None",
            Auth::NotSure => "Not sure",
        }
    }

    fn parse(text: &str) -> Option<Auth> {
        let key = normalize_choice(text);
        Auth::ALL.into_iter().find(|a| normalize_choice(a.label()) == key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Python,
    Typescript,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Python, Language::Typescript];

    pub fn label(self) -> &'static str {
        match self {
            Language::Python => "Python",
            Language::Typescript => "TypeScript",
        }
    }

    fn parse(text: &str) -> Option<Language> {
        let key = normalize_choice(text);
        Language::ALL.into_iter().find(|l| normalize_choice(l.label()) == key)
    }
}

/// Lower case, letters and digits only: "API key", "api-key" and "ApiKey" are the same choice.
fn normalize_choice(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorRequest {
    /// As the requester wrote it.
    pub name: String,
    /// Folder name in the registry, derived from `name`.
    pub slug: String,
    pub docs_url: String,
    pub openapi_url: Option<String>,
    pub auth: Auth,
    /// Stream names in snake_case, in the order asked for.
    pub streams: Vec<String>,
    pub language: Language,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestError {
    pub field: Field,
    pub message: String,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field.heading(), self.message)
    }
}

/// Everything wrong with a request, one entry per problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct InvalidRequest {
    pub errors: Vec<RequestError>,
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl InvalidRequest {
    pub fn fields(&self) -> Vec<Field> {
        self.errors.iter().map(|e| e.field).collect()
    }

    /// The comment posted on the issue.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("This connector request can't be built yet. Please edit the issue and fix:\n\n");
        for e in &self.errors {
            out.push_str(&format!("- **{}**: {}\n", e.field.heading(), e.message));
        }
        out.push_str("\nThe factory reads the issue again when it is edited.\n");
        out
    }
}

/// The answer under each known heading; `None` when the heading is absent.
fn sections(body: &str) -> Vec<(Field, String)> {
    let mut out: Vec<(Field, Vec<&str>)> = Vec::new();
    for line in body.lines() {
        let heading = line.strip_prefix("### ").and_then(Field::from_heading);
        match heading {
            Some(field) => out.push((field, Vec::new())),
            // Text before the first heading is not an answer; an unknown `### ` inside a
            // free-text answer stays part of that answer.
            None => {
                if let Some((_, lines)) = out.last_mut() {
                    lines.push(line);
                }
            }
        }
    }
    out.into_iter()
        .map(|(field, lines)| {
            let text = lines.join("\n").trim().to_string();
            (field, if text == NO_RESPONSE { String::new() } else { text })
        })
        .collect()
}

fn shown(value: &str) -> String {
    const MAX: usize = 80;
    let one_line = value.replace('\n', " ");
    if one_line.chars().count() > MAX {
        format!("'{}…'", one_line.chars().take(MAX).collect::<String>())
    } else {
        format!("'{one_line}'")
    }
}

fn http_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_start_matches('<').trim_end_matches('>');
    match url::Url::parse(trimmed) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(u.to_string())
        }
        _ => Err(format!("expected an http(s) URL, got {}", shown(value))),
    }
}

/// "Stripe", "Google Sheets" → "stripe", "google-sheets".
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if (c.is_whitespace() || matches!(c, '-' | '_' | '.')) && !slug.ends_with('-') {
            slug.push('-');
        } else if !(c.is_whitespace() || matches!(c, '-' | '_' | '.')) {
            // Anything else makes the name unusable; keep it so validation can say so.
            slug.push(c);
        }
    }
    slug.trim_matches('-').to_string()
}

fn stream_name(item: &str) -> String {
    let mut name = String::new();
    for c in item.trim().chars() {
        if c.is_whitespace() || c == '-' {
            if !name.ends_with('_') {
                name.push('_');
            }
        } else {
            name.push(c.to_ascii_lowercase());
        }
    }
    name.trim_matches('_').to_string()
}

fn streams(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // Markdown list markers: "- x", "* x", "1. x", "- [ ] x".
        let line = line
            .strip_prefix("- [ ] ")
            .or_else(|| line.strip_prefix("- [x] "))
            .or_else(|| line.strip_prefix("- "))
            .or_else(|| line.strip_prefix("* "))
            .unwrap_or(line);
        let line = match line.split_once(". ") {
            Some((n, rest)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => rest,
            _ => line,
        };
        for item in line.split(',') {
            let item = item.trim().trim_matches('`');
            if item.is_empty() {
                continue;
            }
            let name = stream_name(item);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

fn valid_stream(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parses and validates a connector request issue body.
pub fn parse(body: &str) -> Result<ConnectorRequest, InvalidRequest> {
    parse_with(body, None)
}

/// Like [`parse`], for a request read from a file by `connector-factory run`: its OpenAPI field
/// may also name a local file (a `file://` URL, or a path relative to `base_dir`, the request
/// file's folder), which becomes an absolute path. Issues never get this: a path in an issue
/// would make the app read its own disk.
pub fn parse_local(body: &str, base_dir: &std::path::Path) -> Result<ConnectorRequest, InvalidRequest> {
    parse_with(body, Some(base_dir))
}

/// An http(s) URL, or with `base_dir` an existing local file.
fn openapi_location(value: &str, base_dir: Option<&std::path::Path>) -> Result<String, String> {
    let Some(base) = base_dir else { return http_url(value) };
    let trimmed = value.trim().trim_start_matches('<').trim_end_matches('>');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return http_url(value);
    }
    let path = match url::Url::parse(trimmed) {
        Ok(u) if u.scheme() == "file" => {
            u.to_file_path().map_err(|_| format!("expected a file:// URL of a local file, got {}", shown(value)))?
        }
        _ => base.join(trimmed),
    };
    match path.canonicalize() {
        Ok(p) if p.is_file() => Ok(p.display().to_string()),
        _ => Err(format!(
            "expected an http(s) URL, a file:// URL or a path to an existing file, got {} (looked for {})",
            shown(value),
            path.display()
        )),
    }
}

fn parse_with(body: &str, local_base: Option<&std::path::Path>) -> Result<ConnectorRequest, InvalidRequest> {
    let found = sections(body);
    let answer = |field: Field| -> Option<String> {
        // A heading given twice: the last answer wins, as when someone edits by appending.
        found.iter().rev().find(|(f, _)| *f == field).map(|(_, text)| text.clone())
    };
    let mut errors = Vec::new();
    let mut fail = |field: Field, message: String| errors.push(RequestError { field, message });
    let missing = |field: Field| {
        format!(
            "missing: the issue has no '### {}' section (open requests with the connector request form)",
            field.heading()
        )
    };

    let name = answer(Field::Name);
    let slug = match name.as_deref() {
        None => {
            fail(Field::Name, missing(Field::Name));
            String::new()
        }
        Some("") => {
            fail(Field::Name, "required: the API or product name, e.g. 'Stripe'".into());
            String::new()
        }
        Some(n) => {
            let slug = slugify(n);
            let ok = !slug.is_empty()
                && slug.len() <= 64
                && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                fail(
                    Field::Name,
                    format!(
                        "expected letters, digits, spaces or hyphens (at most 64; it becomes the folder name), got {}",
                        shown(n)
                    ),
                );
            }
            slug
        }
    };

    let docs_url = match answer(Field::DocsUrl) {
        None => {
            fail(Field::DocsUrl, missing(Field::DocsUrl));
            String::new()
        }
        Some(v) if v.is_empty() => {
            fail(Field::DocsUrl, "required: expected an http(s) URL of the API reference".into());
            String::new()
        }
        Some(v) => http_url(&v).unwrap_or_else(|e| {
            fail(Field::DocsUrl, e);
            String::new()
        }),
    };

    let openapi_url = match answer(Field::OpenapiUrl) {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => match openapi_location(&v, local_base) {
            Ok(u) => Some(u),
            Err(e) => {
                fail(Field::OpenapiUrl, format!("{e} (or leave it empty)"));
                None
            }
        },
    };

    let choices = Auth::ALL.map(|a| format!("'{}'", a.label())).join(", ");
    let auth = match answer(Field::Auth) {
        None => {
            fail(Field::Auth, missing(Field::Auth));
            Auth::NotSure
        }
        Some(v) => Auth::parse(&v).unwrap_or_else(|| {
            let got = if v.is_empty() { "nothing".to_string() } else { shown(&v) };
            fail(Field::Auth, format!("expected one of {choices}, got {got}"));
            Auth::NotSure
        }),
    };

    let stream_list = match answer(Field::Streams) {
        None => {
            fail(Field::Streams, missing(Field::Streams));
            Vec::new()
        }
        Some(v) => {
            let list = streams(&v);
            if list.is_empty() {
                fail(Field::Streams, "expected at least one stream name, e.g. 'customers, invoices'".into());
            }
            let bad: Vec<String> = list.iter().filter(|s| !valid_stream(s)).map(|s| shown(s)).collect();
            if !bad.is_empty() {
                fail(
                    Field::Streams,
                    format!(
                        "expected names made of letters, digits and underscores, starting with a letter, got {}",
                        bad.join(", ")
                    ),
                );
            }
            list
        }
    };

    let language = match answer(Field::Language).as_deref() {
        None | Some("") => Language::default(),
        Some(v) => Language::parse(v).unwrap_or_else(|| {
            let choices = Language::ALL.map(|l| format!("'{}'", l.label())).join(" or ");
            fail(Field::Language, format!("expected {choices}, got {}", shown(v)));
            Language::default()
        }),
    };

    let notes = answer(Field::Notes).filter(|n| !n.is_empty());

    if !errors.is_empty() {
        return Err(InvalidRequest { errors });
    }
    Ok(ConnectorRequest {
        name: name.unwrap_or_default(),
        slug,
        docs_url,
        openapi_url,
        auth,
        streams: stream_list,
        language,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Stripe"), "stripe");
        assert_eq!(slugify("  Google  Sheets "), "google-sheets");
        assert_eq!(slugify("pay_pal.v2"), "pay-pal-v2");
        assert_eq!(slugify("Bad!"), "bad!");
    }

    #[test]
    fn stream_lists() {
        assert_eq!(
            streams("- Customers\n- invoice items\n1. charges, refunds"),
            vec!["customers", "invoice_items", "charges", "refunds"]
        );
        assert_eq!(streams("`customers`, customers"), vec!["customers"]);
    }

    #[test]
    fn choices_are_forgiving() {
        assert_eq!(Auth::parse("api key"), Some(Auth::ApiKey));
        assert_eq!(Auth::parse("OAuth 2"), Some(Auth::Oauth2));
        assert_eq!(Language::parse("typescript"), Some(Language::Typescript));
        assert_eq!(Language::parse("rust"), None);
    }
}
