package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"

	"zenmux/internal/tagname"
)

// Load reads the TOML file at path over Default() and validates the result.
// An empty path means Default() alone.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return Parse(data)
}

// Parse is Load from bytes: Default() overlaid with data, then Validate().
//
// Arrays replace rather than merge: a file with any [[providers]] replaces
// the built-in echo provider, so it must list echo again to keep it. Each
// file entry gets the Provider defaults for the keys it leaves out; a key
// given explicitly keeps its value, even 0, and is validated as such.
func Parse(data []byte) (*Config, error) {
	c := Default()
	// The decoder reuses existing slice elements, which would leak the default
	// echo provider's fields into the file's first [[providers]] entry.
	builtin := c.Providers
	c.Providers = nil
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		if err := amountProblems(data); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := unknownKeys(md); err != nil {
		return nil, err
	}
	keys, err := entryKeys(data)
	if err != nil {
		return nil, err
	}
	var defined func(i int, key string) bool
	if md.IsDefined("providers") {
		defined = keys.provider
		for i := range c.Providers {
			given := func(key string) bool { return defined(i, key) }
			presetDefaults(&c.Providers[i], given)
			providerDefaults(&c.Providers[i], given)
		}
	} else {
		c.Providers = builtin
	}
	for i := range c.Models {
		c.Models[i].keys = keys.model(i)
	}
	if err := c.validate(defined); err != nil {
		return nil, err
	}
	return c, nil
}

// keySets holds the keys each [[providers]] and [[models]] entry of a
// file defines. toml.MetaData.IsDefined cannot look inside an array of
// tables (its path has no index step), and MetaData.Keys() does not
// separate the elements of an inline array, so the entries are read a
// second time as plain tables, which works for both `[[providers]]` and
// `providers = [{...}]`.
type keySets struct {
	Providers []map[string]any `toml:"providers"`
	Models    []map[string]any `toml:"models"`
}

func entryKeys(data []byte) (*keySets, error) {
	var raw keySets
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &raw, nil
}

// provider reports whether [[providers]] entry i defines key.
func (k *keySets) provider(i int, key string) bool {
	if i < 0 || i >= len(k.Providers) {
		return false
	}
	_, ok := k.Providers[i][key]
	return ok
}

// model returns the keys [[models]] entry i defines.
func (k *keySets) model(i int) map[string]bool {
	out := map[string]bool{}
	if i >= 0 && i < len(k.Models) {
		for key := range k.Models[i] {
			out[key] = true
		}
	}
	return out
}

// amountProblems reports every amount of data that is not a number of its
// key's unit (Micros, Nanos), under its key path (`plans[2].price_usd`).
// The decoder stops at the first one and names it without the index of
// its [[plans]] or [[models]] entry, so Parse, when decoding failed, reads
// the file again as plain tables and checks each amount there; it returns
// nil when it finds none, and the decoder's error stands.
func amountProblems(data []byte) error {
	var tree map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&tree); err != nil {
		return nil
	}
	var p problems
	walkAmounts(&p, "", reflect.TypeFor[Config](), tree)
	return errors.Join(p...)
}

var unmarshalerType = reflect.TypeFor[toml.Unmarshaler]()

// walkAmounts checks the amounts in v, the plain decoded TOML value at
// path, that the fields of t (its type in Config) would read, in field
// and entry order.
func walkAmounts(p *problems, path string, t reflect.Type, v any) {
	switch t.Kind() {
	case reflect.Struct:
		table, _ := v.(map[string]any)
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("toml")
			sub, ok := table[name]
			if !ok {
				continue
			}
			key := name
			if path != "" {
				key = path + "." + name
			}
			if reflect.PointerTo(f.Type).Implements(unmarshalerType) {
				if err := reflect.New(f.Type).Interface().(toml.Unmarshaler).UnmarshalTOML(sub); err != nil {
					p.add(key, "%v", err)
				}
				continue
			}
			walkAmounts(p, key, f.Type, sub)
		}
	case reflect.Slice:
		// An array of tables decodes as []map[string]any, an inline array
		// as []any.
		var items []any
		switch v := v.(type) {
		case []map[string]any:
			for _, e := range v {
				items = append(items, e)
			}
		case []any:
			items = v
		}
		for i, e := range items {
			walkAmounts(p, fmt.Sprintf("%s[%d]", path, i), t.Elem(), e)
		}
	}
}

// unknownKeys reports every key the decoder did not use, or used only by
// ignoring case (see caseExact), one error each, with array-of-tables
// indices filled in ("providers[1].nme"). Keys below an unknown table are
// not repeated.
func unknownKeys(md toml.MetaData) error {
	unknown := map[string]bool{}
	for _, k := range md.Undecoded() {
		unknown[k.String()] = true
	}
	for _, k := range md.Keys() {
		if !caseExact(k) {
			unknown[k.String()] = true
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	index := map[string]int{} // array-of-tables path → index of its current element
	var reported []string
	var errs []error
	for _, k := range md.Keys() {
		ks := k.String()
		if md.Type(k...) == "ArrayHash" {
			if n, ok := index[ks]; ok {
				index[ks] = n + 1
			} else {
				index[ks] = 0
			}
		}
		if !unknown[ks] {
			continue
		}
		under := false
		for _, r := range reported {
			if strings.HasPrefix(ks, r+".") {
				under = true
				break
			}
		}
		if under {
			continue
		}
		reported = append(reported, ks)
		var b strings.Builder
		for i := range k {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k[i])
			if n, ok := index[k[:i+1].String()]; ok && i < len(k)-1 {
				fmt.Fprintf(&b, "[%d]", n)
			}
		}
		errs = append(errs, fmt.Errorf("config: unknown key %q", b.String()))
	}
	return errors.Join(errs...)
}

// caseExact reports whether each step of key names a field of Config by
// its exact TOML tag. The decoder also takes a key that matches a tag only
// when case is ignored (`Burst` fills burst) and counts it as decoded, so
// such keys escaped the unknown-key check; and `[[plAns]]` next to
// `[[plans]]` both filled Plans, in map order, so which one won changed
// from one Parse of the same file to the next.
func caseExact(key toml.Key) bool {
	t := reflect.TypeFor[Config]()
	for _, step := range key {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return true // below a value: the decoder refuses that itself
		}
		f, ok := tagname.Field(t, "toml", step)
		if !ok {
			return false
		}
		t = f.Type
	}
	return true
}
