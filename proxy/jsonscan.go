package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// A request body is forwarded untouched except for the few top-level fields
// zenmuxd rewrites (model, and stream_options on streamed chat). Rather
// than decode and re-encode a body that may be 100 KB of tool schemas, one
// validating pass finds the byte range of each top-level value, and edits
// are spliced in. Unknown fields pass through byte for byte.

var errBadJSON = errors.New("the body is not valid JSON")

// span is a top-level value's byte range in the body.
type span struct{ start, end int }

// topLevel is what the gateway reads from a request body.
type topLevel struct {
	model, stream, streamOptions, maxTokens, maxOutputTokens, input, messages span
	// repeated names the first of those members that appears more than
	// once. The gateway reads the last occurrence, as encoding/json does,
	// but a provider's parser may read the first, which would then be the
	// client's own model or stream flag: generate refuses such a body.
	repeated string
	// caseTwin names a member written in another case ("Model", "ſtream"):
	// a parser that matches names ignoring case, as Go's encoding/json
	// does, reads it as that member, so generate refuses it too.
	caseTwin string
}

// memberNames are the members scanTopLevel records.
var memberNames = [...]string{"model", "stream", "stream_options", "max_tokens", "max_output_tokens", "input", "messages"}

// foldsToMember reports whether key is one of memberNames when case is
// ignored, with Unicode's folds ("ſtream" is "stream"). An ASCII key can
// only fold to a name of its own length, which spares most of a body's
// other members the comparisons: nine of them cost 100 ns instead of 200
// (a throwaway benchmark against comparing every name, in one run).
func foldsToMember(key []byte) bool {
	ascii := true
	for _, c := range key {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	for _, name := range memberNames {
		if (!ascii || len(key) == len(name)) && bytes.EqualFold(key, []byte(name)) {
			return true
		}
	}
	return false
}

func (s span) ok() bool { return s.end > s.start }

// scanTopLevel validates that body is exactly one JSON object and records
// the spans of the fields the gateway needs, by their names as decoded.
// Duplicate keys keep the last occurrence, as encoding/json would, and are
// noted in repeated.
func scanTopLevel(body []byte) (topLevel, error) {
	var t topLevel
	p := scanner{b: body}
	p.ws()
	if !p.eat('{') {
		return t, errBadJSON
	}
	p.ws()
	if p.eat('}') {
		return t, p.end()
	}
	for {
		p.ws()
		ks := p.i
		if !p.str() {
			return t, errBadJSON
		}
		key := body[ks+1 : p.i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			// "mod\u0065l" is "model" to every parser upstream: read the
			// name as they will, or the client's own value would pass
			// through unread and unrewritten.
			k, _ := stringValue(body[ks:p.i])
			key = []byte(k)
		}
		p.ws()
		if !p.eat(':') {
			return t, errBadJSON
		}
		p.ws()
		vs := p.i
		if !p.value(0) {
			return t, errBadJSON
		}
		var dst *span
		switch string(key) {
		case "model":
			dst = &t.model
		case "stream":
			dst = &t.stream
		case "stream_options":
			dst = &t.streamOptions
		case "max_tokens":
			dst = &t.maxTokens
		case "max_output_tokens":
			dst = &t.maxOutputTokens
		case "input":
			dst = &t.input
		case "messages":
			dst = &t.messages
		}
		if dst != nil {
			if dst.ok() && t.repeated == "" {
				t.repeated = string(key)
			}
			*dst = span{vs, p.i}
		} else if t.caseTwin == "" && foldsToMember(key) {
			t.caseTwin = string(key)
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return t, p.end()
		}
		return t, errBadJSON
	}
}

type scanner struct {
	b []byte
	i int
}

const maxDepth = 512

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) end() error {
	p.ws()
	if p.i != len(p.b) {
		return errBadJSON
	}
	return nil
}

func (p *scanner) value(depth int) bool {
	if p.i >= len(p.b) || depth > maxDepth {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '{':
		p.i++
		p.ws()
		if p.eat('}') {
			return true
		}
		for {
			p.ws()
			if !p.str() {
				return false
			}
			p.ws()
			if !p.eat(':') {
				return false
			}
			p.ws()
			if !p.value(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			return p.eat('}')
		}
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return true
		}
		for {
			p.ws()
			if !p.value(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			return p.eat(']')
		}
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	default:
		return p.num()
	}
}

func (p *scanner) lit(s string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *scanner) str() bool {
	if !p.eat('"') {
		return false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return false
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return false
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			p.i++
		}
	}
	return false
}

