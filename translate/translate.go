// Package translate carries a request, its answer, its stream and its
// errors between the four wire formats zenmuxd speaks: OpenAI Chat
// Completions, OpenAI Responses, Anthropic Messages and Gemini
// generateContent. Each format is a Codec in its own subpackage; they meet
// in the neutral types below, so n formats need n codecs, not n² pairs.
// See DESIGN.md.
//
// The package is pure: standard library only, no I/O, no clock.
package translate

import (
	"errors"
	"fmt"
)

// Role is who wrote a message. Tool results are parts of a user message,
// as in Anthropic's model; a codec whose format gives them their own role
// (OpenAI's "tool", Gemini's functionResponse) maps them on the way.
type Role uint8

// Roles.
const (
	RoleUser Role = iota + 1
	RoleAssistant
	// RoleSystem is a system or developer message after the conversation
	// began (leading ones are Request.System); a format without one folds
	// it into its system prompt.
	RoleSystem
)

// PartType says which fields of a Part are set.
type PartType uint8

// Part types.
const (
	// PartText: Text.
	PartText PartType = iota + 1
	// PartImage: MediaType and Data (base64, no data: prefix), or URL.
	PartImage
	// PartToolCall: ID, Name and Args (a JSON object's text).
	PartToolCall
	// PartToolResult: ID (the call's), Name (the tool's, when known),
	// Content (text and image parts) and IsError.
	PartToolResult
	// PartThinking: Text (the visible reasoning or its summary) and
	// Signature (Anthropic's signature or OpenAI's encrypted_content,
	// opaque, valid only on the format that made it: see Origin).
	PartThinking
	// PartRedactedThinking: Signature holds Anthropic's opaque data.
	PartRedactedThinking
)

// Part is one piece of a message's content.
type Part struct {
	Type      PartType
	Text      string
	MediaType string
	Data      string
	URL       string
	ID        string
	Name      string
	Args      string
	Content   []Part
	IsError   bool
	Signature string
	// Origin names the format whose codec made Signature ("anthropic",
	// "responses", "gemini"); a codec drops a signature of another origin,
	// since no upstream can check another's.
	Origin string
}

// Message is one turn of the conversation.
type Message struct {
	Role  Role
	Parts []Part
}

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Schema is the JSON Schema of the arguments, as the client wrote it
	// (raw JSON text); empty means no parameters.
	Schema string
}

// ToolMode is how the model must use the tools.
type ToolMode uint8

// Tool modes; ToolUnset leaves it to the upstream's default (auto).
const (
	ToolUnset ToolMode = iota
	ToolAuto
	ToolNone
	ToolRequired // some tool: OpenAI "required", Anthropic "any", Gemini ANY
	ToolNamed    // the tool named by ToolChoice.Name
)

// ToolChoice constrains tool use.
type ToolChoice struct {
	Mode ToolMode
	Name string
}

// Reasoning asks for thinking. Effort is "minimal", "low", "medium" or
// "high" (OpenAI's words); BudgetTokens is Anthropic's and Gemini's
// budget. A codec fills the one its format has and derives the other when
// its upstream needs it.
type Reasoning struct {
	Effort       string
	BudgetTokens int64
	// Summary asks an OpenAI Responses upstream for reasoning summaries
	// ("auto", "concise", "detailed").
	Summary string
	// Disabled is an explicit "no thinking" (Anthropic type "disabled",
	// Gemini thinkingBudget 0).
	Disabled bool
}

// ResponseFormat asks for JSON output.
type ResponseFormat struct {
	// Type is "json_object" or "json_schema".
	Type   string
	Name   string
	Schema string // raw JSON Schema text, for json_schema
	Strict bool
}

