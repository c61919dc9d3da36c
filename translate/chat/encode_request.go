package chat

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"zenmux/translate"
)

// openAIModel reports whether upstream names one of OpenAI's own models as
// OpenAI's API names them (gpt-…, chatgpt-…, codex-…, o1…o9…), served by
// OpenAI itself: it takes max_completion_tokens (its reasoning models
// refuse max_tokens) and refuses the reasoning_content member other
// vendors want back. Any other name — DeepSeek, Qwen, Kimi, GLM, Grok, or
// a router's "vendor/model" — gets max_tokens (DeepSeek ignores
// max_completion_tokens) and reasoning_content.
func openAIModel(upstream string) bool {
	return strings.HasPrefix(upstream, "gpt-") || strings.HasPrefix(upstream, "chatgpt-") ||
		strings.HasPrefix(upstream, "codex-") ||
		len(upstream) >= 2 && upstream[0] == 'o' && upstream[1] >= '1' && upstream[1] <= '9'
}

// effortOf is reasoning_effort for r: its own effort, or its budget
// mapped by DESIGN.md's table. An explicit "no thinking" sends nothing:
// "none" is refused by the o-series, so the upstream's default applies.
func effortOf(r *translate.Reasoning) string {
	switch {
	case r == nil || r.Disabled:
		return ""
	case r.Effort != "":
		return r.Effort
	case r.BudgetTokens <= 0:
		return ""
	case r.BudgetTokens <= 4096:
		return "low"
	case r.BudgetTokens <= 16384:
		return "medium"
	}
	return "high"
}

// emptySchema is the parameters of a tool without any: some
// OpenAI-compatible vendors refuse a function without parameters.
const emptySchema = `{"type":"object","properties":{}}`

