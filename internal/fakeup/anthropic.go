package fakeup

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

var (
	anthropicTop = []string{"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p", "top_k",
		"tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management", "output_config", "output_format"}
	anthropicCountTop = []string{"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management", "output_config", "output_format"}
	anthropicBlocks   = []string{"text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result",
		"server_tool_use", "web_search_tool_result"}
	anthropicName   = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
	anthropicToolID = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	anthropicMedia  = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}
)

func anthropicInvalid(format string, a ...any) *refusal {
	return &refusal{status: 400, typ: "invalid_request_error", msg: fmt.Sprintf(format, a...)}
}

func (u *Upstream) anthropicRequest(r *http.Request, body []byte) (*convo, *refusal) {
	count := r.URL.Path == "/v1/messages/count_tokens"
	if r.Method != "POST" || (r.URL.Path != "/v1/messages" && !count) {
		return nil, &refusal{status: 404, typ: "not_found_error", msg: "Not Found"}
	}
	// anthropic-sdk-go v2 sends its API key as Authorization: Bearer; the
	// API takes either header.
	key := r.Header.Get("x-api-key")
	if key == "" {
		key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if key == "" {
		return nil, &refusal{status: 401, typ: "authentication_error", msg: "x-api-key header is required"}
	}
	if key != u.Key {
		return nil, &refusal{status: 401, typ: "authentication_error", msg: "invalid x-api-key"}
	}
	if r.Header.Get("anthropic-version") == "" {
		return nil, anthropicInvalid("anthropic-version: header is required")
	}
	m, ok := decode(body)
	if !ok {
		return nil, anthropicInvalid("There was an error parsing the body: invalid JSON")
	}
	top := anthropicTop
	if count {
		top = anthropicCountTop
	}
	if k := unknownKey(m, top...); k != "" {
		return nil, anthropicInvalid("%s: Extra inputs are not permitted", k)
	}
	model, has := m["model"]
	if !has {
		return nil, anthropicInvalid("model: Field required")
	}
	if s, _ := str(model); s != u.Model {
		return nil, &refusal{status: 404, typ: "not_found_error", msg: fmt.Sprintf("model: %v", model)}
	}
	c := &convo{count: count}
	var maxTokens int64
	if !count {
		v, has := m["max_tokens"]
		if !has {
			return nil, anthropicInvalid("max_tokens: Field required")
		}
		n, ok := integer(v)
		if !ok {
			return nil, anthropicInvalid("max_tokens: Input should be a valid integer")
		}
		if n < 1 {
			return nil, anthropicInvalid("max_tokens: Input should be greater than or equal to 1")
		}
		maxTokens = n
		if s, has := m["stream"]; has {
			b, ok := s.(bool)
			if !ok {
				return nil, anthropicInvalid("stream: Input should be a valid boolean")
			}
			c.stream = b
		}
	}
	if sys, has := m["system"]; has {
		if _, ok := str(sys); !ok {
			blocks, ok := arr(sys)
			if !ok {
				return nil, anthropicInvalid("system: Input should be a valid list")
			}
			for i, b := range blocks {
				bo, _ := object(b)
				if t, _ := str(bo["type"]); t != "text" {
					return nil, anthropicInvalid("system.%d.type: Input should be 'text'", i)
				}
				if s, _ := str(bo["text"]); s == "" {
					return nil, anthropicInvalid("system: text content blocks must be non-empty")
				}
			}
		}
	}
	thinking := false
	if th, has := m["thinking"]; has {
		to, _ := object(th)
		switch t, _ := str(to["type"]); t {
		case "enabled":
			thinking = true
			b, ok := integer(to["budget_tokens"])
			if !ok {
				return nil, anthropicInvalid("thinking.enabled.budget_tokens: Field required")
			}
			if b < 1024 {
				return nil, anthropicInvalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
			}
			if !count && b >= maxTokens {
				return nil, anthropicInvalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
			}
		case "disabled", "adaptive":
			thinking = t == "adaptive"
		default:
			return nil, anthropicInvalid("thinking: Input tag '%s' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'", t)
		}
	}
	if temp, has := m["temperature"]; has && thinking {
		if f, err := strconv.ParseFloat(fmt.Sprint(temp), 64); err != nil || f != 1 {
			return nil, anthropicInvalid("`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility")
		}
	}
	if t, has := m["tools"]; has {
		list, ok := arr(t)
		if !ok {
			return nil, anthropicInvalid("tools: Input should be a valid list")
		}
		for i, v := range list {
			to, _ := object(v)
			typ, _ := str(to["type"])
			if typ != "" && typ != "custom" {
				continue // server tools (web_search_…, bash_…) carry no schema
			}
			name, _ := str(to["name"])
			if name == "" {
				return nil, anthropicInvalid("tools.%d.custom.name: Field required", i)
			}
			if !anthropicName.MatchString(name) {
				return nil, anthropicInvalid("tools.%d.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", i)
			}
			if k := unknownKey(to, "type", "name", "description", "input_schema", "cache_control", "strict", "input_examples", "defer_loading", "allowed_callers"); k != "" {
				return nil, anthropicInvalid("tools.%d.custom.%s: Extra inputs are not permitted", i, k)
			}
			schema, has := to["input_schema"]
			if !has {
				return nil, anthropicInvalid("tools.%d.custom.input_schema: Field required", i)
			}
			if so, ok := object(schema); !ok || so["type"] != "object" {
				return nil, anthropicInvalid("tools.%d.custom.input_schema.type: Input should be 'object'", i)
			}
			c.tools = append(c.tools, name)
		}
	}
	if tc, has := m["tool_choice"]; has {
		if len(c.tools) == 0 && m["tools"] == nil {
			return nil, anthropicInvalid("tool_choice may only be specified while providing tools.")
		}
		to, _ := object(tc)
		switch t, _ := str(to["type"]); t {
		case "auto", "any", "none":
		case "tool":
			name, _ := str(to["name"])
			found := false
			for _, n := range c.tools {
				found = found || n == name
			}
			if !found {
				return nil, anthropicInvalid("tool_choice.tool.name: Tool '%s' not found in provided tools", name)
			}
		default:
			return nil, anthropicInvalid("tool_choice: Input tag '%s' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", t)
		}
	}
	msgs, has := m["messages"]
	if !has {
		return nil, anthropicInvalid("messages: Field required")
	}
	list, ok := arr(msgs)
	if !ok {
		return nil, anthropicInvalid("messages: Input should be a valid list")
	}
	if len(list) == 0 {
		return nil, anthropicInvalid("messages: at least one message is required")
	}
	var prevUses []string // tool_use ids of the previous assistant message
	for i, v := range list {
		msg, ok := object(v)
		if !ok {
			return nil, anthropicInvalid("messages.%d: Input should be a valid dictionary", i)
		}
		if k := unknownKey(msg, "role", "content"); k != "" {
			return nil, anthropicInvalid("messages.%d.%s: Extra inputs are not permitted", i, k)
		}
		role, _ := str(msg["role"])
		if role != "user" && role != "assistant" {
			return nil, anthropicInvalid("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		content, has := msg["content"]
		if !has {
			return nil, anthropicInvalid("messages.%d.content: Field required", i)
		}
		last := i == len(list)-1
		var uses []string
		var results []string
		if s, ok := str(content); ok {
			if s == "" && !(last && role == "assistant") {
				return nil, anthropicInvalid("messages.%d: all messages must have non-empty content except for the optional final assistant message", i)
			}
			if role == "user" {
				c.images, c.toolResult = nil, nil
			}
		} else {
			blocks, ok := arr(content)
			if !ok {
				return nil, anthropicInvalid("messages.%d.content: Input should be a valid list", i)
			}
			if len(blocks) == 0 && !(last && role == "assistant") {
				return nil, anthropicInvalid("messages.%d: all messages must have non-empty content except for the optional final assistant message", i)
			}
			var images []string
			var toolText *string
			seenOther := false
			for j, b := range blocks {
				bo, ok := object(b)
				if !ok {
					return nil, anthropicInvalid("messages.%d.content.%d: Input should be a valid dictionary", i, j)
				}
				typ, _ := str(bo["type"])
				known := false
				for _, k := range anthropicBlocks {
					known = known || k == typ
				}
				if !known {
					return nil, anthropicInvalid("messages.%d.content.%d: Input tag '%s' found using 'type' does not match any of the expected tags: '%s'", i, j, typ, strings.Join(anthropicBlocks, "', '"))
				}
				if typ == "tool_result" {
					if role != "user" {
						return nil, anthropicInvalid("messages.%d.content.%d: `tool_result` blocks can only be in `user` messages", i, j)
					}
					if seenOther {
						return nil, anthropicInvalid("messages.%d: `tool_result` blocks must come first in the user message content, before any other content", i)
					}
				} else {
					seenOther = true
				}
				if e := anthropicBlock(bo, typ, role, i, j, &images); e != nil {
					return nil, e
				}
				switch typ {
				case "tool_use":
					id, _ := str(bo["id"])
					uses = append(uses, id)
				case "tool_result":
					id, _ := str(bo["tool_use_id"])
					found := false
					for _, p := range prevUses {
						found = found || p == id
					}
					if !found {
						return nil, anthropicInvalid("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", i, j, id)
					}
					results = append(results, id)
					t := textOf(bo["content"])
					toolText = &t
				}
			}
			if role == "user" {
				c.images, c.toolResult = images, toolText
			}
		}
		if len(prevUses) > 0 {
			var missing []string
			for _, p := range prevUses {
				found := false
				for _, r := range results {
					found = found || p == r
				}
				if !found {
					missing = append(missing, p)
				}
			}
			if len(missing) > 0 {
				return nil, anthropicInvalid("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", i-1, strings.Join(missing, ", "))
			}
		}
		prevUses = uses
	}
	return c, nil
}

// anthropicBlock checks one content block of message i.
func anthropicBlock(bo obj, typ, role string, i, j int, images *[]string) *refusal {
	at := fmt.Sprintf("messages.%d.content.%d.%s", i, j, typ)
	switch typ {
	case "text":
		s, ok := str(bo["text"])
		if !ok {
			return anthropicInvalid("%s.text: Field required", at)
		}
		if s == "" {
			return anthropicInvalid("messages: text content blocks must be non-empty")
		}
		if k := unknownKey(bo, "type", "text", "cache_control", "citations"); k != "" {
			return anthropicInvalid("%s.%s: Extra inputs are not permitted", at, k)
		}
	case "image":
		d, e := anthropicImage(bo, at)
		if e != nil {
			return e
		}
		*images = append(*images, d)
	case "thinking", "redacted_thinking":
		if role != "assistant" {
			return anthropicInvalid("messages.%d.content.%d: `%s` blocks can only be in `assistant` messages", i, j, typ)
		}
		if typ == "thinking" {
			if _, ok := str(bo["thinking"]); !ok {
				return anthropicInvalid("%s.thinking: Field required", at)
			}
			if _, ok := str(bo["signature"]); !ok {
				return anthropicInvalid("%s.signature: Field required", at)
			}
		} else if _, ok := str(bo["data"]); !ok {
			return anthropicInvalid("%s.data: Field required", at)
		}
	case "tool_use":
		if role != "assistant" {
			return anthropicInvalid("messages.%d.content.%d: `tool_use` blocks can only be in `assistant` messages", i, j)
		}
		id, _ := str(bo["id"])
		if id == "" {
			return anthropicInvalid("%s.id: Field required", at)
		}
		if !anthropicToolID.MatchString(id) {
			return anthropicInvalid("%s.id: String should match pattern '^[a-zA-Z0-9_-]+$'", at)
		}
		if s, _ := str(bo["name"]); s == "" {
			return anthropicInvalid("%s.name: Field required", at)
		}
		in, has := bo["input"]
		if !has {
			return anthropicInvalid("%s.input: Field required", at)
		}
		if _, ok := object(in); !ok {
			return anthropicInvalid("%s.input: Input should be a valid dictionary", at)
		}
	case "tool_result":
		if s, _ := str(bo["tool_use_id"]); s == "" {
			return anthropicInvalid("%s.tool_use_id: Field required", at)
		}
		if k := unknownKey(bo, "type", "tool_use_id", "content", "is_error", "cache_control"); k != "" {
			return anthropicInvalid("%s.%s: Extra inputs are not permitted", at, k)
		}
		if v, has := bo["content"]; has {
			if _, ok := str(v); !ok {
				list, ok := arr(v)
				if !ok {
					return anthropicInvalid("%s.content: Input should be a valid list", at)
				}
				for k, p := range list {
					po, _ := object(p)
					switch t, _ := str(po["type"]); t {
					case "text":
						if s, _ := str(po["text"]); s == "" {
							return anthropicInvalid("messages: text content blocks must be non-empty")
						}
					case "image":
						if _, e := anthropicImage(po, fmt.Sprintf("%s.content.%d.image", at, k)); e != nil {
							return e
						}
					case "document", "search_result":
					default:
						return anthropicInvalid("%s.content.%d: Input tag '%s' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document'", at, k, t)
					}
				}
			}
		}
	}
	return nil
}

// anthropicImage checks an image block's source and describes it.
func anthropicImage(bo obj, at string) (string, *refusal) {
	src, ok := object(bo["source"])
	if !ok {
		return "", anthropicInvalid("%s.source: Field required", at)
	}
	switch t, _ := str(src["type"]); t {
	case "base64":
		mt, _ := str(src["media_type"])
		known := false
		for _, k := range anthropicMedia {
			known = known || k == mt
		}
		if !known {
			return "", anthropicInvalid("%s.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", at)
		}
		data, _ := str(src["data"])
		d, ok := describeImage(mt, data)
		if !ok {
			return "", anthropicInvalid("%s.source.base64.data: The image was specified using the %s media type, but the image appears to be a different format or the data is not valid base64.", at, mt)
		}
		return d, nil
	case "url":
		url, _ := str(src["url"])
		if !httpURL(url) {
			return "", anthropicInvalid("%s.source.url.url: URL must use http or https", at)
		}
		return "the image at " + url, nil
	case "file":
		return "an uploaded file", nil
	default:
		return "", anthropicInvalid("%s.source: Input tag '%s' found using 'type' does not match any of the expected tags: 'base64', 'url', 'file'", at, t)
	}
}

func anthropicUsage(output int64) obj {
	us := UsageOf(Anthropic)
	return obj{"input_tokens": us.Input, "cache_creation_input_tokens": us.CacheWrite, "cache_read_input_tokens": us.CacheRead,
		"output_tokens": output, "service_tier": "standard"}
}

// anthropicPreamble is the text Claude writes before a tool call.
const anthropicPreamble = "Let me check the weather."

func (u *Upstream) anthropicAnswer(w http.ResponseWriter, c *convo, a answer) {
	n := u.nextID()
	id, toolID := fmt.Sprintf("msg_fake%d", n), fmt.Sprintf("toolu_fake%d", n)
	stop := "end_turn"
	content := []any{obj{"type": "text", "text": a.text}}
	if a.call {
		stop = "tool_use"
		content = []any{obj{"type": "text", "text": anthropicPreamble},
			obj{"type": "tool_use", "id": toolID, "name": ToolName, "input": obj{"city": "Paris"}}}
	}
	msg := func(content []any, stop any, usage obj) obj {
		return obj{"id": id, "type": "message", "role": "assistant", "model": u.Model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": usage}
	}
	if !c.stream {
		writeJSON(w, msg(content, stop, anthropicUsage(UsageOf(Anthropic).Output)))
		return
	}
	s := startSSE(w)
	ev := func(name string, v obj) {
		v["type"] = name
		s.event(name, v, "\n")
	}
	ev("message_start", obj{"message": msg([]any{}, nil, anthropicUsage(1))})
	text := a.text
	if a.call {
		text = anthropicPreamble
	}
	ev("content_block_start", obj{"index": 0, "content_block": obj{"type": "text", "text": ""}})
	ev("ping", obj{})
	for _, p := range pieces(text, 3) {
		ev("content_block_delta", obj{"index": 0, "delta": obj{"type": "text_delta", "text": p}})
	}
	ev("content_block_stop", obj{"index": 0})
	if a.call {
		ev("content_block_start", obj{"index": 1, "content_block": obj{"type": "tool_use", "id": toolID, "name": ToolName, "input": obj{}}})
		ev("content_block_delta", obj{"index": 1, "delta": obj{"type": "input_json_delta", "partial_json": ""}})
		for _, p := range pieces(ToolArgs, 3) {
			ev("content_block_delta", obj{"index": 1, "delta": obj{"type": "input_json_delta", "partial_json": p}})
		}
		ev("content_block_stop", obj{"index": 1})
	}
	ev("message_delta", obj{"delta": obj{"stop_reason": stop, "stop_sequence": nil}, "usage": obj{"output_tokens": UsageOf(Anthropic).Output}})
	ev("message_stop", obj{})
}
