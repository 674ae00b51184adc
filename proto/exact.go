package proto

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// unmarshalExact decodes the JSON object data into the struct v points to,
// as json.Unmarshal does except that field names match only when spelled
// exactly as their json tags. encoding/json matches names in any case, and
// with Unicode folding ("\u017fig" sets "sig"), so {"Type":"join"} would be
// served and a "CHANNEL" field would override "channel"; PROTOCOL.md §1 has
// one spelling, and any other is an unknown field, ignored. Nested structs
// (hello's limits) are matched the same way. JSON null, for the object or a
// field, leaves the value unchanged, as with encoding/json.
func unmarshalExact(data []byte, v any) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return objectError(err, "")
	}
	return fillExact(fields, reflect.ValueOf(v).Elem(), "")
}

// fillExact sets rv's fields from fields; path prefixes field names in
// errors.
func fillExact(fields map[string]json.RawMessage, rv reflect.Value, path string) error {
	rt := rv.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		raw, ok := fields[name]
		if !ok {
			continue
		}
		fv := rv.Field(i)
		if f.Type.Kind() == reflect.Struct {
			var sub map[string]json.RawMessage
			if err := json.Unmarshal(raw, &sub); err != nil {
				return objectError(err, path+name)
			}
			if err := fillExact(sub, fv, path+name+"."); err != nil {
				return err
			}
			continue
		}
		if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				te.Field = path + name
				return te
			}
			return err
		}
	}
	return nil
}

// objectError reports a value that should have been an object as the
// UnmarshalTypeError encoding/json gives when decoding it into a struct.
func objectError(err error, field string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		te.Type = reflect.TypeFor[struct{}]()
		te.Field = field
		return te
	}
	return err
}

// jsonName is a struct field's name on the wire, or "" if it has none.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name
	}
	return name
}
