// Package anthropic is the Anthropic Messages wire format's codec: it reads
// and writes /v1/messages requests, answers, SSE streams and error bodies
// for Claude clients (Claude Code, the Anthropic SDKs) and for
// anthropic-kind upstreams (Anthropic itself and the Anthropic-compatible
// endpoints of other vendors). See DESIGN.md for the mapping tables.
package anthropic

import (
	"unsafe"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// Name is the format's name, the Origin of the thinking signatures this
// codec reads.
const Name = "anthropic"

// Codec is the Anthropic Messages format.
var Codec translate.Codec = codec{}

type codec struct{}

// NewDecoder reads an anthropic-kind upstream's stream.
func (codec) NewDecoder() translate.StreamDecoder { return &streamDecoder{} }

// NewEncoder writes a Claude client's stream.
func (codec) NewEncoder(o translate.EncoderOptions) translate.StreamEncoder {
	return &streamEncoder{opts: o}
}

// parsers serves the whole-body decoders; a stream decoder owns its own.
var parsers fastjson.ParserPool

// arena holds the strings a decoded request or answer keeps once its parser
// goes back to the pool: one allocation sized for the body instead of one
// per string. Only the unused tail of a chunk is ever written, so a string
// handed out stays unchanged; when a chunk is full a new one is taken and
// the old one lives on through the strings that point into it.
type arena struct{ buf []byte }

func newArena(size int) arena { return arena{buf: make([]byte, 0, size)} }

// str copies b into the arena.
func (a *arena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	a.reserve(len(b))
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return unsafe.String(&a.buf[start], len(b))
}

// raw writes v as compact JSON into the arena.
func (a *arena) raw(v *fastjson.Value) string {
	start := len(a.buf)
	a.buf = v.MarshalTo(a.buf)
	if len(a.buf) == start {
		return ""
	}
	return unsafe.String(&a.buf[start], len(a.buf)-start)
}

func (a *arena) reserve(n int) {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, 2*cap(a.buf), 256))
	}
}

// view is b as a string without a copy, for event fields that are valid
// only until the decoder's next call (translate.Event says so).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
