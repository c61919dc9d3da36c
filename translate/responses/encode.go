package responses

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"

	"zenmux/translate"
)

// minOutputTokens is the smallest max_output_tokens OpenAI accepts; a
// smaller limit (Claude Code's one-token probes) is raised to it.
const minOutputTokens = 16

// maxSafetyID is the longest safety_identifier OpenAI accepts; a longer
// user id is sent as its SHA-256 in hex, still one id per user.
const maxSafetyID = 64

// effortOfBudget is the documented table from a thinking budget (Anthropic,
// Gemini) to a reasoning effort.
func effortOfBudget(budget int64) string {
	switch {
	case budget < 4096:
		return "low"
	case budget < 16384:
		return "medium"
	}
	return "high"
}

func (codec) EncodeRequest(dst []byte, r *translate.Request, upstream string) ([]byte, error) {
	if len(r.Stop) > 0 {
		return dst, translate.Unsupported("stop", Format)
	}
	if r.TopK != nil {
		return dst, translate.Unsupported("top_k", Format)
	}
	for _, f := range [...]struct {
		name string
		v    *float64
	}{{"temperature", r.Temperature}, {"top_p", r.TopP}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return dst, translate.Invalid(f.name, "%s must be a finite number", f.name)
		}
	}
	dst = append(dst, `{"model":`...)
	dst = translate.AppendString(dst, upstream)
	if len(r.System) > 0 {
		dst = append(dst, `,"instructions":`...)
		var err error
		if dst, err = appendSystem(dst, r.System); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `,"input":[`...)
	reasoningTravels := false
	first := true
	for i := range r.Messages {
		var err error
		var rt bool
		dst, first, rt, err = appendMessage(dst, first, i, &r.Messages[i])
		if err != nil {
			return dst, err
		}
		reasoningTravels = reasoningTravels || rt
	}
	dst = append(dst, ']')
	if len(r.Tools) > 0 {
		dst = appendTools(dst, r)
	}
	if r.MaxTokens > 0 {
		dst = append(dst, `,"max_output_tokens":`...)
		dst = translate.AppendInt(dst, max(r.MaxTokens, minOutputTokens))
	}
	if r.Temperature != nil {
		dst = append(dst, `,"temperature":`...)
		dst = translate.AppendFloat(dst, *r.Temperature)
	}
	if r.TopP != nil {
		dst = append(dst, `,"top_p":`...)
		dst = translate.AppendFloat(dst, *r.TopP)
	}
	if rs := r.Reasoning; rs != nil && !rs.Disabled {
		effort := rs.Effort
		if effort == "" && rs.BudgetTokens > 0 {
			effort = effortOfBudget(rs.BudgetTokens)
		}
		if effort != "" || rs.Summary != "" {
			reasoningTravels = true
			dst = append(dst, `,"reasoning":{`...)
			if effort != "" {
				dst = append(dst, `"effort":`...)
				dst = translate.AppendString(dst, effort)
			}
			if rs.Summary != "" {
				if effort != "" {
					dst = append(dst, ',')
				}
				dst = append(dst, `"summary":`...)
				dst = translate.AppendString(dst, rs.Summary)
			}
			dst = append(dst, '}')
		}
	}
	if f := r.ResponseFormat; f != nil {
		var err error
		if dst, err = appendFormat(dst, f); err != nil {
			return dst, err
		}
	}
	if r.User != "" {
		dst = append(dst, `,"safety_identifier":`...)
		dst = translate.AppendString(dst, safetyID(r.User))
	}
	if r.Stream {
		dst = append(dst, `,"stream":true`...)
	}
	// The gateway is stateless: nothing is stored upstream, and the
	// reasoning comes back encrypted so the next turn can send it again.
	dst = append(dst, `,"store":false`...)
	if reasoningTravels {
		dst = append(dst, `,"include":["reasoning.encrypted_content"]`...)
	}
	return append(dst, '}'), nil
}

func safetyID(user string) string {
	if len(user) <= maxSafetyID {
		return user
	}
	h := sha256.Sum256([]byte(user))
	return hex.EncodeToString(h[:])
}

// appendSystem writes the system prompt as instructions, its parts joined
// by a blank line.
func appendSystem(dst []byte, sys []translate.Part) ([]byte, error) {
	if len(sys) == 1 && sys[0].Type == translate.PartText {
		return translate.AppendString(dst, sys[0].Text), nil
	}
	n := 0
	for i := range sys {
		if sys[i].Type != translate.PartText {
			return dst, translate.Unsupported("system["+strconv.Itoa(i)+"]", Format)
		}
		n += len(sys[i].Text) + 2
	}
	b := make([]byte, 0, n)
	for i := range sys {
		if i > 0 {
			b = append(b, "\n\n"...)
		}
		b = append(b, sys[i].Text...)
	}
	return translate.AppendBytes(dst, b), nil
}

