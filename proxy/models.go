package proxy

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// modelsPath reads a routed path (route) as GET /v1/models (id "") or
// GET /v1/models/{id}, where the id is a catalog id with its slash
// (/v1/models/anthropic/claude-opus-4.6).
func modelsPath(r string) (id string, ok bool) {
	if r == "/v1/models" {
		return "", true
	}
	id, ok = strings.CutPrefix(r, "/v1/models/")
	return id, ok && id != ""
}

// The fixed creation time every model shows: the catalog keeps none, and
// clients only need a number (OpenAI) or an RFC 3339 time (Anthropic).
const (
	modelCreated   = 1767225600
	modelCreatedAt = "2026-01-01T00:00:00Z"
)

// openAIModel is a model in the OpenAI shape, with OpenRouter's "name"
// (the display name) added: OpenAI's shape has no field for one.
type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Name    string `json:"name"`
}

// anthropicModel is a model in the Anthropic shape.
type anthropicModel struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

// ownedBy is the OpenAI shape's owner: the provider a model names, else
// (a model the node's routes serve) its vendor, the id's first part.
func ownedBy(e *ledger.CatalogEntry) string {
	if e.Provider != "" {
		return e.Provider
	}
	vendor, _, _ := strings.Cut(e.ID, "/")
	return vendor
}

// models answers GET /v1/models with the caller's plan's models (P3), none
// unpriced (M5), in the Anthropic shape when the client sent
// anthropic-version (W3.6); and GET /v1/models/{id} with one of them in the
// shape of a list entry, or 404 in the client's error shape for a model
// the key cannot call (unknown, unpriced or outside its plan).
func (s *Server) models(ctx *fasthttp.RequestCtx, anthropic bool, id string) {
	secret := apiKey(ctx)
	hash := sha256.Sum256(secret)
	list, ok := s.o.Ledger().ModelsFor(hash, s.o.Now())
	if len(secret) == 0 || !ok {
		writeAPIError(ctx, anthropic, newAPIError(401, "invalid_api_key", "the API key is missing, unknown, rotated or revoked"))
		return
	}
	var body []byte
	switch {
	case id != "":
		// Admission's own checks decide, so an alias (P3) answers as its
		// model does; the answer names the id the client asked for.
		ad, err := s.o.Ledger().Admit(hash, id, s.o.Now())
		if errors.Is(err, ledger.ErrInvalidAPIKey) {
			writeAPIError(ctx, anthropic, newAPIError(401, "invalid_api_key", "the API key is missing, unknown, rotated or revoked"))
			return
		}
		if err != nil {
			writeAPIError(ctx, anthropic, newAPIError(404, "model_not_found", "model "+id+" is not available to this key"))
			return
		}
		e := ledger.CatalogEntry{ID: id, Name: cmp.Or(ad.Model.Name, id), Provider: ad.Model.Provider}
		if anthropic {
			body, _ = json.Marshal(anthropicModel{Type: "model", ID: e.ID, DisplayName: e.Name, CreatedAt: modelCreatedAt})
		} else {
			body, _ = json.Marshal(openAIModel{ID: e.ID, Object: "model", Created: modelCreated, OwnedBy: ownedBy(&e), Name: e.Name})
		}
	case anthropic:
		out := struct {
			Data    []anthropicModel `json:"data"`
			HasMore bool             `json:"has_more"`
			FirstID *string          `json:"first_id"`
			LastID  *string          `json:"last_id"`
		}{Data: make([]anthropicModel, 0, len(list))}
		for _, m := range list {
			out.Data = append(out.Data, anthropicModel{Type: "model", ID: m.ID, DisplayName: m.Name, CreatedAt: modelCreatedAt})
		}
		if len(list) > 0 {
			out.FirstID, out.LastID = &list[0].ID, &list[len(list)-1].ID
		}
		body, _ = json.Marshal(out)
	default:
		out := struct {
			Object string        `json:"object"`
			Data   []openAIModel `json:"data"`
		}{Object: "list", Data: make([]openAIModel, 0, len(list))}
		for i := range list {
			m := &list[i]
			out.Data = append(out.Data, openAIModel{ID: m.ID, Object: "model", Created: modelCreated, OwnedBy: ownedBy(m), Name: m.Name})
		}
		body, _ = json.Marshal(out)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// pricing answers GET /api/v1/pricing without auth (P2): the rate, the
// plans and every priced model's prices.
func (s *Server) pricing(ctx *fasthttp.RequestCtx) {
	body, _ := json.Marshal(s.o.Ledger().Pricing(s.servable))
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// servable reports whether a provider on the model's route is one this
// node has (configured, with its key).
func (s *Server) servable(m *ledger.Model) bool {
	var own [1]Route
	for _, r := range s.routes(m, &own) {
		if s.o.Providers[r.Provider] != nil {
			return true
		}
	}
	return false
}
