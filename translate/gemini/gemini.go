// Package gemini is the translate.Codec of Google's Gemini API
// (generateContent and streamGenerateContent, Google AI v1beta and v1):
// Gemini clients reach models served in other formats, and other clients
// reach a gemini upstream. See DESIGN.md for the mappings.
package gemini

import (
	"math"
	"strconv"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// Format is this codec's format name, the Origin of the signatures it
// makes.
const Format = "gemini"

// Codec is the Gemini codec.
var Codec translate.Codec = codec{}

type codec struct{}

var parsers fastjson.ParserPool

// synthPrefix starts the tool call ids this codec makes up for calls
// Gemini sent without one. The writers leave such ids out, so a Gemini
// client or upstream never sees an id it did not write.
const synthPrefix = "gemini_call_"

// dummySignature is the value Google documents for a function call whose
// thought signature is unknown (a conversation begun on another model):
// Gemini 3 refuses a model turn whose first function call has none.
const dummySignature = "skip_thought_signature_validator"

// synthID is the made-up id of the n-th call (from 1) of an answer whose
// responseId is rid (empty in a request, where the id only pairs a call
// with its result): unique across answers, so a client keeping ids from
// several turns never sees one twice.
func synthID(rid string, n int) string {
	b := make([]byte, 0, len(synthPrefix)+len(rid)+8)
	b = append(b, synthPrefix...)
	for i := 0; i < len(rid); i++ {
		c := rid[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b = append(b, c)
		}
	}
	if len(b) > len(synthPrefix) {
		b = append(b, '_')
	}
	b = strconv.AppendInt(b, int64(n), 10)
	return string(b)
}

// realID is id unless this codec made it up.
func realID(id string) string {
	if len(id) > len(synthPrefix) && id[:len(synthPrefix)] == synthPrefix {
		return ""
	}
	return id
}

// arena holds the strings of a decoded request or answer, copied out of
// the pooled parser's memory in one allocation: views of it are handed
// out and never written again (appends only write past them).
type arena struct{ b []byte }

// keep copies b into the arena and returns the copy as a string.
func (a *arena) keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(a.b)
	a.b = append(a.b, b...)
	return view(a.b[start:])
}

// str is v's string value, kept.
func (a *arena) str(v *fastjson.Value) string {
	if v == nil || v.Type() != fastjson.TypeString {
		return ""
	}
	return a.keep(v.GetStringBytes())
}

// raw is v's JSON text, kept.
func (a *arena) raw(v *fastjson.Value) string {
	start := len(a.b)
	a.b = v.MarshalTo(a.b)
	return view(a.b[start:])
}

// str is v's string value, copied (v's bytes live in a pooled parser).
func str(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	b, err := v.StringBytes()
	if err != nil {
		return ""
	}
	return string(b)
}

// count reads a token count as the gateway's metering does: a number,
// written as an integer or a float; anything else, or out of bounds, is 0.
func count(v *fastjson.Value) int64 {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return 0
	}
	if n, err := v.Int64(); err == nil {
		if n < 0 || n > maxCount {
			return 0
		}
		return n
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxCount {
		return 0
	}
	return int64(f)
}

// maxCount bounds a token count read from an upstream.
const maxCount = 1 << 40

// get is o's member named camel, or snake: Gemini's REST API takes both
// spellings (its documentation's curl examples use snake_case).
func get(o *fastjson.Object, camel, snake string) *fastjson.Value {
	if v := o.Get(camel); v != nil {
		return v
	}
	return o.Get(snake)
}

// validObject reports whether s is one JSON object.
func validObject(s string) bool {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i < len(s) && s[i] == '{' && fastjson.Validate(s) == nil
}

// validJSON reports whether s is one JSON value.
func validJSON(s string) bool { return s != "" && fastjson.Validate(s) == nil }
