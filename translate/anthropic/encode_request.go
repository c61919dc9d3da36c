package anthropic

import (
	"strings"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// defaultMaxTokens is max_tokens when the client set none: the Messages
// API requires one.
const defaultMaxTokens = 8192

// minBudget is the smallest thinking budget the API accepts.
const minBudget = 1024

// budgetFor is the thinking budget a neutral effort asks for (DESIGN.md).
// The largest leaves room for the default answer under every thinking
// model's output limit (32000 tokens for Opus 4.x).
func budgetFor(effort string) (int64, bool) {
	switch effort {
	case "minimal":
		return 1024, true
	case "low":
		return 2048, true
	case "", "medium":
		return 8192, true
	case "high", "xhigh", "max":
		return 16384, true
	}
	return 0, false
}

// wmsg is a message on its way out: parts point into the Request.
type wmsg struct {
	role  translate.Role
	parts []*translate.Part
}

// EncodeRequest writes the /v1/messages body for an anthropic-kind
// upstream.
func (codec) EncodeRequest(dst []byte, r *translate.Request, upstream string) ([]byte, error) {
	sys, msgs, fail := history(r)
	if fail != nil {
		return dst, fail
	}
	budget, disabled, fail := thinkingBudget(r, msgs)
	if fail != nil {
		return dst, fail
	}
	maxTokens := r.MaxTokens
	if maxTokens <= 0 {
		maxTokens = defaultMaxTokens
	}
	if budget > 0 && maxTokens <= budget {
		// Thinking counts toward max_tokens, which must exceed the
		// budget: the answer keeps what the client asked for besides.
		maxTokens += budget
	}
	dst = append(dst, `{"model":`...)
	dst = translate.AppendString(dst, upstream)
	dst = append(dst, `,"max_tokens":`...)
	dst = translate.AppendInt(dst, maxTokens)
	if len(sys) > 0 {
		dst = append(dst, `,"system":[`...)
		for i, p := range sys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendText(dst, p.Text)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"messages":[`...)
	for i := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, fail = appendMessage(dst, &msgs[i]); fail != nil {
			return dst, fail
		}
	}
	dst = append(dst, ']')
	if len(r.Tools) > 0 {
		dst = appendTools(dst, r)
	}
	switch {
	case budget > 0:
		dst = append(dst, `,"thinking":{"type":"enabled","budget_tokens":`...)
		dst = translate.AppendInt(dst, budget)
		dst = append(dst, '}')
	case disabled:
		dst = append(dst, `,"thinking":{"type":"disabled"}`...)
	}
	if budget == 0 {
		// With thinking on the API refuses temperature other than 1, top_k
		// and top_p below 0.95: thinking, which the client asked for, wins
		// (DESIGN.md).
		if r.Temperature != nil {
			if t := *r.Temperature; t < 0 || t > 1 {
				return dst, translate.Invalid("temperature", "temperature %g is out of range: Anthropic models accept 0 to 1", t)
			}
			dst = append(dst, `,"temperature":`...)
			dst = translate.AppendFloat(dst, *r.Temperature)
		}
		if r.TopP != nil && *r.TopP != 1 {
			// top_p 1 changes nothing, and recent models refuse it beside
			// temperature, which OpenAI clients often send with it.
			dst = append(dst, `,"top_p":`...)
			dst = translate.AppendFloat(dst, *r.TopP)
		}
		if r.TopK != nil {
			dst = append(dst, `,"top_k":`...)
			dst = translate.AppendInt(dst, *r.TopK)
		}
	}
	if len(r.Stop) > 0 {
		dst = append(dst, `,"stop_sequences":[`...)
		for i, s := range r.Stop {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = translate.AppendString(dst, s)
		}
		dst = append(dst, ']')
	}
	if r.Stream {
		dst = append(dst, `,"stream":true`...)
	}
	if r.User != "" {
		dst = append(dst, `,"metadata":{"user_id":`...)
		dst = translate.AppendString(dst, r.User)
		dst = append(dst, '}')
	}
	if rf := r.ResponseFormat; rf != nil {
		if rf.Type != "json_schema" || rf.Schema == "" {
			return dst, translate.Unsupported("response_format "+rf.Type, Name)
		}
		dst = append(dst, `,"output_config":{"format":{"type":"json_schema","schema":`...)
		dst = append(dst, rf.Schema...)
		dst = append(dst, `}}`...)
	}
	return append(dst, '}'), nil
}

// thinkingBudget decides the thinking parameter: a budget (0: none sent)
// or an explicit "disabled".
func thinkingBudget(r *translate.Request, msgs []wmsg) (budget int64, disabled bool, fail *translate.Error) {
	rs := r.Reasoning
	if rs == nil {
		return 0, false, nil
	}
	if rs.Disabled || rs.Effort == "none" {
		return 0, true, nil
	}
	budget = rs.BudgetTokens
	if budget <= 0 {
		var ok bool
		if budget, ok = budgetFor(rs.Effort); !ok {
			return 0, false, translate.Invalid("reasoning.effort", "reasoning effort %q is not one of minimal, low, medium, high", rs.Effort)
		}
	}
	budget = max(budget, minBudget)
	if len(r.Tools) > 0 && (r.ToolChoice.Mode == translate.ToolRequired || r.ToolChoice.Mode == translate.ToolNamed) {
		// The API refuses thinking with a forced tool: the forced call is
		// the client's contract, thinking is not.
		return 0, false, nil
	}
	if n := len(msgs); n >= 2 && msgs[n-1].role == translate.RoleUser {
		// In a tool loop the API wants the last assistant turn to open
		// with its (signed) thinking; a history from another format has
		// none to give, so this turn goes without thinking.
		a := msgs[n-2].parts
		calls := false
		for _, p := range a {
			calls = calls || p.Type == translate.PartToolCall
		}
		if calls && a[0].Type != translate.PartThinking && a[0].Type != translate.PartRedactedThinking {
			return 0, false, nil
		}
	}
	return budget, false, nil
}

// history folds system messages into the system prompt, drops what an
// Anthropic upstream cannot take (thinking it cannot verify, empty text),
// merges consecutive turns of one role and pairs every tool_use with its
// tool_result in the next user turn, results first.
func history(r *translate.Request) (sys []*translate.Part, msgs []wmsg, fail *translate.Error) {
	for i := range r.System {
		if fail = addSystem(&sys, &r.System[i]); fail != nil {
			return nil, nil, fail
		}
	}
	n := 0
	for i := range r.Messages {
		n += len(r.Messages[i].Parts)
	}
	// ptrs never grows past n, so each message's parts stay a window of it.
	ptrs := make([]*translate.Part, 0, n)
	start := 0
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case translate.RoleSystem:
			// A mid-conversation system message: an Anthropic-kind upstream
			// takes system text only in system (DESIGN.md).
			for j := range m.Parts {
				if fail = addSystem(&sys, &m.Parts[j]); fail != nil {
					return nil, nil, fail
				}
			}
			continue
		case translate.RoleUser, translate.RoleAssistant:
		default:
			return nil, nil, translate.Invalid("messages", "message %d has no role", i)
		}
		for j := range m.Parts {
			p := &m.Parts[j]
			keep, fail := keepPart(p, m.Role, i)
			if fail != nil {
				return nil, nil, fail
			}
			if !keep {
				continue
			}
			ptrs = append(ptrs, p)
			if last := len(msgs) - 1; last < 0 || msgs[last].role != m.Role {
				start = len(ptrs) - 1
				msgs = append(msgs, wmsg{role: m.Role})
			}
			msgs[len(msgs)-1].parts = ptrs[start:len(ptrs):len(ptrs)]
		}
	}
	if msgs, fail = pairTools(msgs); fail != nil {
		return nil, nil, fail
	}
	switch {
	case len(msgs) == 0:
		return nil, nil, translate.Invalid("messages", "at least one user or assistant message with content is required")
	case msgs[0].role == translate.RoleAssistant:
		// The API wants the user to speak first; a conversation from
		// another format may open with the assistant's greeting.
		msgs = append([]wmsg{{role: translate.RoleUser, parts: []*translate.Part{&openingTurn}}}, msgs...)
	}
	return sys, msgs, nil
}

// openingTurn is the user turn put before a conversation that opens with
// the assistant.
var openingTurn = translate.Part{Type: translate.PartText, Text: "."}

func addSystem(sys *[]*translate.Part, p *translate.Part) *translate.Error {
	if p.Type != translate.PartText {
		return translate.Unsupported("system (a part that is not text)", Name)
	}
	if p.Text != "" {
		*sys = append(*sys, p)
	}
	return nil
}

// keepPart says whether p goes to the upstream.
func keepPart(p *translate.Part, role translate.Role, i int) (bool, *translate.Error) {
	switch p.Type {
	case translate.PartText:
		// The API refuses empty text blocks.
		return p.Text != "", nil
	case translate.PartImage:
		return true, nil
	case translate.PartToolCall:
		if role != translate.RoleAssistant {
			return false, translate.Invalid("messages", "message %d: a tool call in a user message", i)
		}
		if p.ID == "" {
			return false, translate.Invalid("messages", "message %d: tool call %q has no id", i, p.Name)
		}
		return true, nil
	case translate.PartToolResult:
		if role != translate.RoleUser {
			return false, translate.Invalid("messages", "message %d: a tool result in an assistant message", i)
		}
		return true, nil
	case translate.PartThinking, translate.PartRedactedThinking:
		// Only Anthropic can check its own signature; unsigned or foreign
		// thinking is left out (DESIGN.md).
		return role == translate.RoleAssistant && p.Origin == Name && p.Signature != "", nil
	}
	return false, translate.Invalid("messages", "message %d: a part of unknown type %d", i, p.Type)
}

// pairTools moves each tool result into the user turn right after the
// assistant turn that made the call, puts results first in their turn,
// and refuses a result without its call, a call without its result and an
// id used twice: the API refuses each of them.
func pairTools(msgs []wmsg) ([]wmsg, *translate.Error) {
	var calls callIndex
	for a := range msgs {
		for _, p := range msgs[a].parts {
			if p.Type == translate.PartToolCall && !calls.add(p, a) {
				return nil, translate.Invalid("messages", "tool call id %q is used twice", p.ID)
			}
		}
	}
	moved, unordered := false, false
	answered := 0
	for k := range msgs {
		if msgs[k].role != translate.RoleUser {
			continue
		}
		text := false
		for _, p := range msgs[k].parts {
			if p.Type != translate.PartToolResult {
				text = true
				continue
			}
			c := calls.find(p.ID)
			if c == nil || c.msg >= k {
				return nil, translate.Invalid("messages", "tool result %q answers no tool call of an earlier assistant message", p.ID)
			}
			if c.answered {
				return nil, translate.Invalid("messages", "tool call %q is answered twice", p.ID)
			}
			c.answered = true
			answered++
			moved = moved || c.msg+1 != k
			unordered = unordered || text
		}
	}
	if answered != len(calls.list) {
		for _, c := range calls.list {
			if !c.answered {
				return nil, translate.Invalid("messages", "tool call %q (%s) has no tool result in the next user message", c.id, c.name)
			}
		}
	}
	if !moved && !unordered {
		return msgs, nil
	}
	for k := range msgs {
		if msgs[k].role != translate.RoleUser {
			continue
		}
		var parts []*translate.Part
		for j := range msgs {
			if msgs[j].role != translate.RoleUser {
				continue
			}
			for _, p := range msgs[j].parts {
				if p.Type == translate.PartToolResult && calls.find(p.ID).msg+1 == k {
					parts = append(parts, p)
				}
			}
		}
		for _, p := range msgs[k].parts {
			if p.Type != translate.PartToolResult {
				parts = append(parts, p)
			}
		}
		msgs[k].parts = parts
	}
	// A turn emptied by the moves goes, and its neighbours, now of one
	// role, merge.
	out := msgs[:0]
	for _, m := range msgs {
		switch {
		case len(m.parts) == 0:
		case len(out) > 0 && out[len(out)-1].role == m.role:
			last := &out[len(out)-1]
			last.parts = append(last.parts[:len(last.parts):len(last.parts)], m.parts...)
		default:
			out = append(out, m)
		}
	}
	return out, nil
}

// callIndex finds a tool call by id: a list searched in order while it is
// short (most conversations), a map once it grows.
type callIndex struct {
	list []toolCall
	m    map[string]int
}

// toolCall is a call of the conversation: its id, its tool, the message
// that made it and whether a result answers it.
type toolCall struct {
	id, name string
	msg      int
	answered bool
}

// indexFrom is the number of calls from which callIndex keeps a map.
const indexFrom = 16

// add records the call p of message msg; false when its id is taken.
func (c *callIndex) add(p *translate.Part, msg int) bool {
	if c.find(p.ID) != nil {
		return false
	}
	c.list = append(c.list, toolCall{id: p.ID, name: p.Name, msg: msg})
	switch n := len(c.list); {
	case n == indexFrom:
		c.m = make(map[string]int, 2*indexFrom)
		for i := range c.list {
			c.m[c.list[i].id] = i
		}
	case n > indexFrom:
		c.m[p.ID] = n - 1
	}
	return true
}

func (c *callIndex) find(id string) *toolCall {
	if c.m != nil {
		if i, ok := c.m[id]; ok {
			return &c.list[i]
		}
		return nil
	}
	for i := range c.list {
		if c.list[i].id == id {
			return &c.list[i]
		}
	}
	return nil
}

func appendText(dst []byte, text string) []byte {
	dst = append(dst, `{"type":"text","text":`...)
	dst = translate.AppendString(dst, text)
	return append(dst, '}')
}

func appendMessage(dst []byte, m *wmsg) ([]byte, *translate.Error) {
	if m.role == translate.RoleUser {
		dst = append(dst, `{"role":"user","content":[`...)
	} else {
		dst = append(dst, `{"role":"assistant","content":[`...)
	}
	var fail *translate.Error
	for i, p := range m.parts {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch p.Type {
		case translate.PartText:
			dst = appendText(dst, p.Text)
		case translate.PartImage:
			dst = appendImage(dst, p)
		case translate.PartToolCall:
			args := strings.TrimSpace(p.Args)
			if args != "" && !isObject(args) {
				return dst, translate.Invalid("messages", "the arguments of tool call %q (%s) are not a JSON object", p.ID, p.Name)
			}
			dst = append(dst, `{"type":"tool_use","id":`...)
			dst = appendID(dst, p.ID)
			dst = append(dst, `,"name":`...)
			dst = translate.AppendString(dst, p.Name)
			dst = append(dst, `,"input":`...)
			if args == "" {
				args = "{}"
			}
			dst = append(dst, args...)
			dst = append(dst, '}')
		case translate.PartToolResult:
			if dst, fail = appendResult(dst, p); fail != nil {
				return dst, fail
			}
		case translate.PartThinking:
			dst = append(dst, `{"type":"thinking","thinking":`...)
			dst = translate.AppendString(dst, p.Text)
			dst = append(dst, `,"signature":`...)
			dst = translate.AppendString(dst, p.Signature)
			dst = append(dst, '}')
		case translate.PartRedactedThinking:
			dst = append(dst, `{"type":"redacted_thinking","data":`...)
			dst = translate.AppendString(dst, p.Signature)
			dst = append(dst, '}')
		}
	}
	return append(dst, "]}"...), nil
}

func appendResult(dst []byte, p *translate.Part) ([]byte, *translate.Error) {
	dst = append(dst, `{"type":"tool_result","tool_use_id":`...)
	dst = appendID(dst, p.ID)
	switch {
	case len(p.Content) == 1 && p.Content[0].Type == translate.PartText:
		if p.Content[0].Text == "" {
			break
		}
		dst = append(dst, `,"content":`...)
		dst = translate.AppendString(dst, p.Content[0].Text)
	case len(p.Content) > 0:
		dst = append(dst, `,"content":[`...)
		n := 0
		for i := range p.Content {
			c := &p.Content[i]
			switch c.Type {
			case translate.PartText:
				if c.Text == "" {
					continue
				}
				if n > 0 {
					dst = append(dst, ',')
				}
				dst = appendText(dst, c.Text)
			case translate.PartImage:
				if n > 0 {
					dst = append(dst, ',')
				}
				dst = appendImage(dst, c)
			default:
				return dst, translate.Unsupported("a tool result part that is neither text nor image", Name)
			}
			n++
		}
		dst = append(dst, ']')
	}
	if p.IsError {
		dst = append(dst, `,"is_error":true`...)
	}
	return append(dst, '}'), nil
}

// appendImage writes an image block: base64 data, or a URL (a data: URL
// is unpacked into base64 data, which the API wants).
func appendImage(dst []byte, p *translate.Part) []byte {
	mediaType, data, url := p.MediaType, p.Data, p.URL
	if data == "" && strings.HasPrefix(url, "data:") {
		if meta, payload, ok := strings.Cut(url[len("data:"):], ","); ok && strings.HasSuffix(meta, ";base64") {
			mediaType, data, url = strings.TrimSuffix(meta, ";base64"), payload, ""
		}
	}
	if url != "" {
		dst = append(dst, `{"type":"image","source":{"type":"url","url":`...)
		dst = translate.AppendString(dst, url)
		return append(dst, "}}"...)
	}
	dst = append(dst, `{"type":"image","source":{"type":"base64","media_type":`...)
	dst = translate.AppendString(dst, mediaType)
	dst = append(dst, `,"data":`...)
	dst = translate.AppendString(dst, data)
	return append(dst, "}}"...)
}

// appendID writes a tool call id, its characters outside [A-Za-z0-9_-]
// (which the API refuses; some vendors' ids have "." or ":") as "_": a
// call and its result change alike, so they still pair.
func appendID(dst []byte, id string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			dst = append(dst, c)
		} else {
			dst = append(dst, '_')
		}
	}
	return append(dst, '"')
}

// isObject says whether s is a JSON object's text.
func isObject(s string) bool {
	s = strings.TrimLeft(s, " \t\r\n")
	return s != "" && s[0] == '{' && fastjson.Validate(s) == nil
}

func appendTools(dst []byte, r *translate.Request) []byte {
	dst = append(dst, `,"tools":[`...)
	for i := range r.Tools {
		t := &r.Tools[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = translate.AppendString(dst, t.Name)
		if t.Description != "" {
			dst = append(dst, `,"description":`...)
			dst = translate.AppendString(dst, t.Description)
		}
		dst = append(dst, `,"input_schema":`...)
		if t.Schema == "" {
			dst = append(dst, `{"type":"object","properties":{}}`...)
		} else {
			dst = append(dst, t.Schema...)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	noParallel := r.ParallelToolCalls != nil && !*r.ParallelToolCalls
	switch r.ToolChoice.Mode {
	default:
		if noParallel {
			dst = append(dst, `,"tool_choice":{"type":"auto","disable_parallel_tool_use":true}`...)
		}
		return dst
	case translate.ToolAuto:
		dst = append(dst, `,"tool_choice":{"type":"auto"`...)
	case translate.ToolRequired:
		dst = append(dst, `,"tool_choice":{"type":"any"`...)
	case translate.ToolNamed:
		dst = append(dst, `,"tool_choice":{"type":"tool","name":`...)
		dst = translate.AppendString(dst, r.ToolChoice.Name)
	case translate.ToolNone:
		// The API's "none" takes no other field.
		return append(dst, `,"tool_choice":{"type":"none"}`...)
	}
	if noParallel {
		dst = append(dst, `,"disable_parallel_tool_use":true`...)
	}
	return append(dst, '}')
}