// Request is a generation request, neutral of format.
type Request struct {
	Model string
	// System is the system prompt (OpenAI system and developer messages,
	// Responses instructions, Anthropic system, Gemini systemInstruction),
	// as text parts in order.
	System   []Part
	Messages []Message
	Tools    []Tool
	// ToolChoice is ignored by encoders when Tools is empty: an upstream
	// refuses a tool_choice without tools.
	ToolChoice        ToolChoice
	ParallelToolCalls *bool
	MaxTokens         int64 // 0: unset
	Temperature       *float64
	TopP              *float64
	TopK              *int64
	Stop              []string
	Stream            bool
	// IncludeUsage is a Chat Completions client's stream_options.
	// include_usage: its stream ends with a usage chunk only if it asked.
	IncludeUsage   bool
	Reasoning      *Reasoning
	ResponseFormat *ResponseFormat
	// User is an end-user id for the provider's abuse tracking (OpenAI
	// user or safety_identifier, Anthropic metadata.user_id).
	User string
	// Namespaces are the Responses namespace tools the client declared
	// (Codex's multi_agent_v1): their functions travel as tools named
	// namespace + NamespaceSep + name, and a call of one goes back to the
	// client under its namespace.
	Namespaces []string
}

// NamespaceSep joins a namespace and a function's name into one tool name
// every format accepts (letters, digits, _ and -).
const NamespaceSep = "__"

// SplitNamespace returns the namespace of a tool name that starts with
// one of namespaces and NamespaceSep, and the function's own name; else
// "" and name.
func SplitNamespace(namespaces []string, name string) (ns, fn string) {
	for _, n := range namespaces {
		if len(name) > len(n)+len(NamespaceSep) && name[:len(n)] == n && name[len(n):len(n)+len(NamespaceSep)] == NamespaceSep {
			return n, name[len(n)+len(NamespaceSep):]
		}
	}
	return "", name
}

// StopReason is why generation ended.
type StopReason uint8

// Stop reasons.
const (
	StopUnset     StopReason = iota
	StopEnd                  // natural end: stop, end_turn, STOP, completed
	StopMaxTokens            // length, max_tokens, MAX_TOKENS, incomplete
	StopToolUse              // tool_calls, tool_use
	StopSequence             // a stop sequence matched
	StopRefusal              // content_filter, refusal, SAFETY
)

// Usage is an answer's token counts. Input excludes cache reads and
// writes (Anthropic's meaning); Output includes Reasoning.
type Usage struct {
	Input, Output, CacheRead, CacheWrite, Reasoning int64
}

// Response is a whole (non-streamed) answer.
type Response struct {
	ID    string
	Model string
	// Content holds text, thinking and tool-call parts in order.
	Content []Part
	Stop    StopReason
	// StopSequence is the sequence that matched, when Stop is
	// StopSequence and the upstream said which.
	StopSequence string
	Usage        Usage
	HasUsage     bool
}

// EventType says which fields of an Event are set.
type EventType uint8

// Stream events. A decoder emits them in this grammar, whatever its
// upstream sends: Start? (BlockStart Delta* BlockStop | Usage)* Stop?
// Usage* End — every block is opened before its deltas and closed before
// End, so an encoder never sees a delta of a block it has not announced.
const (
	// EvStart: ID and Model of the answer, when the upstream says them.
	EvStart EventType = iota + 1
	// EvBlockStart: Index (0, 1, 2… in order) and Block, whose Type is
	// PartText, PartThinking, PartRedactedThinking or PartToolCall (with
	// ID and Name; Args empty).
	EvBlockStart
	// EvDelta: Index, Delta (DeltaText, DeltaThinking, DeltaArgs,
	// DeltaSignature) and Data.
	EvDelta
	// EvBlockStop: Index.
	EvBlockStop
	// EvUsage: Usage, the totals so far (they replace earlier ones).
	EvUsage
	// EvStop: Stop (and StopSequence).
	EvStop
	// EvEnd: the answer is complete. An encoder writes its closing events
	// here; the gateway holds them until the charge commits.
	EvEnd
	// EvError: Err, an error the upstream reported mid-stream.
	EvError
)

// DeltaType says what an EvDelta's Data extends.
type DeltaType uint8

// Delta types.
const (
	DeltaText DeltaType = iota + 1
	DeltaThinking
	DeltaArgs      // a fragment of a tool call's JSON arguments
	DeltaSignature // a thinking block's signature (or redacted data)
)

// Event is one step of a streamed answer. Data and the strings of Block
// may point into the decoder's buffers: valid until its next Decode.
type Event struct {
	Type         EventType
	ID, Model    string
	Index        int
	Block        Part
	Delta        DeltaType
	Data         []byte
	Usage        Usage
	Stop         StopReason
	StopSequence string
	Err          *Error
}