// comma starts an array element.
func comma(dst []byte, first bool) []byte {
	if first {
		return dst
	}
	return append(dst, ',')
}

// appendMessage writes one neutral message as input items; rt reports a
// reasoning item among them.
func appendMessage(dst []byte, first bool, i int, m *translate.Message) (_ []byte, _ bool, rt bool, _ error) {
	field := func(j int) string {
		return "messages[" + strconv.Itoa(i) + "].content[" + strconv.Itoa(j) + "]"
	}
	switch m.Role {
	case translate.RoleUser, translate.RoleSystem:
		role := `user`
		if m.Role == translate.RoleSystem {
			role = `developer`
		}
		open := false // a message item is open, gathering content parts
		for j := range m.Parts {
			p := &m.Parts[j]
			switch p.Type {
			case translate.PartText, translate.PartImage:
				if p.Type == translate.PartImage && m.Role == translate.RoleSystem {
					return dst, first, rt, translate.Unsupported(field(j), Format)
				}
				if !open {
					dst = comma(dst, first)
					first = false
					dst = append(dst, `{"type":"message","role":"`...)
					dst = append(dst, role...)
					dst = append(dst, `","content":[`...)
				} else {
					dst = append(dst, ',')
				}
				open = true
				dst = appendInputPart(dst, p)
			case translate.PartToolResult:
				if m.Role == translate.RoleSystem {
					return dst, first, rt, translate.Unsupported(field(j), Format)
				}
				if open {
					dst = append(dst, "]}"...)
					open = false
				}
				dst = comma(dst, first)
				first = false
				dst = appendToolResult(dst, p)
			default:
				return dst, first, rt, translate.Unsupported(field(j), Format)
			}
		}
		if open {
			dst = append(dst, "]}"...)
		}
	case translate.RoleAssistant:
		for j := range m.Parts {
			p := &m.Parts[j]
			switch p.Type {
			case translate.PartText:
				dst = comma(dst, first)
				first = false
				dst = append(dst, `{"type":"message","role":"assistant","content":`...)
				dst = translate.AppendString(dst, p.Text)
				dst = append(dst, '}')
			case translate.PartToolCall:
				dst = comma(dst, first)
				first = false
				dst = append(dst, `{"type":"function_call","call_id":`...)
				dst = translate.AppendString(dst, p.ID)
				dst = append(dst, `,"name":`...)
				dst = translate.AppendString(dst, p.Name)
				dst = append(dst, `,"arguments":`...)
				args := p.Args
				if args == "" {
					args = "{}"
				}
				dst = translate.AppendString(dst, args)
				dst = append(dst, '}')
			case translate.PartThinking:
				// Only OpenAI can read its own encrypted reasoning; a
				// summary without it is not accepted back, so thinking
				// of any other origin is left out.
				if p.Origin != Format || p.Signature == "" {
					continue
				}
				rt = true
				dst = comma(dst, first)
				first = false
				dst = append(dst, `{"type":"reasoning","summary":[`...)
				if p.Text != "" {
					dst = append(dst, `{"type":"summary_text","text":`...)
					dst = translate.AppendString(dst, p.Text)
					dst = append(dst, '}')
				}
				dst = append(dst, `],"encrypted_content":`...)
				dst = translate.AppendString(dst, p.Signature)
				dst = append(dst, '}')
			case translate.PartRedactedThinking:
				// Anthropic's alone: no OpenAI model can read it.
			default:
				return dst, first, rt, translate.Unsupported(field(j), Format)
			}
		}
	default:
		return dst, first, rt, translate.Invalid("messages["+strconv.Itoa(i)+"].role", "unknown role %d", m.Role)
	}
	return dst, first, rt, nil
}

// appendInputPart writes a text or image content part.
func appendInputPart(dst []byte, p *translate.Part) []byte {
	if p.Type == translate.PartText {
		dst = append(dst, `{"type":"input_text","text":`...)
		dst = translate.AppendString(dst, p.Text)
		return append(dst, '}')
	}
	dst = append(dst, `{"type":"input_image","image_url":`...)
	if p.URL != "" {
		dst = translate.AppendString(dst, p.URL)
	} else {
		dst = append(dst, `"data:`...)
		dst = appendInner(dst, p.MediaType)
		dst = append(dst, ";base64,"...)
		dst = appendInner(dst, p.Data)
		dst = append(dst, '"')
	}
	return append(dst, `,"detail":"auto"}`...)
}

