//! The OpenAI-compatible Chat Completions API (`POST {base}/v1/chat/completions`, bearer key),
//! also spoken by vLLM, Ollama and llama.cpp's server: `tools` as function schemas,
//! `tool_calls` with JSON-string `arguments`, `role: "tool"` results, `finish_reason`,
//! `usage.prompt_tokens` / `usage.completion_tokens`. Errors are
//! `{"error":{"message":..,"type":..,"param":..,"code":..}}`.

use super::{Block, ChatRequest, ChatResponse, LlmConfig, LlmError, LlmProvider, Role, StopReason, Usage};
use serde_json::{Value, json};

const PROVIDER: &str = "openai";

/// Prefix of a failed tool's result: the wire format has no error flag.
pub const ERROR_PREFIX: &str = "ERROR: ";

pub struct OpenAiClient {
    cfg: LlmConfig,
    http: reqwest::Client,
}

impl OpenAiClient {
    pub fn new(cfg: LlmConfig) -> anyhow::Result<OpenAiClient> {
        Ok(OpenAiClient { http: super::http_client(&cfg)?, cfg })
    }
}

/// The request body for a call. `limit_field` names the output-limit field.
pub fn request_body(model: &str, limit_field: &str, req: &ChatRequest<'_>) -> Value {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    for m in req.messages {
        match m.role {
            Role::Assistant => {
                let text: Vec<&str> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => {
                            // Unparseable arguments go back exactly as the model sent them.
                            let arguments = match input {
                                Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            };
                            Some(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
                        }
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text.join("\n")) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            Role::User => {
                // Tool results become `tool` messages (in call order); text stays a user message.
                let mut text = Vec::new();
                for b in &m.content {
                    match b {
                        Block::ToolResult { tool_use_id, content, is_error } => {
                            let content = if *is_error { format!("{ERROR_PREFIX}{content}") } else { content.clone() };
                            messages.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
                        }
                        Block::Text { text: t } => text.push(t.as_str()),
                        Block::ToolUse { .. } => {}
                    }
                }
                if !text.is_empty() {
                    messages.push(json!({"role": "user", "content": text.join("\n")}));
                }
            }
        }
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}))
        .collect();
    let mut body = json!({"model": model, "messages": messages});
    body[limit_field] = json!(req.max_tokens);
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Reads a success body.
pub fn parse_response(body: &str) -> Result<ChatResponse, LlmError> {
    let decode = |message: String| LlmError::Decode { provider: PROVIDER, message };
    let v: Value = serde_json::from_str(body).map_err(|e| decode(format!("{e}: {}", super::excerpt(body))))?;
    // Some servers answer 200 with an error object.
    if let Some(e) = v.get("error") {
        return Err(parse_error(200, &json!({"error": e}).to_string()));
    }
    let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
        return Err(decode(format!("no `choices`: {}", super::excerpt(body))));
    };
    let msg = choice.get("message").cloned().unwrap_or(Value::Null);
    let mut content = Vec::new();
    if let Some(text) = msg.get("content").and_then(Value::as_str) {
        if !text.is_empty() {
            content.push(Block::Text { text: text.to_string() });
        }
    }
    for call in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let id = call.get("id").and_then(Value::as_str).ok_or_else(|| decode("tool call without `id`".into()))?;
        let f = call.get("function").ok_or_else(|| decode("tool call without `function`".into()))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| decode("tool call without a function name".into()))?;
        let input = match f.get("arguments") {
            Some(Value::String(raw)) if raw.trim().is_empty() => json!({}),
            Some(Value::String(raw)) => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())),
            // A few servers send the object itself.
            Some(obj @ Value::Object(_)) => obj.clone(),
            _ => json!({}),
        };
        content.push(Block::ToolUse { id: id.to_string(), name: name.to_string(), input });
    }
    let raw_stop = choice.get("finish_reason").and_then(Value::as_str).unwrap_or("").to_string();
    let stop = match raw_stop.as_str() {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    };
    let u = v.get("usage").cloned().unwrap_or(Value::Null);
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(ChatResponse {
        content,
        stop,
        raw_stop,
        usage: Usage { input_tokens: n("prompt_tokens"), output_tokens: n("completion_tokens") },
        model: v.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
        retries: vec![],
    })
}

pub fn parse_error(status: u16, body: &str) -> LlmError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let (kind, message) = match v.get("error") {
        Some(Value::Object(e)) => (
            e.get("type").and_then(Value::as_str).or_else(|| e.get("code").and_then(Value::as_str)).unwrap_or("error").to_string(),
            e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        ),
        // Ollama and some proxies answer `{"error": "text"}`.
        Some(Value::String(s)) => ("error".to_string(), s.clone()),
        _ => ("http_error".to_string(), super::excerpt(body)),
    };
    LlmError::Api { provider: PROVIDER, status, kind, message, retryable: super::retryable_status(status) }
}

impl LlmProvider for OpenAiClient {
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
            let body = request_body(&self.cfg.model, &self.cfg.token_limit_field, req);
            let url = format!("{}/v1/chat/completions", self.cfg.base_url);
            let (text, retries) = super::send_json(
                PROVIDER,
                &self.cfg.retry,
                || {
                    let mut r = self.http.post(&url).json(&body);
                    // Local servers often run without a key.
                    if !self.cfg.api_key.is_empty() {
                        r = r.bearer_auth(self.cfg.api_key.expose());
                    }
                    r
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
    use crate::agent::llm::{Message, ToolDef};

    #[test]
    fn round_trip_of_a_tool_turn() {
        let tools = [ToolDef { name: "read_file".into(), description: "d".into(), input_schema: json!({"type":"object"}) }];
        let msgs = [
            Message::user_text("hi"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Block::ToolUse { id: "call_1".into(), name: "read_file".into(), input: json!({"path":"a"}) },
                    Block::ToolUse { id: "call_2".into(), name: "x".into(), input: json!("{not json") },
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    Block::ToolResult { tool_use_id: "call_1".into(), content: "text".into(), is_error: false },
                    Block::ToolResult { tool_use_id: "call_2".into(), content: "bad".into(), is_error: true },
                ],
            },
        ];
        let req = ChatRequest { system: "sys", messages: &msgs, tools: &tools, max_tokens: 100 };
        let body = request_body("gpt-x", "max_tokens", &req);
        assert_eq!(body["messages"][0], json!({"role":"system","content":"sys"}));
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"path\":\"a\"}");
        assert_eq!(body["messages"][2]["tool_calls"][1]["function"]["arguments"], "{not json");
        assert_eq!(body["messages"][3], json!({"role":"tool","tool_call_id":"call_1","content":"text"}));
        assert_eq!(body["messages"][4]["content"], "ERROR: bad");
        assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(body["max_tokens"], 100);

        let resp = parse_response(r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"list_files","arguments":"{\"dir\":\".\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#).unwrap();
        assert_eq!(resp.stop, StopReason::ToolUse);
        assert_eq!(resp.usage, Usage { input_tokens: 7, output_tokens: 3 });
        let (id, name, input) = resp.tool_uses().next().unwrap();
        assert_eq!((id, name, input), ("call_9", "list_files", &json!({"dir":"."})));
    }

    #[test]
    fn error_bodies() {
        match parse_error(429, r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#) {
            LlmError::Api { kind, message, retryable, .. } => {
                assert_eq!((kind.as_str(), message.as_str(), retryable), ("requests", "Rate limit reached", true));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_error(404, r#"{"error":"model not found"}"#), LlmError::Api { retryable: false, .. }));
    }
}