func (p *scanner) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

func (p *scanner) num() bool {
	p.eat('-')
	if p.eat('0') {
		// no leading zeros
	} else if p.digits() == 0 {
		return false
	}
	if p.eat('.') && p.digits() == 0 {
		return false
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if !p.eat('+') {
			p.eat('-')
		}
		if p.digits() == 0 {
			return false
		}
	}
	return true
}

// stringValue decodes a JSON string value; ok is false for other types.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// splice returns body with the span replaced by repl.
func splice(body []byte, s span, repl []byte) []byte {
	out := make([]byte, 0, len(body)-(s.end-s.start)+len(repl))
	out = append(out, body[:s.start]...)
	out = append(out, repl...)
	return append(out, body[s.end:]...)
}

// memberValue returns the span of the value of the first member named
// path[0] in the JSON object b, descending through objects along the rest
// of path. It stops at the member: a model that comes before an answer's
// content is found without scanning the content. ok is false when a member is
// missing or b is malformed before it. Names compare as written: this
// reads upstreams' answers, not clients' bodies.
func memberValue(b []byte, path ...string) (span, bool) {
	p := scanner{b: b}
	return p.member(path)
}

func (p *scanner) member(path []string) (span, bool) {
	p.ws()
	if !p.eat('{') {
		return span{}, false
	}
	for {
		p.ws()
		ks := p.i
		if !p.str() {
			return span{}, false
		}
		key := p.b[ks+1 : p.i-1]
		p.ws()
		if !p.eat(':') {
			return span{}, false
		}
		p.ws()
		if string(key) == path[0] {
			if len(path) > 1 {
				return p.member(path[1:])
			}
			vs := p.i
			if !p.value(0) {
				return span{}, false
			}
			return span{vs, p.i}, true
		}
		if !p.value(0) {
			return span{}, false
		}
		p.ws()
		if !p.eat(',') {
			return span{}, false
		}
	}
}

// modelSpan is the span, in b, of the model name an answer or event gives
// at path, when it is a string other than model (the client's, a JSON
// string literal): what the gateway replaces. ok is false when there is
// nothing to replace.
func modelSpan(b, model []byte, path []string) (span, bool) {
	if path == nil || len(model) == 0 {
		return span{}, false
	}
	s, ok := memberValue(b, path...)
	if !ok || b[s.start] != '"' || bytes.Equal(b[s.start:s.end], model) {
		return span{}, false
	}
	return s, true
}

// Where an answer names its model. A whole answer of chat, Responses or
// Messages names it at the top level, before its content. Embeddings name
// it after their vectors, which would be scanned to the end for it (23 µs
// for one 1536-dimension vector), and images not at all: those answers
// pass as they are.
var (
	modelPath         = []string{"model"}
	responseModelPath = []string{"response", "model"}
	messageModelPath  = []string{"message", "model"}
	geminiModelPath   = []string{"modelVersion"}
)

// answerModelPath is where a whole answer of format f names its model (nil:
// it is not renamed).
func answerModelPath(f Format) []string {
	switch f {
	case FormatChat, FormatResponses, FormatMessages:
		return modelPath
	case FormatGemini:
		return geminiModelPath
	}
	return nil
}

// eventModelPath is where a stream event named name names its model: every
// chat chunk at the top level; in the Responses stream the events that
// carry the response object (response.created, response.completed …,
// one dot in their name); in the Messages stream message_start. Other
// events (deltas, pings) are not scanned.
func eventModelPath(f Format, name string) []string {
	switch f {
	case FormatChat:
		return modelPath
	case FormatResponses:
		if rest, ok := strings.CutPrefix(name, "response."); ok && !strings.Contains(rest, ".") {
			return responseModelPath
		}
	case FormatMessages:
		if name == "message_start" {
			return messageModelPath
		}
	case FormatGemini:
		return geminiModelPath
	}
	return nil
}
