//! `/factory` comment commands, read as Markdown.

use connector_factory::command::{Command, new_commands, parse};

fn retry(guidance: Option<&str>) -> Command {
    Command::Retry { guidance: guidance.map(str::to_string) }
}

#[test]
fn commands_in_code_blocks_are_ignored() {
    assert!(parse("```\n/factory retry\n```").is_empty());
    assert!(parse("~~~sh\n/factory cancel\n~~~").is_empty());
    assert!(parse("Run this:\n\n    /factory retry\n").is_empty(), "indented code block");
}

#[test]
fn commands_in_quotes_are_ignored() {
    assert!(parse("> /factory retry").is_empty());
    assert!(parse("> earlier:\n> /factory cancel\n\nI disagree").is_empty());
    assert_eq!(parse("> /factory retry\n\n/factory status"), vec![Command::Status]);
}

#[test]
fn commands_in_inline_code_are_ignored() {
    assert!(parse("Type `/factory retry` to build again.").is_empty());
    assert!(parse("`/factory retry` then wait").is_empty());
}

#[test]
fn commands_must_start_a_line() {
    assert!(parse("you could say /factory retry").is_empty());
    assert_eq!(parse("ok\n  /factory retry"), vec![retry(None)]);
    assert!(parse("# /factory retry").is_empty(), "headings are not commands");
    assert!(parse("- /factory retry").is_empty(), "list items are not commands");
}

#[test]
fn guidance_is_the_rest_of_the_paragraph() {
    let body =
        "Looks wrong.\n/factory retry the list endpoint is `/v1/charges`\npaginate with starting_after\n\nThanks";
    assert_eq!(parse(body), vec![retry(Some("the list endpoint is `/v1/charges`\npaginate with starting_after"))]);
    assert_eq!(parse("/factory retry\n\nnot guidance"), vec![retry(None)]);
}

#[test]
fn several_commands_in_one_comment() {
    assert_eq!(
        parse("/factory cancel\n\n```\n/factory status\n```\n\n/factory retry faster"),
        vec![Command::Cancel, retry(Some("faster"))]
    );
}

#[test]
fn unknown_verbs_are_reported() {
    assert_eq!(parse("/factory deploy now"), vec![Command::Unknown { verb: "deploy".into() }]);
    assert_eq!(parse("/factory"), vec![Command::Unknown { verb: String::new() }]);
}

#[test]
fn edited_comments_run_only_new_commands() {
    assert_eq!(new_commands("/factory status", "/factory status\n\n/factory cancel"), vec![Command::Cancel]);
    assert!(new_commands("/factory retry a", "Edit: typo\n\n/factory retry a").is_empty());
    // Changed guidance is a new retry.
    assert_eq!(new_commands("/factory retry use v1", "/factory retry use v2"), vec![retry(Some("use v2"))]);
    // A command moved into a quote is gone, not new.
    assert!(new_commands("/factory cancel", "> /factory cancel").is_empty());
    // The same command twice where it was once before: the second one is new.
    assert_eq!(new_commands("/factory status", "/factory status\n\n/factory status"), vec![Command::Status]);
}
