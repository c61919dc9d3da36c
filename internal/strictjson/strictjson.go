// Package strictjson decodes a request body the way the admin and
// self-service APIs take it: one JSON object, unknown fields (letter for
// letter, at every depth), trailing data and wrong types refused, an empty
// body read as {}. Every refusal wraps ledger.ErrInvalid.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"zenmux/internal/tagname"
	"zenmux/ledger"
)

// Decode parses body into dst (a pointer to a struct) strictly.
func Decode(body []byte, dst any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return fmt.Errorf("%w: the body must be a JSON object", ledger.ErrInvalid)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return fmt.Errorf("%w: %s", ledger.ErrInvalid, cleanJSONError(err))
	}
	// Only white space may follow the object. (Decoder.More is not enough:
	// it reports false for a stray '}' or ']', so `{"add_usd":10}}` passed.)
	if len(bytes.TrimSpace(body[d.InputOffset():])) != 0 {
		return fmt.Errorf("%w: trailing data after the JSON object", ledger.ErrInvalid)
	}
	if err := exactNames(body, reflect.TypeOf(dst)); err != nil {
		return fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
	}
	return nil
}

// exactNames checks that every member name in the JSON value raw is the
// json name of a field of t, letter for letter. encoding/json also takes a
// name that matches only when case is ignored, so {"ADD_USD":10} topped up,
// and of "add_usd" and "Add_USD" in one body the last won.
func exactNames(raw []byte, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil // not an object here: the decoder judged it already
		}
		for name, v := range obj {
			f, ok := tagname.Field(t, "json", name)
			if !ok {
				return fmt.Errorf("unknown field %q (field names are lower case)", name)
			}
			if err := exactNames(v, f.Type); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		for _, it := range items {
			if err := exactNames(it, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be a %s", te.Field, jsonKind(te.Type.Kind().String()))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "float"):
		return "number"
	case k == "bool":
		return "boolean"
	case k == "slice":
		return "list"
	case k == "struct", k == "map":
		return "object"
	}
	return k
}