// appendInner writes s escaped as inside a JSON string, without quotes.
func appendInner(dst []byte, s string) []byte {
	n := len(dst)
	dst = translate.AppendString(dst, s)
	copy(dst[n:], dst[n+1:])
	return dst[:len(dst)-2]
}

// appendToolResult writes a tool result as a function_call_output item: a
// string when it is text only, else input_text and input_image parts.
// OpenAI has no error flag, so an error's output starts with "Error: ".
func appendToolResult(dst []byte, p *translate.Part) []byte {
	dst = append(dst, `{"type":"function_call_output","call_id":`...)
	dst = translate.AppendString(dst, p.ID)
	dst = append(dst, `,"output":`...)
	textOnly := true
	for k := range p.Content {
		if p.Content[k].Type != translate.PartText {
			textOnly = false
		}
	}
	prefix := ""
	if p.IsError {
		prefix = "Error: "
	}
	if textOnly {
		if len(p.Content) == 1 && prefix == "" {
			dst = translate.AppendString(dst, p.Content[0].Text)
		} else {
			var b []byte
			b = append(b, prefix...)
			for k := range p.Content {
				b = append(b, p.Content[k].Text...)
			}
			dst = translate.AppendBytes(dst, b)
		}
		return append(dst, '}')
	}
	dst = append(dst, '[')
	if prefix != "" {
		dst = append(dst, `{"type":"input_text","text":"Error: "},`...)
	}
	for k := range p.Content {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = appendInputPart(dst, &p.Content[k])
	}
	return append(dst, "]}"...)
}

// appendTools writes tools and, since tools remain, tool_choice and
// parallel_tool_calls. strict is false: a neutral schema was not written
// for OpenAI's strict mode, which Responses otherwise turns on.
func appendTools(dst []byte, r *translate.Request) []byte {
	dst = append(dst, `,"tools":[`...)
	for i := range r.Tools {
		t := &r.Tools[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"function","name":`...)
		dst = translate.AppendString(dst, t.Name)
		if t.Description != "" {
			dst = append(dst, `,"description":`...)
			dst = translate.AppendString(dst, t.Description)
		}
		dst = append(dst, `,"parameters":`...)
		if t.Schema != "" {
			dst = append(dst, t.Schema...)
		} else {
			dst = append(dst, `{"type":"object","properties":{}}`...)
		}
		dst = append(dst, `,"strict":false}`...)
	}
	dst = append(dst, ']')
	switch r.ToolChoice.Mode {
	case translate.ToolAuto:
		dst = append(dst, `,"tool_choice":"auto"`...)
	case translate.ToolNone:
		dst = append(dst, `,"tool_choice":"none"`...)
	case translate.ToolRequired:
		dst = append(dst, `,"tool_choice":"required"`...)
	case translate.ToolNamed:
		dst = append(dst, `,"tool_choice":{"type":"function","name":`...)
		dst = translate.AppendString(dst, r.ToolChoice.Name)
		dst = append(dst, '}')
	}
	if r.ParallelToolCalls != nil {
		dst = append(dst, `,"parallel_tool_calls":`...)
		dst = strconv.AppendBool(dst, *r.ParallelToolCalls)
	}
	return dst
}

// appendFormat writes text.format for JSON output.
func appendFormat(dst []byte, f *translate.ResponseFormat) ([]byte, error) {
	switch f.Type {
	case "json_object":
		return append(dst, `,"text":{"format":{"type":"json_object"}}`...), nil
	case "json_schema":
		if f.Schema == "" {
			return dst, translate.Invalid("response_format.schema", "a JSON schema response format needs its schema")
		}
		name := f.Name
		if name == "" {
			name = "response" // OpenAI requires a name; the other formats have none
		}
		dst = append(dst, `,"text":{"format":{"type":"json_schema","name":`...)
		dst = translate.AppendString(dst, name)
		dst = append(dst, `,"schema":`...)
		dst = append(dst, f.Schema...)
		dst = append(dst, `,"strict":`...)
		dst = strconv.AppendBool(dst, f.Strict)
		return append(dst, "}}"...), nil
	}
	return dst, translate.Unsupported("response_format.type", Format)
}
