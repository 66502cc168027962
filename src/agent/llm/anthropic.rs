//! The Anthropic Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`; content blocks `text`, `tool_use`, `tool_result`; `stop_reason`;
//! `usage.input_tokens` / `usage.output_tokens`. Errors are
//! `{"type":"error","error":{"type":..,"message":..}}`; 529 means overloaded.

use super::{Block, ChatRequest, ChatResponse, LlmConfig, LlmError, LlmProvider, Message, Role, StopReason, Usage};
use serde_json::{Value, json};

pub const API_VERSION: &str = "2023-06-01";
const PROVIDER: &str = "anthropic";

pub struct AnthropicClient {
    cfg: LlmConfig,
    http: reqwest::Client,
}

impl AnthropicClient {
    pub fn new(cfg: LlmConfig) -> anyhow::Result<AnthropicClient> {
        Ok(AnthropicClient { http: super::http_client(&cfg)?, cfg })
    }
}

/// The request body for a call.
pub fn request_body(model: &str, req: &ChatRequest<'_>) -> Value {
    let messages: Vec<Value> = req.messages.iter().map(message_json).collect();
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": req.max_tokens,
        "system": req.system,
        "messages": messages,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

fn message_json(m: &Message) -> Value {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content: Vec<Value> = m
        .content
        .iter()
        // The API refuses empty text blocks.
        .filter(|b| !matches!(b, Block::Text { text } if text.is_empty()))
        .map(|b| match b {
            Block::Text { text } => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => {
                // The API wants an object; arguments that never parsed are kept under a key.
                let input = if input.is_object() { input.clone() } else { json!({"_unparsed": input}) };
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Block::ToolResult { tool_use_id, content, is_error } => {
                let mut v = json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
                if *is_error {
                    v["is_error"] = Value::Bool(true);
                }
                v
            }
        })
        .collect();
    json!({"role": role, "content": content})
}

/// Reads a success body.
pub fn parse_response(body: &str) -> Result<ChatResponse, LlmError> {
    let decode = |message: String| LlmError::Decode { provider: PROVIDER, message };
    let v: Value = serde_json::from_str(body).map_err(|e| decode(format!("{e}: {}", super::excerpt(body))))?;
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(decode(format!("no `content` array: {}", super::excerpt(body))));
    };
    let mut content = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push(Block::Text { text: b["text"].as_str().unwrap_or_default().to_string() }),
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str).ok_or_else(|| decode("tool_use block without `id`".into()))?;
                let name = b.get("name").and_then(Value::as_str).ok_or_else(|| decode("tool_use block without `name`".into()))?;
                content.push(Block::ToolUse {
                    id: id.to_string(),
                    name: name.to_string(),
                    input: b.get("input").cloned().unwrap_or(json!({})),
                });
            }
            // Thinking and other block kinds carry nothing the loop acts on.
            _ => {}
        }
    }
    let raw_stop = v.get("stop_reason").and_then(Value::as_str).unwrap_or("").to_string();
    let stop = match raw_stop.as_str() {
        "end_turn" | "stop_sequence" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    };
    let u = v.get("usage").cloned().unwrap_or(Value::Null);
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    // Cache reads and writes are input too; counting them at the input price slightly
    // over-estimates a cached session, which is the safe side for a budget.
    let usage = Usage {
        input_tokens: n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens"),
        output_tokens: n("output_tokens"),
    };
    Ok(ChatResponse {
        content,
        stop,
        raw_stop,
        usage,
        model: v.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
        retries: vec![],
    })
}

/// Reads an error answer; bodies that are not the documented shape still give a useful message.
pub fn parse_error(status: u16, body: &str) -> LlmError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let (kind, message) = match v.get("error") {
        Some(e) => (
            e.get("type").and_then(Value::as_str).unwrap_or("unknown_error").to_string(),
            e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        ),
        None => ("http_error".to_string(), super::excerpt(body)),
    };
    LlmError::Api { provider: PROVIDER, status, kind, message, retryable: super::retryable_status(status) }
}

impl LlmProvider for AnthropicClient {
    fn wire(&self) -> &'static str {
        PROVIDER
    }
    fn model(&self) -> &str {
        &self.cfg.model
    }
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ChatResponse, LlmError>> + Send + 'a>> {
        Box::pin(async move {
            let body = request_body(&self.cfg.model, req);
            let url = format!("{}/v1/messages", self.cfg.base_url);
            let (text, retries) = super::send_json(
                PROVIDER,
                &self.cfg.retry,
                || {
                    self.http
                        .post(&url)
                        .header("x-api-key", self.cfg.api_key.expose())
                        .header("anthropic-version", API_VERSION)
                        .json(&body)
                },
                parse_error,
            )
            .await?;
            let mut resp = parse_response(&text)?;
            resp.retries = retries;
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::llm::ToolDef;

    #[test]
    fn round_trip_of_a_tool_turn() {
        let tools = [ToolDef { name: "read_file".into(), description: "d".into(), input_schema: json!({"type":"object"}) }];
        let msgs = [
            Message::user_text("hi"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Block::Text { text: "looking".into() },
                    Block::ToolUse { id: "toolu_1".into(), name: "read_file".into(), input: json!({"path":"a"}) },
                ],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult { tool_use_id: "toolu_1".into(), content: "no such file".into(), is_error: true }],
            },
        ];
        let req = ChatRequest { system: "sys", messages: &msgs, tools: &tools, max_tokens: 100 };
        let body = request_body("claude-x", &req);
        assert_eq!(body["system"], "sys");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["messages"][1]["content"][1]["type"], "tool_use");
        assert_eq!(body["messages"][2]["content"][0], json!({"type":"tool_result","tool_use_id":"toolu_1","content":"no such file","is_error":true}));

        let resp = parse_response(r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"toolu_2","name":"list_files","input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":2}}"#).unwrap();
        assert_eq!(resp.stop, StopReason::ToolUse);
        assert_eq!(resp.usage, Usage { input_tokens: 12, output_tokens: 5 });
        assert_eq!(resp.tool_uses().count(), 1);
    }

    #[test]
    fn error_bodies() {
        let e = parse_error(529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        match e {
            LlmError::Api { status, kind, message, retryable, .. } => {
                assert_eq!((status, kind.as_str(), message.as_str(), retryable), (529, "overloaded_error", "Overloaded", true));
            }
            other => panic!("{other:?}"),
        }
        let e = parse_error(401, "<html>nope</html>");
        assert!(matches!(e, LlmError::Api { retryable: false, .. }));
        assert!(parse_response("{}").is_err());
    }
}
