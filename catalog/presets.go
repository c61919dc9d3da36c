package catalog

// Preset is a provider the catalog knows: its wire kind, base URL, the
// environment variable its key is read from by default, and the quirks
// the proxy must allow for. An operator names a preset in [[providers]]
// and gives only the key (docs/config.md).
type Preset struct {
	Name    string
	Kind    string // openai | anthropic | gemini
	BaseURL string // an openai one includes its version prefix
	KeyEnv  string
	// NoResponses: an openai-kind upstream that serves Chat Completions
	// only; the proxy translates Responses calls for it.
	NoResponses bool
	// DropBetas: an anthropic-kind upstream that is not Anthropic and
	// refuses Anthropic's beta flags.
	DropBetas bool
}

// OpenRouter is the name of the aggregator preset that serves every
// catalog model by its own id: the last route of every model.
const OpenRouter = "openrouter"

// presets in the order Presets returns them. Sources and doubts are in
// DESIGN.md ("Presets").
var presets = []Preset{
	{Name: "openai", Kind: "openai", BaseURL: "https://api.openai.com/v1", KeyEnv: "OPENAI_API_KEY"},
	{Name: "anthropic", Kind: "anthropic", BaseURL: "https://api.anthropic.com", KeyEnv: "ANTHROPIC_API_KEY"},
	{Name: "gemini", Kind: "gemini", BaseURL: "https://generativelanguage.googleapis.com", KeyEnv: "GEMINI_API_KEY"},
	{Name: "deepseek", Kind: "openai", BaseURL: "https://api.deepseek.com", KeyEnv: "DEEPSEEK_API_KEY", NoResponses: true},
	// xAI serves the Responses API (and recommends it over Chat Completions).
	{Name: "xai", Kind: "openai", BaseURL: "https://api.x.ai/v1", KeyEnv: "XAI_API_KEY"},
	{Name: "moonshot", Kind: "openai", BaseURL: "https://api.moonshot.ai/v1", KeyEnv: "MOONSHOT_API_KEY", NoResponses: true},
	{Name: "zai", Kind: "openai", BaseURL: "https://api.z.ai/api/paas/v4", KeyEnv: "ZAI_API_KEY", NoResponses: true},
	{Name: "qwen", Kind: "openai", BaseURL: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", KeyEnv: "DASHSCOPE_API_KEY", NoResponses: true},
	{Name: "minimax", Kind: "openai", BaseURL: "https://api.minimax.io/v1", KeyEnv: "MINIMAX_API_KEY", NoResponses: true},
	{Name: OpenRouter, Kind: "openai", BaseURL: "https://openrouter.ai/api/v1", KeyEnv: "OPENROUTER_API_KEY", NoResponses: true},
}

// Presets returns every preset, vendors first and OpenRouter last.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// PresetByName returns the preset of a name.
func PresetByName(name string) (Preset, bool) {
	for _, p := range presets {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// RouteEntry is one way to serve a catalog model: a preset, by name, and
// the model's name on it.
type RouteEntry struct {
	Preset   string
	Upstream string
}

// Route lists, in order, the presets that can serve a catalog model: the
// vendor's own API first when a preset serves it, then OpenRouter by the
// model's id. An id the catalog does not hold has no route.
func Route(slug string) []RouteEntry {
	d := loaded()
	i, ok := d.bySlug[slug]
	if !ok {
		return nil
	}
	out := make([]RouteEntry, 0, 2)
	if r := d.entries[i].route; r != nil {
		out = append(out, *r)
	}
	return append(out, RouteEntry{Preset: OpenRouter, Upstream: slug})
}
