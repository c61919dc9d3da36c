package proxy

import (
	"strings"
)

// Gemini's surface (W4): POST {base}/{version}/models/{model}:{method},
// where version is v1beta (Google's JavaScript SDK, curl examples) or v1
// (the Go SDK's default), both served; also under /api/ like the other
// surfaces. The model comes from the path, and so does streaming
// (streamGenerateContent, with ?alt=sse).
var geminiPrefixes = [...]string{"/v1beta/models/", "/v1/models/", "/api/v1beta/models/", "/api/v1/models/"}

// geminiPath reads a Gemini path: the model (with a leading "models/"
// repeated by some clients dropped), the format and whether it streams.
// ok is false for any other path, including GET /v1/models/{id}.
func geminiPath(path string) (model string, f Format, stream, ok bool) {
	rest := ""
	for _, p := range geminiPrefixes {
		if strings.HasPrefix(path, p) {
			rest = path[len(p):]
			break
		}
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return "", 0, false, false
	}
	model, method := strings.TrimPrefix(rest[:i], "models/"), rest[i+1:]
	switch method {
	case "generateContent":
		return model, FormatGemini, false, model != ""
	case "streamGenerateContent":
		return model, FormatGemini, true, model != ""
	case "countTokens":
		return model, FormatGeminiCount, false, model != ""
	}
	return "", 0, false, false
}
