// Package responses is the OpenAI Responses wire format (POST
// /v1/responses) as a translate.Codec: a Responses client served by a
// model of another format, and an openai upstream spoken to in Responses.
// See DESIGN.md for the mappings and the fields accepted and dropped.
package responses

import (
	"strings"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// Format is the format's name: the Origin of the reasoning signatures
// (encrypted_content) this codec reads.
const Format = "responses"

// Codec is the Responses wire format.
var Codec translate.Codec = codec{}

type codec struct{}

// parsers serve the whole-body decoders; a stream decoder keeps its own.
var parsers fastjson.ParserPool

func (codec) NewDecoder() translate.StreamDecoder { return &decoder{cur: -1} }

func (codec) NewEncoder(o translate.EncoderOptions) translate.StreamEncoder {
	return &encoder{o: o}
}

// The prefix of an encrypted_content this gateway wrote to carry a
// reasoning signature of another format through a Responses client (see
// DESIGN.md, "Foreign signatures"): "zmx1:t:<origin>:<signature>" for a
// thinking part, "zmx1:r:<origin>:<data>" for redacted thinking.
const carryPrefix = "zmx1:"

// carriedSignature is the encrypted_content that carries p's signature to
// a Responses client: its own for a signature of this format, a tagged one
// for another format's, "" when p has none or no known origin.
func carriedSignature(typ translate.PartType, origin, sig string) string {
	switch {
	case sig == "" || origin == "":
		return ""
	case origin == Format:
		return sig
	case typ == translate.PartRedactedThinking:
		return carryPrefix + "r:" + origin + ":" + sig
	}
	return carryPrefix + "t:" + origin + ":" + sig
}

// uncarry reads an encrypted_content a client sent back: the part type,
// origin and signature it stands for. Anything but a well-formed tag is
// OpenAI's own opaque text.
func uncarry(enc string) (translate.PartType, string, string) {
	rest, ok := strings.CutPrefix(enc, carryPrefix)
	if !ok || len(rest) < 2 || rest[1] != ':' {
		return translate.PartThinking, Format, enc
	}
	typ := translate.PartThinking
	switch rest[0] {
	case 't':
	case 'r':
		typ = translate.PartRedactedThinking
	default:
		return translate.PartThinking, Format, enc
	}
	origin, sig, ok := strings.Cut(rest[2:], ":")
	if !ok || origin == "" || origin == Format {
		return translate.PartThinking, Format, enc
	}
	return typ, origin, sig
}