// EncodeRequest writes the body for an OpenAI-compatible upstream.
func (codec) EncodeRequest(dst []byte, r *translate.Request, upstream string) ([]byte, error) {
	if r.TopK != nil {
		return nil, translate.Unsupported("top_k", formatName)
	}
	oai := openAIModel(upstream)
	b := append(dst, `{"model":`...)
	b = translate.AppendString(b, upstream)
	b = append(b, `,"messages":[`...)
	b, err := appendMessages(b, r, oai)
	if err != nil {
		return nil, err
	}
	b = append(b, ']')
	if len(r.Tools) > 0 {
		b = append(b, `,"tools":[`...)
		for i := range r.Tools {
			t := &r.Tools[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":"function","function":{"name":`...)
			b = translate.AppendString(b, t.Name)
			if t.Description != "" {
				b = append(b, `,"description":`...)
				b = translate.AppendString(b, t.Description)
			}
			b = append(b, `,"parameters":`...)
			if t.Schema != "" {
				b = append(b, t.Schema...)
			} else {
				b = append(b, emptySchema...)
			}
			b = append(b, "}}"...)
		}
		b = append(b, ']')
		switch r.ToolChoice.Mode {
		case translate.ToolAuto:
			b = append(b, `,"tool_choice":"auto"`...)
		case translate.ToolNone:
			b = append(b, `,"tool_choice":"none"`...)
		case translate.ToolRequired:
			b = append(b, `,"tool_choice":"required"`...)
		case translate.ToolNamed:
			b = append(b, `,"tool_choice":{"type":"function","function":{"name":`...)
			b = translate.AppendString(b, r.ToolChoice.Name)
			b = append(b, "}}"...)
		}
		if r.ParallelToolCalls != nil {
			b = append(b, `,"parallel_tool_calls":`...)
			b = appendBool(b, *r.ParallelToolCalls)
		}
	}
	if r.MaxTokens > 0 {
		if oai {
			b = append(b, `,"max_completion_tokens":`...)
		} else {
			b = append(b, `,"max_tokens":`...)
		}
		b = translate.AppendInt(b, r.MaxTokens)
	}
	if r.Temperature != nil {
		b = append(b, `,"temperature":`...)
		b = translate.AppendFloat(b, *r.Temperature)
	}
	if r.TopP != nil {
		b = append(b, `,"top_p":`...)
		b = translate.AppendFloat(b, *r.TopP)
	}
	if len(r.Stop) > 0 {
		b = append(b, `,"stop":[`...)
		for i, s := range r.Stop {
			if i > 0 {
				b = append(b, ',')
			}
			b = translate.AppendString(b, s)
		}
		b = append(b, ']')
	}
	if e := effortOf(r.Reasoning); e != "" {
		b = append(b, `,"reasoning_effort":`...)
		b = translate.AppendString(b, e)
	}
	if rf := r.ResponseFormat; rf != nil {
		switch {
		case rf.Type == "json_schema" && rf.Schema != "":
			name := rf.Name
			if name == "" {
				name = "response"
			}
			b = append(b, `,"response_format":{"type":"json_schema","json_schema":{"name":`...)
			b = translate.AppendString(b, name)
			b = append(b, `,"schema":`...)
			b = append(b, rf.Schema...)
			if rf.Strict {
				b = append(b, `,"strict":true`...)
			}
			b = append(b, "}}"...)
		case rf.Type == "json_object" || rf.Type == "json_schema":
			b = append(b, `,"response_format":{"type":"json_object"}`...)
		default:
			return nil, translate.Unsupported("response_format "+rf.Type, formatName)
		}
	}
	if r.User != "" {
		b = append(b, `,"user":`...)
		b = appendUserID(b, r.User)
	}
	if r.Stream {
		// Always ask for the usage chunk: the gateway meters from it (W2.3).
		b = append(b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(b, '}'), nil
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// appendMessages writes the system prompt and the conversation. A tool
// result becomes a tool message placed right after the assistant message
// that made its call, in the order of the calls, as the API requires; the
// rest of the user message that carried it follows as a user message.
func appendMessages(b []byte, r *translate.Request, oai bool) ([]byte, error) {
	n := 0
	if len(r.System) > 0 {
		for i := range r.System {
			if r.System[i].Type != translate.PartText {
				return nil, translate.Unsupported("system (a part that is not text)", formatName)
			}
		}
		b = append(b, `{"role":"system","content":`...)
		b = translate.AppendString(b, joinText(r.System, translate.PartText, "\n\n"))
		b = append(b, '}')
		n++
	}
	results, err := toolResults(r.Messages)
	if err != nil {
		return nil, err
	}
	for mi := range r.Messages {
		m := &r.Messages[mi]
		switch m.Role {
		case translate.RoleSystem:
			for i := range m.Parts {
				if m.Parts[i].Type != translate.PartText {
					return nil, translate.Unsupported(fmt.Sprintf("messages[%d] (a system part that is not text)", mi), formatName)
				}
			}
			b = comma(b, &n)
			b = append(b, `{"role":"system","content":`...)
			b = translate.AppendString(b, joinText(m.Parts, translate.PartText, "\n\n"))
			b = append(b, '}')
		case translate.RoleAssistant:
			b, err = appendAssistant(b, &n, m, mi, oai, results)
			if err != nil {
				return nil, err
			}
		case translate.RoleUser:
			b, err = appendUser(b, &n, m.Parts, mi, true)
			if err != nil {
				return nil, err
			}
		default:
			return nil, translate.Invalid("messages", "messages[%d] has no role", mi)
		}
	}
	return b, nil
}

func comma(b []byte, n *int) []byte {
	if *n > 0 {
		b = append(b, ',')
	}
	*n++
	return b
}

// toolResults indexes the conversation's tool results by call id, after
// checking that each answers a call made earlier, once.
func toolResults(msgs []translate.Message) (map[string]*translate.Part, error) {
	var calls map[string]int
	var results map[string]*translate.Part
	for mi := range msgs {
		for pi := range msgs[mi].Parts {
			p := &msgs[mi].Parts[pi]
			switch p.Type {
			case translate.PartToolCall:
				if calls == nil {
					calls = make(map[string]int)
				}
				calls[p.ID] = mi
			case translate.PartToolResult:
				if _, ok := calls[p.ID]; !ok {
					return nil, translate.Invalid("messages", "the tool result in messages[%d] answers no earlier tool call (id %q)", mi, p.ID)
				}
				if results == nil {
					results = make(map[string]*translate.Part)
				}
				if _, dup := results[p.ID]; dup {
					return nil, translate.Invalid("messages", "tool call %q has two results", p.ID)
				}
				results[p.ID] = p
			}
		}
	}
	return results, nil
}

// appendAssistant writes an assistant message, then its calls' results.
// Thinking goes back as reasoning_content only on a message with tool
// calls and only to a vendor other than OpenAI: DeepSeek and Kimi refuse
// a tool-call turn of a thinking model without it, OpenAI refuses the
// member, and elsewhere it is ignored (DESIGN.md).
func appendAssistant(b []byte, n *int, m *translate.Message, mi int, oai bool, results map[string]*translate.Part) ([]byte, error) {
	calls, texts, thinking := 0, 0, 0
	for i := range m.Parts {
		switch m.Parts[i].Type {
		case translate.PartToolCall:
			calls++
		case translate.PartText:
			texts++
		case translate.PartThinking:
			if m.Parts[i].Text != "" {
				thinking++
			}
		case translate.PartRedactedThinking:
			// Anthropic's opaque data: no other vendor can read it.
		default:
			return nil, translate.Unsupported(fmt.Sprintf("messages[%d] (an assistant part that is not text, thinking or a tool call)", mi), formatName)
		}
	}
	b = comma(b, n)
	b = append(b, `{"role":"assistant","content":`...)
	switch {
	case texts > 0:
		b = translate.AppendString(b, joinText(m.Parts, translate.PartText, ""))
	case calls > 0:
		b = append(b, "null"...)
	default:
		b = append(b, `""`...)
	}
	if calls == 0 {
		return append(b, '}'), nil
	}
	if thinking > 0 && !oai {
		b = append(b, `,"reasoning_content":`...)
		b = translate.AppendString(b, joinText(m.Parts, translate.PartThinking, ""))
	}
	b = append(b, `,"tool_calls":[`...)
	k := 0
	for i := range m.Parts {
		p := &m.Parts[i]
		if p.Type != translate.PartToolCall {
			continue
		}
		if k > 0 {
			b = append(b, ',')
		}
		k++
		b = appendToolCall(b, p.ID, p.Name, p.Args)
	}
	b = append(b, "]}"...)
	images := false
	for i := range m.Parts {
		p := &m.Parts[i]
		if p.Type != translate.PartToolCall {
			continue
		}
		res := results[p.ID]
		if res == nil {
			return nil, translate.Invalid("messages", "the tool call %q (%s) in messages[%d] has no result; the upstream requires one", p.ID, p.Name, mi)
		}
		b = comma(b, n)
		b = append(b, `{"role":"tool","tool_call_id":`...)
		b = translate.AppendString(b, p.ID)
		b = append(b, `,"content":`...)
		b = translate.AppendString(b, toolText(res))
		b = append(b, '}')
		for j := range res.Content {
			images = images || res.Content[j].Type == translate.PartImage
		}
	}
	if !images {
		return b, nil
	}
	// Tool messages take text only: the results' images follow in a user
	// message of their own.
	for i := range m.Parts {
		if p := &m.Parts[i]; p.Type == translate.PartToolCall {
			var err error
			if b, err = appendUser(b, n, results[p.ID].Content, mi, false); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// toolText is a tool message's content: the result's text. An error is
// marked, since the format has no flag for it; a result that is only
// images says where they went.
func toolText(res *translate.Part) string {
	text := joinText(res.Content, translate.PartText, "\n\n")
	if text == "" {
		for i := range res.Content {
			if res.Content[i].Type == translate.PartImage {
				text = "(the image result follows in the next message)"
				break
			}
		}
	}
	if res.IsError {
		return "Error: " + text
	}
	return text
}

// appendUser writes the parts of a user message other than tool results
// (placed after their calls) as a user message, when any remain. Without
// withText, text parts are skipped too: the images of a tool result
// follow its tool message, which took its text.
func appendUser(b []byte, n *int, parts []translate.Part, mi int, withText bool) ([]byte, error) {
	kept, texts := 0, 0
	for i := range parts {
		switch parts[i].Type {
		case translate.PartToolResult:
		case translate.PartText:
			if withText {
				kept++
				texts++
			}
		case translate.PartImage:
			kept++
		default:
			return nil, translate.Unsupported(fmt.Sprintf("messages[%d] (a user part that is not text, an image or a tool result)", mi), formatName)
		}
	}
	if kept == 0 {
		return b, nil
	}
	b = comma(b, n)
	b = append(b, `{"role":"user","content":`...)
	if kept == 1 && texts == 1 {
		b = translate.AppendString(b, joinText(parts, translate.PartText, ""))
		return append(b, '}'), nil
	}
	b = append(b, '[')
	k := 0
	for i := range parts {
		p := &parts[i]
		switch {
		case p.Type == translate.PartText && withText:
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":"text","text":`...)
			b = translate.AppendString(b, p.Text)
			b = append(b, '}')
		case p.Type == translate.PartImage:
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":"image_url","image_url":{"url":`...)
			if p.URL != "" {
				b = translate.AppendString(b, p.URL)
			} else {
				b = append(b, `"data:`...)
				b = appendRaw(b, p.MediaType)
				b = append(b, ";base64,"...)
				b = appendRaw(b, p.Data)
				b = append(b, '"')
			}
			b = append(b, "}}"...)
		default:
			continue
		}
		k++
	}
	return append(b, "]}"...), nil
}

// appendRaw writes s inside a JSON string: its escaped form without the
// quotes (a media type or base64 needs none, but a client may send any).
func appendRaw(b []byte, s string) []byte {
	start := len(b)
	b = translate.AppendString(b, s)
	copy(b[start:], b[start+1:len(b)-1])
	return b[:len(b)-2]
}

// maxUser is the longest user id OpenAI accepts ("Invalid 'user': string
// too long … maximum length 64"); Claude Code's metadata.user_id is a
// JSON document of about 150 characters.
const maxUser = 64

// appendUserID writes the end-user id, or, when it is longer than OpenAI
// accepts, its SHA-256 in hex (64 characters): the same user still maps
// to the same id, so the provider's abuse tracking keeps working.
func appendUserID(b []byte, user string) []byte {
	if len(user) <= maxUser {
		return translate.AppendString(b, user)
	}
	sum := sha256.Sum256([]byte(user))
	b = append(b, '"')
	b = hex.AppendEncode(b, sum[:])
	return append(b, '"')
}
