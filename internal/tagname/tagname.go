// Package tagname finds a struct field by the name its encoding tag gives
// it, letter for letter. The TOML and JSON decoders also match a name when
// only case differs; config and admin refuse such names with it.
package tagname

import (
	"reflect"
	"strings"
)

// Field returns the field of struct type t that the tag key (toml, json)
// names name: the tag's name, or the Go field name when the tag gives none.
func Field(t reflect.Type, key, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get(key), ","); tag == name || tag == "" && f.Name == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