// StreamDecoder turns one upstream SSE event (its event name, possibly
// empty, and its data) into neutral events appended to evs.
type StreamDecoder interface {
	Decode(evs []Event, name string, data []byte) ([]Event, error)
}

// StreamEncoder writes neutral events as the client's SSE bytes, appended
// to dst.
type StreamEncoder interface {
	Encode(dst []byte, ev *Event) []byte
}

// EncoderOptions configure a client-side stream or answer.
type EncoderOptions struct {
	// Model is the model as the client named it; the answer says it.
	Model string
	// ID is the answer's id when the upstream gives none (the gateway's
	// request id).
	ID string
	// IncludeUsage: see Request.IncludeUsage.
	IncludeUsage bool
	// Namespaces: see Request.Namespaces.
	Namespaces []string
	// Created is the answer's creation time in Unix seconds (the caller's
	// clock: the package reads none).
	Created int64
}

// Codec is one wire format. The client side decodes what a client sent
// and encodes what it gets back; the upstream side encodes what a
// provider is sent and decodes its answer.
type Codec interface {
	// DecodeRequest reads a client's body. A field the format defines but
	// the neutral types cannot carry is an *Error (400) naming it.
	DecodeRequest(body []byte) (*Request, error)
	// EncodeRequest writes the body for an upstream, naming the model
	// upstream. A field of r this format cannot express is an *Error
	// (400) naming it, never a silent drop.
	EncodeRequest(dst []byte, r *Request, upstream string) ([]byte, error)
	// DecodeResponse reads an upstream's whole answer.
	DecodeResponse(body []byte) (*Response, error)
	// EncodeResponse writes a whole answer for a client.
	EncodeResponse(dst []byte, r *Response, o EncoderOptions) []byte
	// NewDecoder reads an upstream's stream.
	NewDecoder() StreamDecoder
	// NewEncoder writes a client's stream.
	NewEncoder(o EncoderOptions) StreamEncoder
	// DecodeError reads an upstream's error answer (any body, even one
	// that is not JSON) with its HTTP status.
	DecodeError(status int, body []byte) *Error
	// EncodeError writes an error answer's body in this format.
	EncodeError(dst []byte, e *Error) []byte
}

// ErrorKind is the neutral class of an error; each format has its own
// words for it.
type ErrorKind uint8

// Error kinds, with the HTTP status each usually travels with.
const (
	ErrInvalidRequest ErrorKind = iota + 1 // 400
	ErrAuthentication                      // 401
	ErrPermission                          // 403
	ErrNotFound                            // 404
	ErrTooLarge                            // 413
	ErrRateLimit                           // 429
	ErrServer                              // 500
	ErrOverloaded                          // 503, Anthropic's 529
)

// Error is an error answer, neutral of format.
type Error struct {
	Status  int
	Kind    ErrorKind
	Message string
	// Param names the request field at fault, when known.
	Param string
	// Code is the format's own code when it gave one (OpenAI's code,
	// Gemini's status), passed on where the client's format has a place
	// for it.
	Code string
}

func (e *Error) Error() string { return e.Message }

// Unsupported is the 400 a codec returns for a field it cannot carry to
// (or from) its format: the client is told which field, never silently
// dropped.
func Unsupported(field, format string) *Error {
	return &Error{Status: 400, Kind: ErrInvalidRequest, Param: field,
		Message: fmt.Sprintf("%s is not supported when the model is served in the %s format", field, format)}
}

// Invalid is a 400 about a client's request that is not valid in its own
// format.
func Invalid(field, format string, a ...any) *Error {
	return &Error{Status: 400, Kind: ErrInvalidRequest, Param: field, Message: fmt.Sprintf(format, a...)}
}

// AsError returns err as an *Error, or a 400 carrying its text.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: 400, Kind: ErrInvalidRequest, Message: err.Error()}
}

// KindOfStatus is the error kind an HTTP status usually means.
func KindOfStatus(status int) ErrorKind {
	switch {
	case status == 401:
		return ErrAuthentication
	case status == 403:
		return ErrPermission
	case status == 404:
		return ErrNotFound
	case status == 413:
		return ErrTooLarge
	case status == 429:
		return ErrRateLimit
	case status == 503 || status == 529:
		return ErrOverloaded
	case status >= 500:
		return ErrServer
	}
	return ErrInvalidRequest
}
