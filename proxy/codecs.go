package proxy

import (
	"zenmux/translate/anthropic"
	"zenmux/translate/chat"
	"zenmux/translate/gemini"
	"zenmux/translate/responses"
)

func init() {
	codecs[FormatChat] = chat.Codec
	codecs[FormatResponses] = responses.Codec
	codecs[FormatMessages] = anthropic.Codec
	codecs[FormatGemini] = gemini.Codec
}
