//! `/factory ...` commands in issue and pull-request comments.
//!
//! Comments are read as Markdown, so that quoting or showing a command never runs it: text in
//! fenced or indented code blocks, in block quotes (a reply that quotes an earlier command), in
//! inline code, in headings, lists, tables and HTML is not looked at (a list of commands is
//! documentation, and tight list items are not paragraphs anyway). A command is a paragraph line
//! that starts with `/factory`; for `retry` the rest of that line and the paragraph's following
//! lines (up to the next command line) are the guidance.

use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde::Serialize;

pub const PREFIX: &str = "/factory";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Run the request again (same branch, same PR), with optional guidance for the agent.
    Retry {
        guidance: Option<String>,
    },
    Cancel,
    Status,
    /// `/factory` followed by something else; answered with the list of commands.
    Unknown {
        verb: String,
    },
}

impl Command {
    pub fn verb(&self) -> &str {
        match self {
            Command::Retry { .. } => "retry",
            Command::Cancel => "cancel",
            Command::Status => "status",
            Command::Unknown { verb } => verb,
        }
    }
}

/// One line of a paragraph as plain text. `starts_with_text` is false when the line begins with
/// inline code or HTML, which must not count as a command.
#[derive(Default)]
struct Line {
    text: String,
    starts_with_text: Option<bool>,
}

impl Line {
    fn push(&mut self, piece: &str, is_text: bool) {
        if self.starts_with_text.is_none() && !piece.trim().is_empty() {
            self.starts_with_text = Some(is_text);
        }
        self.text.push_str(piece);
    }
}

/// The lines of every paragraph that is outside code blocks and quotes, one Vec per paragraph.
fn paragraphs(markdown: &str) -> Vec<Vec<Line>> {
    let mut out = Vec::new();
    // Depth of constructs whose content is never a command.
    let mut hidden = 0usize;
    let mut current: Option<Vec<Line>> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(
                Tag::CodeBlock(_)
                | Tag::BlockQuote(_)
                | Tag::Heading { .. }
                | Tag::Table(_)
                | Tag::HtmlBlock
                | Tag::List(_),
            ) => {
                hidden += 1;
            }
            Event::End(
                TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::Heading(_)
                | TagEnd::Table
                | TagEnd::HtmlBlock
                | TagEnd::List(_),
            ) => {
                hidden = hidden.saturating_sub(1);
            }
            Event::Start(Tag::Paragraph) if hidden == 0 => current = Some(vec![Line::default()]),
            Event::End(TagEnd::Paragraph) => {
                if let Some(p) = current.take() {
                    out.push(p);
                }
            }
            _ => {
                let Some(lines) = current.as_mut() else { continue };
                let line = lines.last_mut().expect("a paragraph starts with one line");
                match event {
                    Event::Text(t) => line.push(&t, true),
                    // Kept with its backticks so guidance reads as written.
                    Event::Code(c) => line.push(&format!("`{c}`"), false),
                    Event::InlineHtml(h) | Event::Html(h) => line.push(&h, false),
                    Event::SoftBreak | Event::HardBreak => lines.push(Line::default()),
                    _ => {}
                }
            }
        }
    }
    out
}

/// If `line` is a command line, the verb and the rest of the line.
fn command_line(line: &Line) -> Option<(String, String)> {
    if line.starts_with_text != Some(true) {
        return None;
    }
    let text = line.text.trim_start();
    let head = text.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = &text[PREFIX.len()..];
    // `/factory-bot` or `/factoryx` are other words, not this command.
    if rest.chars().next().is_some_and(|c| !c.is_whitespace()) {
        return None;
    }
    let rest = rest.trim_start();
    let (verb, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((verb.to_ascii_lowercase(), args.trim().to_string()))
}

/// Every command in a comment, in order.
pub fn parse(markdown: &str) -> Vec<Command> {
    let mut commands = Vec::new();
    for paragraph in paragraphs(markdown) {
        let mut i = 0;
        while i < paragraph.len() {
            let Some((verb, args)) = command_line(&paragraph[i]) else {
                i += 1;
                continue;
            };
            i += 1;
            let command = match verb.as_str() {
                "retry" => {
                    let mut guidance = vec![args];
                    while i < paragraph.len() && command_line(&paragraph[i]).is_none() {
                        guidance.push(paragraph[i].text.trim().to_string());
                        i += 1;
                    }
                    let text = guidance.join("\n").trim().to_string();
                    Command::Retry { guidance: (!text.is_empty()).then_some(text) }
                }
                "cancel" => Command::Cancel,
                "status" => Command::Status,
                _ => Command::Unknown { verb },
            };
            commands.push(command);
        }
    }
    commands
}

/// Commands in an edited comment that were not already in its previous version, so editing a
/// typo elsewhere in the comment does not run its commands a second time.
pub fn new_commands(previous: &str, current: &str) -> Vec<Command> {
    let mut before = parse(previous);
    let mut fresh = Vec::new();
    for command in parse(current) {
        if let Some(pos) = before.iter().position(|c| c == &command) {
            before.remove(pos);
        } else {
            fresh.push(command);
        }
    }
    fresh
}

/// The reply to an unknown command.
pub fn help() -> &'static str {
    "Commands (at the start of a line in a comment):\n\
     - `/factory retry [guidance]`: build the connector again on the same branch; the rest of the paragraph is passed to the agent\n\
     - `/factory cancel`: stop the work in progress for this issue\n\
     - `/factory status`: show what the factory is doing for this issue"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(g: &str) -> Command {
        Command::Retry { guidance: Some(g.to_string()) }
    }

    #[test]
    fn plain_commands() {
        assert_eq!(parse("/factory status"), vec![Command::Status]);
        assert_eq!(parse("/factory cancel please"), vec![Command::Cancel]);
        assert_eq!(parse("/factory retry"), vec![Command::Retry { guidance: None }]);
        assert_eq!(parse("/Factory RETRY use v2"), vec![retry("use v2")]);
        assert_eq!(parse("/factory frobnicate"), vec![Command::Unknown { verb: "frobnicate".into() }]);
    }

    #[test]
    fn must_start_the_line() {
        assert!(parse("please run /factory retry").is_empty());
        assert!(parse("/factory-bot retry").is_empty());
        assert_eq!(parse("Thanks!\n/factory status"), vec![Command::Status]);
    }

    #[test]
    fn guidance_runs_to_the_end_of_the_paragraph() {
        let body = "/factory retry use the v2 endpoints\nand paginate with `starting_after`\n\nunrelated paragraph";
        assert_eq!(parse(body), vec![retry("use the v2 endpoints\nand paginate with `starting_after`")]);
    }

    #[test]
    fn guidance_stops_at_the_next_command() {
        assert_eq!(parse("/factory retry a\nb\n/factory status"), vec![retry("a\nb"), Command::Status]);
    }

    #[test]
    fn inline_code_is_not_a_command() {
        assert!(parse("`/factory retry`").is_empty());
    }
}
